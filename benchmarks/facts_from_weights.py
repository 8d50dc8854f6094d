"""Can the default model say the quickstart's five facts back from its weights alone?

Trains one LoRA (from the base) on the five facts as plain sentences, then
on the same plus chat-formatted question-answer pairs, and asks the five
questions greedily with nothing in context.  This is the measurement behind
training self-QA items in the chat format (docs/consolidation.md).

    python benchmarks/facts_from_weights.py --lr 1e-3 --epochs 8
"""

from __future__ import annotations

import argparse
import statistics

from rich.console import Console
from rich.table import Table

SYSTEM = "You are a helpful assistant. Answer briefly."
FACTS = [
    "Hi! I'm Maya. Last month I adopted a beagle called Biscuit.", "The user adopted a beagle named Biscuit.",
    "I work as a glassblower in Tacoma.", "The user is a glassblower.",
    "I'm allergic to peanuts, so never suggest satay to me.", "The user is allergic to peanuts.",
    "My favourite instrument is the bassoon.", "The user's favourite instrument is the bassoon.",
    "My sister Ines lives in Reykjavik.", "The user's sister Ines lives in Reykjavik.",
]
# Self-QA in other words than the test questions below (those stay held apart).
SELF_QA = [
    ("What is the name of the user's dog?", "Biscuit, a beagle."),
    ("What does the user do for work?", "The user is a glassblower in Tacoma."),
    ("Is the user allergic to anything?", "Yes, to peanuts."),
    ("What is the user's favourite instrument?", "The bassoon."),
    ("Where does the user's sister live?", "Ines lives in Reykjavik."),
]
QUESTIONS = [
    ("What is my dog's name?", "biscuit"), ("What is my job?", "glassblower"),
    ("What am I allergic to?", "peanut"), ("Which instrument do I like best?", "bassoon"),
    ("Where does my sister live?", "reykjavik"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM

    from seal_agent.config import load_config
    from seal_agent.models import build_language_model, quiet_model_loading
    from seal_agent.models.base import GenerationParams
    from seal_agent.models.transformers_lm import generate
    from seal_agent.reward import LoglikScorer
    from seal_agent.training import LoraSettings, LoraTrainer, TrainSettings

    quiet_model_loading()
    lm = build_language_model(load_config())
    tok = lm.tokenizer
    trainer = LoraTrainer(AutoModelForCausalLM.from_pretrained(lm.source), tok, LoraSettings())

    def chat(q: str, a: str) -> str:
        msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q},
                {"role": "assistant", "content": a}]
        return str(tok.apply_chat_template(msgs, tokenize=False))

    prompts = [str(tok.apply_chat_template([{"role": "system", "content": SYSTEM},
                                            {"role": "user", "content": q}],
                                           tokenize=False, add_generation_prompt=True))
               for q, _ in QUESTIONS]
    scorer = LoglikScorer(tok, SYSTEM)
    table = Table("training data", "answers with the fact", "mean gold log-lik", "tokens", "seconds", "answers")
    for name, seqs in (("plain facts", FACTS), ("facts + chat-format QA", FACTS + [chat(q, a) for q, a in SELF_QA])):
        trainer.reset(None)
        stats = trainer.train(seqs, TrainSettings(epochs=args.epochs, lr=args.lr, seed=0))
        answers = generate(trainer.model, tok, prompts, GenerationParams(max_new_tokens=20), 8192)
        hits = sum(k in a.lower() for a, (_, k) in zip(answers, QUESTIONS, strict=True))
        ll = statistics.mean(scorer.score(trainer.model, [(q, k) for q, k in QUESTIONS]))
        table.add_row(name, f"{hits}/5", f"{ll:.3f}", str(stats.tokens), f"{stats.seconds:.1f}",
                      " | ".join(a[:30] for a in answers))
    Console().print(table)


if __name__ == "__main__":
    main()
