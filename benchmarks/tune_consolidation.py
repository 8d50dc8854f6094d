"""Choose consolidation defaults on the SQuAD *dev* split (never held-out).

For each sampled dev passage, its questions are split in two: probes (what the
reward loop may see) and held-apart questions (what it may not).  For each
candidate self-edit, the inner loop trains from the base and we record the
probe reward and the held-apart gain under both scorers.  The question for
each scorer: does the probe-reward winner also win on held-apart questions?
The same runs, repeated per learning rate, pick the inner-loop settings.

    python benchmarks/tune_consolidation.py --n 8 --k 3 --lrs 1e-4,3e-4,1e-3 \\
        --epochs 3 --out benchmarks/results/tune_dev.json

Prints a table and writes JSON with every record.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

console = Console()


def dev_passages(data: Path, n: int, seed: int, min_questions: int = 4) -> list[dict]:
    """Dev split: passages whose title is among the first 24 distinct titles (data/README.md)."""
    rows = json.loads((data / "squad_val.json").read_text())
    titles: list[str] = []
    for row in rows:
        if row["title"] not in titles:
            titles.append(row["title"])
    dev_titles = set(titles[:24])
    dev = [r for r in rows if r["title"] in dev_titles and len(r["questions"]) >= min_questions]
    return random.Random(seed).sample(dev, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SEAL_AGENT_DATA", "../shared/data")))
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--lrs", default="1e-4,3e-4,1e-3")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tune_dev.json"))
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM

    from seal_agent.config import load_config
    from seal_agent.models import build_language_model, quiet_model_loading
    from seal_agent.reward import LoglikScorer, QualityScorer
    from seal_agent.selfedit import SelfEditWriter
    from seal_agent.training import LoraSettings, LoraTrainer, TrainSettings
    from seal_agent.types import Interaction, InteractionKind, Message, Namespace

    quiet_model_loading()
    cfg = load_config(home=Path(".seal-agent/tune"))
    lm = build_language_model(cfg)
    writer = SelfEditWriter(lm, cfg.selfedit)
    trainer = LoraTrainer(AutoModelForCausalLM.from_pretrained(lm.source), lm.tokenizer,
                          LoraSettings(r=cfg.consolidation.lora_r, alpha=cfg.consolidation.lora_alpha))
    system = cfg.agent.system_prompt
    scorers = {"loglik": LoglikScorer(lm.tokenizer, system), "quality": QualityScorer(lm.tokenizer, system)}
    lrs = [float(x) for x in args.lrs.split(",")]
    passages = dev_passages(args.data, args.n, args.seed)
    formats = cfg.consolidation.formats

    records = []
    started = time.perf_counter()
    with Progress(console=console) as bar:
        task = bar.add_task("passages", total=len(passages))
        for p_i, passage in enumerate(passages):
            qs = [(q["question"], q["answer"]) for q in passage["questions"]]
            half = len(qs) // 2
            probes, held = qs[:half], qs[half:]
            inter = Interaction(
                id=f"dev{p_i}", namespace=Namespace(user_id="dev"), kind=InteractionKind.DOCUMENT,
                messages=(Message(role="user", content=passage["context"]),),
                created_at=datetime.now(UTC),
            )
            cands = writer.candidates(inter, k=args.k, formats=formats, temperature=1.0)
            trainer.reset(None)
            base = {name: {"probe": statistics.mean(s.score(trainer.model, probes)),
                           "held": statistics.mean(s.score(trainer.model, held))}
                    for name, s in scorers.items()}
            for lr in lrs:
                for c_i, cand in enumerate(cands):
                    if not cand.items:
                        continue
                    seqs = list(cand.items) + [passage["context"]]
                    trainer.reset(None)
                    stats = trainer.train(seqs, TrainSettings(epochs=args.epochs, lr=lr, seed=args.seed))
                    rec = {"passage": p_i, "title": passage["title"], "lr": lr, "candidate": c_i,
                           "format": cand.format.value, "items": len(cand.items),
                           "tokens": stats.tokens, "train_seconds": stats.seconds}
                    for name, s in scorers.items():
                        rec[f"{name}_probe_gain"] = statistics.mean(s.score(trainer.model, probes)) - base[name]["probe"]
                        rec[f"{name}_held_gain"] = statistics.mean(s.score(trainer.model, held)) - base[name]["held"]
                    records.append(rec)
            bar.advance(task)
    elapsed = time.perf_counter() - started

    # Does the probe-reward winner also win on held-apart questions?
    summary = {}
    for name in scorers:
        for lr in lrs:
            wins = agree = groups = 0
            winner_held, mean_held = [], []
            for p_i in range(len(passages)):
                group = [r for r in records if r["passage"] == p_i and r["lr"] == lr]
                if len(group) < 2:
                    continue
                groups += 1
                best = max(group, key=lambda r: r[f"{name}_probe_gain"])
                best_held = max(group, key=lambda r: r["loglik_held_gain"])
                agree += best is best_held
                winner_held.append(best["loglik_held_gain"])
                mean_held.append(statistics.mean(r["loglik_held_gain"] for r in group))
                wins += best["loglik_held_gain"] >= statistics.mean(r["loglik_held_gain"] for r in group)
            summary[f"{name}@{lr:g}"] = {
                "groups": groups,
                "winner_is_heldout_best": agree,
                "winner_at_or_above_mean": wins,
                "winner_heldout_loglik_gain": statistics.mean(winner_held) if winner_held else None,
                "mean_heldout_loglik_gain": statistics.mean(mean_held) if mean_held else None,
                "ties_in_probe_reward": sum(
                    1 for p_i in range(len(passages))
                    if len({round(r[f"{name}_probe_gain"], 6) for r in records
                            if r["passage"] == p_i and r["lr"] == lr}) == 1),
            }
    per_lr = {f"{lr:g}": {
        "loglik_held_gain": statistics.mean(r["loglik_held_gain"] for r in records if r["lr"] == lr),
        "quality_held_gain": statistics.mean(r["quality_held_gain"] for r in records if r["lr"] == lr),
        "loglik_probe_gain": statistics.mean(r["loglik_probe_gain"] for r in records if r["lr"] == lr),
    } for lr in lrs}

    table = Table("scorer@lr", "passages", "winner = held-out best", "winner ≥ mean", "winner held-out Δloglik", "mean held-out Δloglik", "all-tie passages")
    for key, s in summary.items():
        table.add_row(key, str(s["groups"]), str(s["winner_is_heldout_best"]), str(s["winner_at_or_above_mean"]),
                      f"{s['winner_heldout_loglik_gain']:+.3f}" if s["winner_heldout_loglik_gain"] is not None else "-",
                      f"{s['mean_heldout_loglik_gain']:+.3f}" if s["mean_heldout_loglik_gain"] is not None else "-",
                      str(s["ties_in_probe_reward"]))
    console.print(table)
    lr_table = Table("lr", "held-out Δloglik", "held-out Δquality", "probe Δloglik")
    for lr, s in per_lr.items():
        lr_table.add_row(lr, f"{s['loglik_held_gain']:+.3f}", f"{s['quality_held_gain']:+.3f}", f"{s['loglik_probe_gain']:+.3f}")
    console.print(lr_table)
    console.print(f"{len(records)} inner loops in {elapsed:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "split": "dev",
                                    "summary": summary, "per_lr": per_lr, "records": records,
                                    "seconds": elapsed}, indent=1))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
