"""The README's first command, end to end: examples/quickstart.py on the
embedded defaults, its second phase in a new process."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_quickstart_runs_end_to_end(tmp_path: Path) -> None:
    home = tmp_path / "quickstart"
    done = subprocess.run(
        [sys.executable, "examples/quickstart.py", "--home", str(home)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )
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
