"""The model cache's conversion lock (models/packaged.py): waits for its holder,
and a holder killed with SIGKILL never leaves it stuck."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from seal_agent.models.packaged import _file_lock

REPO = Path(__file__).resolve().parents[2]

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from seal_agent.models.packaged import _file_lock
    with _file_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_the_conversion_lock_waits_and_is_freed_by_a_killed_holder(tmp_path: Path) -> None:
    path = tmp_path / "cache" / ".entry.lock"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        got = threading.Event()

        def take() -> None:
            with _file_lock(path):
                got.set()

        waiter = threading.Thread(target=take, daemon=True)
        waiter.start()
        assert not got.wait(0.5), "the lock was taken while another process held it"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert got.wait(10), "a killed holder left the lock stuck"
        waiter.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert path.is_file()  # the lock file stays, as before
