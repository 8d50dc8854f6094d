"""One recall-mode consolidation of 20 dev facts, timed by stage, judged on the set's paraphrases.

The facts (the first 20 of the dev pool, as ``eval facts --scenarios one``)
are told once into a saved memory home (``--told``, derivation inline, ~150 s);
each run copies it and consolidates the copy, so runs that differ in one
setting (``SEAL_AGENT_CONSOLIDATION__...`` in the environment) start from the
same probes. After the run: the set's hand-written check paraphrases, asked
with retrieval off. One JSON line per run, appended to ``--out``. Dev split
only; the held-out users are for docs/results.md.

    .venv/bin/python benchmarks/recall_consolidation.py --tag default
    SEAL_AGENT_CONSOLIDATION__RECALL_EPOCHS=6 SEAL_AGENT_CONSOLIDATION__RECALL_LR=0.0013 \\
        SEAL_AGENT_CONSOLIDATION__REPLAY_RATIO=0.3 .venv/bin/python benchmarks/recall_consolidation.py --tag fast6
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tag", default="")
    ap.add_argument("--facts", type=int, default=20)
    ap.add_argument("--told", type=Path, default=Path(".seal-agent/bench-told-dev20"),
                    help="the saved home with the facts told (made when missing)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/recall_consolidation.jsonl"))
    args = ap.parse_args()

    from seal_agent import SealAgent
    from seal_agent.config import load_config
    from seal_agent.eval.facts import pool
    from seal_agent.eval.facts_data import load_facts
    from seal_agent.facts import said

    config = load_config()

    def agent(home: Path) -> SealAgent:
        cfg = config.model_copy(deep=True)
        cfg.home = home
        cfg.model.cache_dir = config.model_cache_dir
        cfg.agent.derive = "inline"  # as eval facts: statements and probes only
        cfg.selfedit.samples_per_format = 0
        cfg.selfedit.probes_per_interaction = 0
        return SealAgent(cfg)

    facts = pool(load_facts(split="dev").facts)[: args.facts]
    if not args.told.exists():  # told in a process of its own: Chroma keeps a home's files open
        teller = agent(args.told)
        for f in facts:
            teller.remember(f.statement, user_id="one")
        teller.close()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        shutil.copytree(args.told, home)
        a = agent(home)
        a.answers(["hi"], user_id="one", retrieval=False, max_new_tokens=2)  # the model, loaded
        started = time.perf_counter()
        report = a.consolidate(user_id="one")
        seconds = time.perf_counter() - started
        asked = [(q, f) for f in facts for q in f.check]
        answers = a.answers([q for q, _ in asked], user_id="one", retrieval=False, max_new_tokens=32)
        a.close()
    per_fact: dict[str, list[bool]] = {}
    for answer, (_, f) in zip(answers, asked, strict=True):
        per_fact.setdefault(f.id, []).append(said(answer, f.answer, f.aliases))
    r = report.recall or {}
    row = {
        "tag": args.tag, "status": str(report.status), "reason": report.reason,
        "seconds": round(seconds, 1), "seconds_per_fact": round(seconds / len(facts), 1),
        "stages": r.get("stage_seconds"), "tokens": r.get("tokens_trained"), "epochs": r.get("epochs"),
        "weights_recall": round(sum(sum(v) / len(v) for v in per_fact.values()) / len(per_fact), 3),
        "template_checks_said": f"{r.get('weights_said_after')}/{r.get('check_questions')}",
        "general_kept": f"{r.get('general_after')}/{r.get('general_base')}",
        "verified": r.get("verified_new"), "drained": r.get("drained_new"),
        "memory_on_template_checks": f"{r.get('memory_on_before')}->{r.get('memory_on_after')}",
    }
    print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
