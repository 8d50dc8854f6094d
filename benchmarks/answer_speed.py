"""Greedy check answers per second, the way consolidation asks them, side by side.

    .venv/bin/python benchmarks/answer_speed.py --json benchmarks/results/answer_speed.json

Consolidation by behaviour asks a few hundred short greedy questions per run
(train questions after each round, check questions, memory-on questions with
retrieved memories in the system prompt, the general checks), all through
the trainer's LoRA-wrapped model. This compares, in one process on the same
prompts and the same trained-looking adapter (B drawn small, not zero):

- ``asked order, batch 16``: what consolidation did before;
- ``sorted, batch 16``: prompts grouped by token length, so a batch pads little;
- ``sorted, batch 32`` (what ``Memorizer.answers`` does now);
- ``sorted, batch 64``.

Each variant's answers are compared with the first's: padding changes float
rounding only, so the greedy answers should agree (the share that does is
printed). Folding the adapter into the weights for decoding (PEFT's
``merge_adapter``) was tried too and gained nothing measurable here: a
decode step is bound by the base's matmuls, not by LoRA's. Another process on the cores skews every number
alike; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(width=max(110, Console().width))

QUESTIONS = [
    "What is my dog called?", "Where did I grow up?", "What instrument do I play?",
    "How many cats do I have?", "When is my birthday?", "What is my sister's name?",
    "Where do I work?", "What is my favourite food?", "Which city do I live in now?",
    "What do I do on weekends?", "What is the capital of France?", "How many legs does a spider have?",
    "What colour is the sky on a clear day?", "Who wrote Romeo and Juliet?",
    "Remind me, which instrument do I perform on?", "Quick question: what's my dog's name?",
]
MEMORIES = [
    "The user's dog is called Marzipan, a scruffy little terrier.",
    "The user grew up in Tacoma, Washington.",
    "The user plays the bassoon in a community orchestra on weekends.",
    "The user has 3 cats at home.",
    "The user's birthday is on June 9.",
    "The user works as a glassblower at a studio in Duluth.",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=64, help="questions asked per variant")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)

    import torch

    from seal_agent.config import SealAgentConfig
    from seal_agent.innerloop import build_trainer
    from seal_agent.memorize_answers import ANSWER as _ANSWER
    from seal_agent.models import build_language_model, quiet_model_loading
    from seal_agent.models.transformers_lm import generate
    from seal_agent.prompts import memory_system_prompt

    quiet_model_loading()
    config = SealAgentConfig()
    lm = build_language_model(config)
    trainer = build_trainer(config, lm)
    tok = lm.tokenizer  # type: ignore[attr-defined]
    gen = torch.Generator().manual_seed(0)
    state = trainer.state()
    for key, value in state.items():  # a trained-looking adapter: B small, not zero
        if ".lora_B." in key:
            value.copy_(torch.randn(value.shape, generator=gen) * 0.01)
    trainer.reset(state)

    agent = config.agent
    prompts = []
    for i in range(args.prompts):
        memories = MEMORIES[: (i * 5) % 7] if i % 3 == 0 else []  # some memory-on prompts
        system = memory_system_prompt(agent.system_prompt, agent.memory_header, agent.memory_footer,
                                      memories)
        messages = [{"role": "system", "content": system},
                    {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]
        prompts.append(str(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)))

    model = trainer.model
    ctx = int(getattr(model.config, "max_position_embeddings", 2048))

    def ask(batch: int, sort: bool) -> list[str]:
        order = list(range(len(prompts)))
        if sort:
            order.sort(key=lambda i: len(tok(prompts[i], add_special_tokens=False)["input_ids"]))
        out: dict[int, str] = {}
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            for i, text in zip(idx, generate(model, tok, [prompts[i] for i in idx], _ANSWER, ctx),
                               strict=True):
                out[i] = text
        return [out[i] for i in range(len(prompts))]

    variants: list[tuple[str, int, bool]] = [
        ("asked order, batch 16", 16, False),
        ("sorted, batch 16", 16, True),
        ("sorted, batch 32", 32, True),
        ("sorted, batch 64", 64, True),
    ]
    ask(16, True)  # warm-up: first-call allocations and kernels
    rows: list[dict[str, Any]] = []
    reference: list[str] | None = None
    load = os.getloadavg()[0]
    for name, batch, sort in variants:
        t0 = time.perf_counter()
        answers = ask(batch, sort)
        seconds = time.perf_counter() - t0
        reference = reference or answers
        same = sum(a == b for a, b in zip(answers, reference, strict=True)) / len(answers)
        rows.append({"variant": name, "seconds": round(seconds, 2),
                     "answers_per_s": round(len(prompts) / seconds, 2), "same_answers": same})
    base = rows[0]["seconds"]
    table = Table(title=f"{len(prompts)} greedy answers, max {_ANSWER.max_new_tokens} new tokens")
    for col in ("variant", "seconds", "answers/s", "speed-up", "same answers as the first"):
        table.add_column(col)
    for r in rows:
        r["speedup"] = round(base / r["seconds"], 2)
        table.add_row(r["variant"], f"{r['seconds']:.1f}", f"{r['answers_per_s']:.2f}",
                      f"{r['speedup']:.2f}x", f"{r['same_answers']:.0%}")
    console.print(table)
    load_after = os.getloadavg()[0]
    if max(load, load_after) > (os.cpu_count() or 1) + 0.5:
        console.print(f"[yellow]load average {load:.1f} -> {load_after:.1f}: not alone on the cores[/]")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "torch": torch.__version__,
            "threads": torch.get_num_threads(), "prompts": len(prompts), "load": [load, load_after],
            "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
