"""End-to-end consolidation cost: N interactions (default 20), k candidates each
(default 3), the default model and settings, on this machine.

    python benchmarks/consolidation_e2e.py --n 20 --k 3 --json benchmarks/results/e2e.json

Reports wall time per stage (derivation, candidates, inner-loop training,
scoring, update, gate, promotion), tokens trained, rewards, and the gate's
recall / retention.  Facts are fictional so that the base model cannot know
them; each comes with one caller probe.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()

FACTS = [
    ("My dog is a beagle called Biscuit.", "What is my dog called?", "Biscuit"),
    ("I work as a glassblower in Tacoma.", "What is my job?", "glassblower"),
    ("I'm allergic to peanuts.", "What am I allergic to?", "peanuts"),
    ("My favourite instrument is the bassoon.", "Which instrument do I like best?", "bassoon"),
    ("My sister Ines lives in Reykjavik.", "Where does my sister live?", "Reykjavik"),
    ("My car is a green Volvo from 1998.", "What car do I drive?", "Volvo"),
    ("I was born in Valparaiso.", "Where was I born?", "Valparaiso"),
    ("My daughter Luna plays the cello.", "Which instrument does my daughter play?", "cello"),
    ("I run the Lisbon half marathon every March.", "Which race do I run every March?", "Lisbon half marathon"),
    ("My favourite dish is green curry.", "What is my favourite dish?", "green curry"),
    ("I keep bees on the roof of my flat.", "What do I keep on my roof?", "bees"),
    ("My partner Tomas is a paramedic.", "What does my partner do?", "paramedic"),
    ("I learned Finnish at night school.", "Which language did I learn at night school?", "Finnish"),
    ("My cat Pixel sleeps in the laundry basket.", "Where does my cat sleep?", "laundry basket"),
    ("I drink genmaicha every morning.", "What do I drink every morning?", "genmaicha"),
    ("My locker code is 4417.", "What is my locker code?", "4417"),
    ("I collect old railway maps.", "What do I collect?", "railway maps"),
    ("My brother Sami repairs clocks.", "What does my brother repair?", "clocks"),
    ("I moved to Ghent in 2019.", "When did I move to Ghent?", "2019"),
    ("My bike is a red Bianchi.", "What bike do I ride?", "Bianchi"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--home", type=Path, default=Path(".seal-agent/bench-e2e"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from seal_agent import SealAgent
    from seal_agent.models import quiet_model_loading

    quiet_model_loading()
    for item in ("journal.sqlite3", "journal.sqlite3-wal", "journal.sqlite3-shm", "chroma", "adapters"):
        target = args.home / item
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    agent = SealAgent.open(args.home, user_id="bench", agent={"derive": "inline"})
    _ = agent.lm
    t0 = time.perf_counter()
    for fact, question, answer in FACTS[: args.n]:
        agent.remember(fact, probes=[(question, answer)])
    derive_s = time.perf_counter() - t0

    stage_time: dict[str, float] = defaultdict(float)
    last = [time.perf_counter(), "start"]

    def on_event(event) -> None:
        now = time.perf_counter()
        stage_time[last[1]] += now - last[0]
        last[0], last[1] = now, event.stage

    t1 = time.perf_counter()
    report = agent.consolidate(k=args.k, progress=on_event)
    total = time.perf_counter() - t1
    stage_time[last[1]] += time.perf_counter() - last[0]
    agent.close()

    # Time between two events belongs to the stage that was announced first.
    names = {"probes": "probe writing", "candidates": "candidate sampling", "train": "inner-loop training",
             "score": "(between candidates)", "update": "update training + gate scoring",
             "gate": "gate decision", "promote": "staging", "staged": "promotion", "done": "-"}
    table = Table("stage", "seconds")
    for stage, secs in sorted(stage_time.items(), key=lambda kv: -kv[1]):
        table.add_row(names.get(stage, stage), f"{secs:.1f}")
    console.print(table)
    rewards = [c.reward for r in report.interactions for c in r.candidates if c.reward is not None]
    result = {
        "interactions": args.n, "k": args.k, "derive_seconds": round(derive_s, 1),
        "consolidate_seconds": round(total, 1), "status": report.status, "reason": report.reason,
        "candidates_tried": report.candidates_tried, "chosen": report.chosen,
        "not_positive": report.not_positive, "no_probes": report.skipped_no_probes,
        "tokens_trained": report.tokens_trained,
        "reward_mean": sum(rewards) / len(rewards) if rewards else None,
        "reward_positive": sum(r > 0 for r in rewards), "rewards": len(rewards),
        "recall_before": report.recall_before, "recall_after": report.recall_after,
        "seconds_per_candidate": round(total / max(report.candidates_tried, 1), 2),
        "stage_seconds": {k: round(v, 1) for k, v in stage_time.items()},
    }
    console.print_json(json.dumps({k: v for k, v in result.items() if k != "stage_seconds"}))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
