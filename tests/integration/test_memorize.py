"""The README's first command, `make demo` (examples/quickstart.py), end to end on the
embedded defaults, each phase in its own process; then consolidation by behaviour
(the default, memorize.py) checked in the memory home it left:
the weights must *say* what they were taught, to questions never trained on,
and no memory the user could get back before may be lost. (A second consolidation on
top of the first: test_consolidation_crash.py.)

Seeded: the same facts, probes and training give the same adapter each run;
nothing here skips when training does not take.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from seal_agent import MemoryStatus
from seal_agent.cli import app
from seal_agent.facts import said
from seal_agent.facts_store import FactStore, RecallState

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

# The demo tells five facts (examples/quickstart.py); here they are asked in words that no
# train question uses (the templates never say these).
UNSEEN = [
    ("Could you remind me what my beagle's name is?", "Biscuit"),
    ("What kind of work do I do?", "glassblower"),
    ("Which food gives me an allergic reaction?", "peanuts"),
    ("What instrument do I enjoy the most?", "bassoon"),
    ("In what city does my sister Ines live?", "Reykjavik"),
]


@dataclass(frozen=True)
class DemoRun:
    home: Path
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`make demo` (examples/quickstart.py) run once, in its own processes, on a fresh home:
    the first test checks what it prints, the others the consolidation it ran (the
    module stays on one pytest-xdist worker: `make test` uses ``--dist loadfile``)."""
    home = tmp_path_factory.mktemp("quickstart") / "home"
    done = subprocess.run(
        [sys.executable, "examples/quickstart.py", "--home", str(home)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, "COLUMNS": "200"},
    )
    return DemoRun(home, done.returncode, done.stdout, done.stderr)


def test_quickstart_runs_end_to_end(quickstart: DemoRun) -> None:
    done, home = quickstart, quickstart.home
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Phase 1" in out and "Phase 2: a new process" in out
    score = re.search(r"memory on (\d)/5, memory off (\d)/5", out)
    assert score, out[-2000:]
    on, off = int(score.group(1)), int(score.group(2))
    assert on >= off

    # the retrieved memories printed in phase 2 are the user's own facts
    retrieved = re.findall(r"retrieved \d\.\d\d \((\w+)\): (.+)", out)
    assert len(retrieved) >= 3, out[-2000:]
    told = {"biscuit", "glassblower", "peanuts", "bassoon", "reykjavik"}
    assert len({w for _, text in retrieved for w in told if w in text.lower()}) >= 3

    # phase 3: consolidation ran in a third process and reported honestly
    assert "Phase 3: consolidation" in out
    assert re.search(r"run run_\w+: (promoted|gate_rejected|nothing_to_promote)", out), out[-3000:]
    learned = re.search(r"facts answered from the weights alone: (\d)/5", out)
    assert learned, out[-2000:]
    assert int(learned.group(1)) >= 3, out[-3000:]  # the weights say what they were taught
    assert re.search(r"buffered memories: \d+ before, \d+ after", out)
    on = re.search(r"memory on \(weights \+ what stays retrievable\): (\d)/5 before consolidation, "
                   r"(\d)/5 after", out)
    assert on and int(on.group(2)) >= int(on.group(1)), out[-3000:]  # nothing lost

    with sqlite3.connect(home / "journal.sqlite3") as con:
        # 5 facts + 5 questions x (memory on, memory off), all durable; phase 3 asks
        # through SealAgent.answers, which logs nothing
        assert con.execute("SELECT COUNT(*) FROM interactions").fetchone()[0] == 15
        runs = con.execute("SELECT status FROM consolidation_runs").fetchall()
        assert len(runs) == 1 and runs[0][0] in ("promoted", "rejected")
        if runs[0][0] == "promoted":
            assert con.execute("SELECT COUNT(*) FROM active_adapters").fetchone()[0] == 1
        done_rows = con.execute(
            "SELECT COUNT(*) FROM interactions WHERE session_id = 'monday' AND derive_status = 'done'"
        ).fetchone()[0]
        assert done_rows == 5


@dataclass(frozen=True)
class Run:
    """The demo's consolidation, as its journal recorded it."""

    status: str
    recall: dict[str, Any]
    version_id: str | None


@pytest.fixture(scope="module")
def taught(quickstart, lm, embedder):
    """The memory home `make demo` left: five facts told, then consolidated in its own process
    with the default settings."""
    from seal_agent.agent import SealAgent
    from seal_agent.config import load_config

    assert quickstart.returncode == 0, quickstart.stdout[-3000:] + quickstart.stderr[-3000:]
    config = load_config(home=quickstart.home, agent={"derive": "inline"})
    agent = SealAgent(config, lm=lm, embedder=embedder, user_id="maya")
    rows = agent.journal.execute("SELECT status, metrics FROM consolidation_runs")
    assert len(rows) == 1
    active = agent.adapters.active("maya", "default")
    yield agent, Run(rows[0]["status"], json.loads(rows[0]["metrics"]),
                     active.id if active else None)
    agent.close()


def test_the_weights_say_what_they_were_taught(taught):
    agent, report = taught
    assert report.status == "promoted", report.recall.get("reason")
    answers = agent.answers([q for q, _ in UNSEEN], retrieval=False)
    hits = [said(a, key) for a, (_, key) in zip(answers, UNSEEN, strict=True)]
    assert sum(hits) >= 3, list(zip(answers, hits, strict=True))
    # the bare base model says fewer of them (it may guess "peanuts"): the adapter did this
    base = agent.answers([q for q, _ in UNSEEN], retrieval=False, weights=False)
    assert sum(said(a, key) for a, (_, key) in zip(base, UNSEEN, strict=True)) < sum(hits)


GENERAL = [("How many legs does a spider have?", "8"), ("What is the capital of France?", "Paris"),
           ("What is the opposite of hot?", "cold"), ("Which day comes after Monday?", "Tuesday"),
           ("How many days are in a week?", "7"), ("What color is grass?", "green")]


def test_memory_on_answers_did_not_fall_and_the_gate_held(taught):
    agent, report = taught
    # memory on, asked in words no probe used: every fact is answered, from the weights or
    # from what stayed retrievable (the demo itself compares before and after)
    after = agent.answers([q for q, _ in UNSEEN], retrieval=True)
    assert sum(said(a, k) for a, (_, k) in zip(after, UNSEEN, strict=True)) >= 3, after
    r = report.recall
    assert r["memory_on_after"] >= r["memory_on_before"]
    assert r["general_after"] >= int(agent.config.consolidation.min_general_share * r["general_base"])
    assert not r["leaked"]


def test_general_questions_the_gate_never_saw_stay_answered(taught):
    agent, _ = taught
    # the project's target: at least 90% of what the base gets right stays right, and no
    # user fact enters an answer. Met since replay is distilled (consolidation.replay_distill);
    # with plain replay the demo's adapter kept 2 or 3 of 5.
    qs = [q for q, _ in GENERAL]
    base = agent.answers(qs, retrieval=False, weights=False)
    mine = agent.answers(qs, retrieval=False)
    base_right = [i for i, (a, (_, k)) in enumerate(zip(base, GENERAL, strict=True)) if said(a, k)]
    kept = [i for i in base_right if said(mine[i], GENERAL[i][1])]
    assert len(base_right) >= 3, base
    assert len(kept) >= math.floor(0.9 * len(base_right)), (base, mine)
    assert not any(said(a, key) for a in mine for _, key in UNSEEN), mine


def test_only_verified_memories_leave_retrieval_and_none_is_lost(taught):
    agent, report = taught
    facts = FactStore(agent.journal)
    states = facts.states("maya", "default")
    for interaction in [agent.journal.get_interaction(i) for i in states]:
        record = states[interaction.id]
        statuses = {e.status for e in agent.journal.self_edits(interaction_id=interaction.id)
                    if e.retrievable}
        kept = interaction.id in report.recall["kept_retrievable"]
        if record.state is RecallState.SAID:
            assert record.said == record.checks > 0
            # drained: the weights say it, and memory on still does once it has left;
            # kept back when what stays retrievable pulled its memory-on answer away
            assert statuses == {MemoryStatus.BUFFERED if kept else MemoryStatus.CONSOLIDATED}
        else:
            assert not kept
            assert statuses == {MemoryStatus.BUFFERED}  # still retrievable
    # a drained memory that a memory-on answer since (the demo's, these tests') found the
    # weights missing is back in retrieval, marked missed (backstop.py)
    said_ones = [r for r in states.values() if r.state in (RecallState.SAID, RecallState.MISSED)]
    missed = [r for r in states.values() if r.state is RecallState.MISSED]
    assert all(r.said == r.checks > 0 for r in missed)
    assert len(said_ones) == report.recall["verified_new"] >= 3
    assert report.recall["drained_new"] == len(said_ones) - len(report.recall["kept_retrievable"])
    assert report.recall["memories_lost"] == []


def test_status_adapters_show_and_memories_list_say_what_the_weights_hold(taught):
    agent, report = taught
    home = ["--home", str(agent.config.home)]
    cli = CliRunner()
    out = cli.invoke(app, ["status", *home])
    assert out.exit_code == 0, out.output
    said_line = next(line for line in out.output.splitlines() if "said from the weights" in line)
    recall = report.recall
    assert f"{recall['weights_said_after']}/{recall['check_questions']}" in said_line
    out = cli.invoke(app, ["memories", "list", "--user", "maya", *home])
    assert out.exit_code == 0 and "said 2/2" in out.output
    out = cli.invoke(app, ["adapters", "show", report.version_id, *home])
    assert out.exit_code == 0, out.output
    assert f"memories said from these weights: {recall['verified_new']}/" in out.output
    manifest = json.loads((agent.adapters.active("maya", "default").path / "manifest.json").read_text())
    assert manifest["metrics"]["weights_said_after"] == recall["weights_said_after"]


def test_a_drained_memory_the_weights_miss_is_still_answered_and_returns_to_retrieval(
    taught, tmp_path, lm, embedder
) -> None:
    """The backstop (backstop.py), on a copy of the demo's home. A drain certificate can be
    wrong on wording it never asked (the held-out run lost 3 of 13 drained memories so):
    here a memory is drained that the weights never saw, as a wrong certificate would."""
    import shutil

    from seal_agent.agent import SealAgent
    from seal_agent.config import load_config
    from seal_agent.facts_store import RecallRecord

    _, report = taught
    home = tmp_path / "home"
    shutil.copytree(taught[0].config.home, home)
    agent = SealAgent(load_config(home=home, agent={"derive": "inline"}), lm=lm,
                      embedder=embedder, user_id="maya")
    question, key = "What is my cat's name?", "Pickles"
    iid = agent.remember("My cat is called Pickles.").interaction_id
    facts = FactStore(agent.journal)
    assert facts.load([iid]), "derivation wrote no probes for the new memory"
    edits = [e.id for e in agent.journal.self_edits(interaction_id=iid) if e.retrievable]
    with agent.journal.transaction() as conn:
        agent.journal.set_status(edits, MemoryStatus.CONSOLIDATED, conn)
        facts.record(conn, [RecallRecord(iid, RecallState.SAID, 2, 2, report.version_id,
                                         "2026-01-01T00:00:00")], "maya", "default", None)
    agent.buffer.set_status(edits, MemoryStatus.CONSOLIDATED)
    assert iid not in {m.interaction_id for m in agent.recall(question)}  # drained
    assert not said(agent.answers([question], retrieval=False)[0], key)  # the weights miss it

    # memory on, through the adapter: the answer misses the drained memory, so the turn is
    # answered again with it in the prompt, and it is retrievable once more
    result = agent.chat(question)
    assert said(result.answer, key), result.answer
    assert iid in {m.interaction_id for m in result.memories}
    meta = agent.journal.get_interaction(result.interaction_id).metadata
    assert meta["backstop"] == [iid] and meta["returned_to_retrieval"] == [iid]
    assert facts.state_of([iid])[iid].state is RecallState.MISSED
    assert {e.status for e in agent.journal.self_edits(interaction_id=iid) if e.retrievable} == {
        MemoryStatus.BUFFERED}
    # (recall filters on the buffer's own copy of the status: it followed the journal)
    assert iid in {m.interaction_id for m in agent.recall(question)}

    # a streamed turn (another session) with drained matches comes whole, logged as shown
    streamed = agent.stream(UNSEEN[1][0], session_id="later")
    text = "".join(streamed)
    assert streamed.result is not None and streamed.result.answer == text
    agent.close()
