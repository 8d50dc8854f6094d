"""One recall-mode training recipe on the dev split: what it teaches and what it breaks.

The first ``--facts`` (20) facts of the dev pool (``eval facts``'s ``pool``)
are trained into one LoRA adapter the way recall mode trains them: each
fact's statement plus its template question/answer pairs in the agent's chat
format (loss on the answers), plus replay of the base model's own answers to
the first 48 replay prompts, for a fixed number of epochs (no criterion
rounds, so recipes compare at equal work). Then, greedy and with nothing in
context:

* recall: the set's hand-written check paraphrases (never trained on);
* general kept, on three sets the training never saw, each as "right after /
  right before" over the questions the base gets right:
  ``gate`` (the gate's 24, ``prompts.GENERAL_CHECKS``), ``eval`` (the
  personal-facts set's 30 general questions), ``demo`` (the six of
  ``tests/integration/test_memorize.py``).

One JSON line per run, for side-by-side reading. Dev split only: the
held-out users are for docs/results.md.

    .venv/bin/python benchmarks/recall_recipe.py --tag base
    .venv/bin/python benchmarks/recall_recipe.py --targets mlp --tag mlp
"""

from __future__ import annotations

import argparse
import json
import time

PROJECTIONS = {
    "all": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "mlp": ("gate_proj", "up_proj", "down_proj"),
    "attn": ("q_proj", "k_proj", "v_proj", "o_proj"),
}
DEMO_GENERAL = [
    ("How many legs does a spider have?", "8"), ("What is the capital of France?", "Paris"),
    ("What is the opposite of hot?", "cold"), ("Which day comes after Monday?", "Tuesday"),
    ("How many days are in a week?", "7"), ("What color is grass?", "green"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--facts", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=32)
    ap.add_argument("--targets", choices=sorted(PROJECTIONS), default="all")
    ap.add_argument("--replay", type=int, default=48, help="replay prompts (the pool)")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--distill", action="store_true",
                    help="replay as self-distillation (consolidation.replay_distill)")
    ap.add_argument("--answers", choices=("clause", "short", "mixed"), default="clause",
                    help="answer sentences of the template pairs (facts.relation_pairs)")
    ap.add_argument("--train-questions", type=int, default=3, help="template pairs trained per fact")
    ap.add_argument("--misses", action="store_true",
                    help="also print each check question not said and each general answer lost")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM

    from seal_agent.config import load_config
    from seal_agent.eval.facts import pool
    from seal_agent.eval.facts_data import load_facts
    from seal_agent.facts import build_probes, said
    from seal_agent.models import build_language_model, quiet_model_loading
    from seal_agent.models.base import GenerationParams
    from seal_agent.models.transformers_lm import generate
    from seal_agent.prompts import GENERAL_CHECKS, REPLAY_PROMPTS
    from seal_agent.training import LoraSettings, LoraTrainer, TrainExample, TrainSettings

    quiet_model_loading()
    config = load_config()
    lm = build_language_model(config)
    tok = lm.tokenizer

    def prompt(question: str) -> str:  # the agent's own chat format, nothing retrieved
        messages = [{"role": "system", "content": config.agent.system_prompt},
                    {"role": "user", "content": question}]
        return str(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))

    def ask(model, questions):
        return generate(model, tok, [prompt(q) for q in questions], GenerationParams(max_new_tokens=32), 8192)

    data = load_facts(split="dev")
    facts = pool(data.facts)[: args.facts]
    trainer = LoraTrainer(AutoModelForCausalLM.from_pretrained(lm.source), tok,
                          LoraSettings(r=args.r, alpha=args.alpha, target_modules=PROJECTIONS[args.targets]))
    trainer.reset(None)
    replay_prompts = list(REPLAY_PROMPTS[: args.replay])
    replay = [TrainExample(prompt=prompt(q), completion=a.strip(), distill=args.distill)
              for q, a in zip(replay_prompts, ask(trainer.model, replay_prompts), strict=True)]
    sets = {"gate": list(GENERAL_CHECKS), "eval": [(g.question, g.answer) for g in data.general],
            "demo": DEMO_GENERAL}
    base = {name: [said(a, gold) for a, (_, gold) in zip(ask(trainer.model, [q for q, _ in qs]), qs, strict=True)]
            for name, qs in sets.items()}

    examples: list = []
    checks = []
    for fact in facts:
        pairs, _ = build_probes(fact.statement, n_train=args.train_questions, answers=args.answers)
        examples.append(fact.statement)
        examples += [TrainExample(prompt=prompt(p.question), completion=p.answer)
                     for fp in pairs for p in fp.train]
        checks += [(q, fact) for q in fact.check]
    examples += replay
    started = time.perf_counter()
    stats = trainer.train(examples, TrainSettings(epochs=args.epochs, lr=args.lr, batch_tokens=512,
                                                  schedule="linear", seed=0,
                                                  weight_decay=args.weight_decay))
    seconds = time.perf_counter() - started
    answers = ask(trainer.model, [q for q, _ in checks])
    recall = sum(said(a, f.answer, f.aliases) for a, (_, f) in zip(answers, checks, strict=True))
    kept = {}
    if args.misses:
        for a, (q, f) in zip(answers, checks, strict=True):
            if not said(a, f.answer, f.aliases):
                print(json.dumps({"missed": q, "gold": f.answer, "answer": a}), flush=True)
    for name, qs in sets.items():
        got = ask(trainer.model, [q for q, _ in qs])
        if args.misses:
            for b, a, (q, gold) in zip(base[name], got, qs, strict=True):
                if b and not said(a, gold):
                    print(json.dumps({"lost": q, "set": name, "answer": a}), flush=True)
        kept[name] = (f"{sum(b and said(a, gold) for b, a, (_, gold) in zip(base[name], got, qs, strict=True))}"
                      f"/{sum(base[name])}")
    print(json.dumps({"tag": args.tag, **vars(args), "train_seconds": round(seconds),
                      "tokens": stats.tokens, "recall": f"{recall}/{len(checks)}",
                      **{f"general_kept_{k}": v for k, v in kept.items()}}), flush=True)


if __name__ == "__main__":
    main()
