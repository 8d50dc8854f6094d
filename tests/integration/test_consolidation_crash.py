"""A consolidation killed at any moment leaves the previous adapter active and the
journal consistent; the next run settles the batch: a newer fact beats the one it
contradicts, a remark with nothing to check stays retrievable, and the first
batch is still answered.

One test, because each step needs the one before: two consolidations of the real
default model (recall mode, seeded) are the cost, shared by both concerns.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seal_agent import MemoryStatus
from seal_agent.cli import app
from seal_agent.facts import said
from seal_agent.facts_store import FactStore, RecallState

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# The default (recall) mode, seeded; relation templates only, so each process writes the
# same pairs quickly. Replay is most of the training tokens at the defaults (three replay
# examples per memory example, from a pool of 48): a smaller share of a smaller pool keeps
# four trainings of the real model short. The gate still checks all its general questions.
FAST = {"model_pairs": False, "replay_general": 16, "replay_ratio": 1.5}

# The child consolidates and stops dead (SIGSTOP-free: it sleeps) at the named
# stage so that the test can kill it exactly there.
CHILD = textwrap.dedent(
    """
    import sys, time, json
    from seal_agent import SealAgent
    home, stop_at = sys.argv[1], sys.argv[2]
    agent = SealAgent.open(home, user_id="kim", agent={"derive": "off"},
                           consolidation=json.loads(sys.argv[3]))
    def progress(event):
        if event.stage == stop_at:
            print("at", stop_at, flush=True)
            time.sleep(600)
    report = agent.consolidate(progress=progress)
    print("finished", report.status, report.reason, flush=True)
    """
)


def _active(db: Path) -> str | None:
    with sqlite3.connect(db) as con:
        row = con.execute(
            "SELECT v.version FROM active_adapters a JOIN adapter_versions v ON v.id = a.version_id"
        ).fetchone()
    return row[0] if row else None


def test_killed_runs_keep_the_previous_adapter_and_the_next_run_settles_the_batch(
    tmp_path: Path, make_agent
) -> None:
    import json

    home = tmp_path / "home"
    agent = make_agent(home=home, consolidation=FAST)
    agent.remember("My dog is a beagle called Biscuit.", user_id="kim")
    agent.remember("My sister Ines lives in Reykjavik.", user_id="kim")
    first = agent.consolidate(user_id="kim")
    assert first.status == "promoted", first.reason
    agent.remember("I work as a glassblower in Tacoma.", user_id="kim")
    agent.remember("My sister Ines lives in Bergen.", user_id="kim")  # moved: the newer city wins
    agent.remember("Honestly, the weather has been strange lately.", user_id="kim")  # nothing to check
    agent.close()
    db = home / "journal.sqlite3"
    assert _active(db) == 1

    # "score": training has begun, nothing is written yet (a kill later in training leaves the
    # same: the weights are only in memory); "staged": the new version's folder is on disk
    for stop_at in ("score", "staged"):
        errors = tmp_path / f"child-{stop_at}.err"
        with errors.open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(home), stop_at, json.dumps(FAST)],
                stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO,
            )
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        # every stage is reached: the facts are trained and said
        assert line == f"at {stop_at}", (line, proc.stdout.read(), errors.read_text()[-3000:])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        with sqlite3.connect(db) as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            # nothing of the killed run became visible to the agent
            consolidated = con.execute(
                "SELECT COUNT(*) FROM self_edits WHERE status = 'consolidated' AND text LIKE '%glassblower%'"
            ).fetchone()[0]
            # nor did any record of what the new weights say
            recorded = con.execute(
                "SELECT COUNT(*) FROM weights_recall w JOIN interactions i ON i.id = w.interaction_id "
                "WHERE i.messages LIKE '%glassblower%' OR i.messages LIKE '%Bergen%'"
            ).fetchone()[0]
        assert consolidated == 0 and recorded == 0, stop_at
        assert _active(db) == 1, stop_at
        if stop_at == "staged":  # the new version's folder exists, but is not active
            assert (home / "adapters" / "kim" / "default" / "memory" / "v0002").is_dir()

    # the next run (this process) cleans up, marks the dead runs abandoned, and promotes
    agent = make_agent(home=home, consolidation=FAST)
    report = agent.consolidate(user_id="kim")
    assert report.status == "promoted", report.reason
    with sqlite3.connect(db) as con:
        statuses = [r[0] for r in con.execute("SELECT status FROM consolidation_runs ORDER BY rowid")]
    assert statuses == ["promoted", "abandoned", "abandoned", "promoted"]
    assert _active(db) == 2
    assert not any(p.name.startswith(".tmp") for p in (home / "adapters" / "kim" / "default" / "memory").iterdir())

    # the older city's memory is retired, never trained against; the newer one wins
    assert report.recall["superseded"] == 1
    states = FactStore(agent.journal).states("kim", "default")
    old = [i for i, r in states.items() if r.state is RecallState.SUPERSEDED]
    assert len(old) == 1 and "Reykjavik" in agent.journal.get_interaction(old[0]).user_text
    assert all(e.status is MemoryStatus.REJECTED for e in agent.journal.self_edits(interaction_id=old[0]))
    # the remark had nothing to check: marked, never trained, still retrievable
    assert sum(r.state is RecallState.UNCHECKABLE for r in states.values()) == 1
    assert any("weather" in h.text for h in agent.recall("what's the weather been like", user_id="kim", top_k=3))
    out = CliRunner().invoke(app, ["memories", "list", "--user", "kim", "--home", str(home)])
    assert out.exit_code == 0 and "uncheckable" in out.output
    # every other memory is said from the weights or still retrievable; memory on answers all
    for iid, record in states.items():
        if record.state in (RecallState.SUPERSEDED, RecallState.UNCHECKABLE):
            continue
        statuses_of = {e.status for e in agent.journal.self_edits(interaction_id=iid) if e.retrievable}
        assert statuses_of == ({MemoryStatus.CONSOLIDATED} if record.state is RecallState.SAID
                               else {MemoryStatus.BUFFERED}), (iid, record)
    answers = agent.answers(["Where does my sister live?", "What is my job?", "What is my dog called?"],
                            user_id="kim", retrieval=True)
    assert said(answers[0], "Bergen") and not said(answers[0], "Reykjavik"), answers[0]
    assert said(answers[1], "glassblower"), answers[1]
    assert said(answers[2], "Biscuit"), answers[2]  # the first batch is still there
