"""A consolidation killed at any moment leaves the previous adapter active,
the journal consistent, and a re-run succeeds."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# The default (recall) mode, seeded; relation templates only, so each process writes the
# same pairs quickly.
FAST = {"model_pairs": False}

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
    print("finished", report.status, flush=True)
    """
)


def _active(db: Path) -> str | None:
    with sqlite3.connect(db) as con:
        row = con.execute(
            "SELECT v.version FROM active_adapters a JOIN adapter_versions v ON v.id = a.version_id"
        ).fetchone()
    return row[0] if row else None


def test_killed_consolidation_keeps_the_previous_adapter(tmp_path: Path, make_agent) -> None:
    import json

    home = tmp_path / "home"
    agent = make_agent(home=home, consolidation=FAST)
    agent.remember("My dog is a beagle called Biscuit.", user_id="kim",
                   probes=[("What is my dog called?", "Biscuit")])
    first = agent.consolidate(user_id="kim")
    assert first.status == "promoted", first.reason
    agent.remember("I work as a glassblower in Tacoma.", user_id="kim",
                   probes=[("What is my job?", "glassblower")])
    agent.close()
    db = home / "journal.sqlite3"
    assert _active(db) == 1

    for stop_at in ("train", "gate", "staged"):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(home), stop_at, json.dumps(FAST)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == f"at {stop_at}"  # every stage is reached: the fact is trained and said
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        with sqlite3.connect(db) as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            # nothing of the killed run became visible to the agent
            consolidated = con.execute(
                "SELECT COUNT(*) FROM self_edits WHERE status = 'consolidated' AND text LIKE '%glassblower%'"
            ).fetchone()[0]
        assert consolidated == 0, stop_at
        assert _active(db) == 1, stop_at
        with sqlite3.connect(db) as con:  # nor did any record of what the new weights say
            said = con.execute(
                "SELECT COUNT(*) FROM weights_recall w JOIN interactions i ON i.id = w.interaction_id "
                "WHERE i.messages LIKE '%glassblower%'"
            ).fetchone()[0]
        assert said == 0, stop_at
        if stop_at == "staged":  # the new version's folder exists, but is not active
            assert (home / "adapters" / "kim" / "default" / "memory" / "v0002").is_dir()

    # a re-run cleans up, marks the dead runs abandoned, and succeeds
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(home), "never", json.dumps(FAST)],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "finished" in done.stdout
    with sqlite3.connect(db) as con:
        statuses = [r[0] for r in con.execute("SELECT status FROM consolidation_runs ORDER BY rowid")]
    assert statuses[0] == "promoted"
    assert statuses[1:4] == ["abandoned"] * 3
    assert "finished promoted" in done.stdout, done.stdout
    assert _active(db) == 2
    assert not any(p.name.startswith(".tmp") for p in (home / "adapters" / "kim" / "default" / "memory").iterdir())
