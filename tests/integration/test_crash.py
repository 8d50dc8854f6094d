"""A process killed mid-turn loses nothing: the journal keeps the interaction,
and `seal-agent reprocess` redoes what was cut short."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

TURN = textwrap.dedent(
    """
    import sys
    from seal_agent import SealAgent
    agent = SealAgent.open(sys.argv[1], user_id="kim", agent={"derive": "inline"})
    _ = agent.lm, agent.buffer          # load everything before the turn starts
    print("ready", flush=True)
    agent.chat("My cat is called Pixel and she is four years old.")
    print("finished", flush=True)
    """
)


def _poll(db: Path, sql: str, timeout: float = 240.0) -> None:
    """Wait until ``sql`` returns a row in the journal (read by another process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as con:
                    if con.execute(sql).fetchone():
                        return
            except sqlite3.OperationalError:
                pass  # schema not created yet
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {sql}")


@pytest.mark.parametrize(
    "moment, wait_for",
    [
        # the user's message is committed; the model is still answering
        ("while answering", "SELECT 1 FROM interactions"),
        # the answer is committed; self-edits are being written
        ("while deriving", "SELECT 1 FROM interactions WHERE metadata LIKE '%prompt_tokens%'"),
    ],
)
def test_sigkill_mid_turn_then_reprocess(tmp_path: Path, moment: str, wait_for: str) -> None:
    home = tmp_path / "home"
    db = home / "journal.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", TURN, str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        _poll(db, wait_for)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()

    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = con.execute("SELECT messages, derive_status FROM interactions").fetchall()
        edits = con.execute("SELECT COUNT(*) FROM self_edits").fetchone()[0]
    assert len(rows) == 1, f"the interaction must survive a kill {moment}"
    messages, status = rows[0]
    assert "Pixel" in messages
    assert status == "pending"
    assert edits == 0  # nothing derived was half-written

    env = {**os.environ, "SEAL_AGENT_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "seal_agent", "reprocess"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "derived 1, failed 0" in done.stdout

    found = subprocess.run(
        [sys.executable, "-m", "seal_agent", "memories", "search", "name of my cat", "--user", "kim"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert found.returncode == 0, found.stderr
    assert "Pixel" in found.stdout
