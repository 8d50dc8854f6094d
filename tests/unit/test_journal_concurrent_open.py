"""Several processes opening one new memory home at the same moment (issue 11).

Four workers that start together used to race to create the schema: all read
``user_version = 0``, all ran migration 1, and three of four died with a false
``CorruptHomeError`` ("table interactions already exists"). These tests start
real processes, hold them at a start file so they really race, and check that
every one opens the home and that every statement lands.  The first two run
once per engine: the SQLite file, and a new PostgreSQL database (whose
migrations are serialised by the journal's advisory lock).
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
from pathlib import Path

import pytest

from seal_agent.errors import CorruptHomeError
from seal_agent.journal import SCHEMA_VERSION, Journal

WORKERS = 4
STATEMENTS = 5


def _wait_for(start_file: str) -> None:
    # Spin (no sleep) so the workers leave the gate within microseconds of each other.
    deadline = time.monotonic() + 60
    while not os.path.exists(start_file):
        if time.monotonic() > deadline:
            raise TimeoutError("start file never appeared")


def _open_and_remember(
    home: str, url: str | None, start_file: str, worker: int, ready: str
) -> None:
    """Child process: open the home through the public API with derivation off."""
    for key in [k for k in os.environ if k.upper().startswith("SEAL_AGENT_")]:
        del os.environ[key]
    from seal_agent import SealAgent  # imported before the gate: only the open races

    Path(ready).touch()
    _wait_for(start_file)
    journal = {"url": url} if url else {}
    agent = SealAgent.open(home, user_id=f"u{worker}", agent={"derive": "off"}, journal=journal)
    try:
        for n in range(STATEMENTS):
            agent.remember(f"Worker {worker} statement {n}: the kettle is blue.")
    finally:
        agent.close()


def _open_journal(path: str, start_file: str, ready: str) -> None:
    Path(ready).touch()
    _wait_for(start_file)
    Journal(path).close()


def _race(target: object, args_for: list[tuple[object, ...]], gate: Path) -> list[int]:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args) for args in args_for]  # type: ignore[arg-type]
    for proc in procs:
        proc.start()
    readies = [Path(str(args[-1])) for args in args_for]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in readies):
        assert time.monotonic() < deadline, "workers never got ready"
        time.sleep(0.01)
    gate.touch()
    for proc in procs:
        proc.join(120)
    return [proc.exitcode if proc.exitcode is not None else -999 for proc in procs]


def test_four_processes_create_one_new_home_at_once(
    tmp_path: Path, journal_target: str | Path
) -> None:
    home = tmp_path / "home"
    gate = tmp_path / "go"
    url = journal_target if isinstance(journal_target, str) else None
    args = [(str(home), url, str(gate), w, str(tmp_path / f"ready{w}")) for w in range(WORKERS)]
    codes = _race(_open_and_remember, args, gate)
    assert codes == [0] * WORKERS

    with Journal(journal_target) as journal:
        assert journal.schema_version == SCHEMA_VERSION
        rows = journal.execute("SELECT user_id, COUNT(*) AS n FROM interactions GROUP BY user_id")
    assert {r["user_id"]: r["n"] for r in rows} == {f"u{w}": STATEMENTS for w in range(WORKERS)}


def test_journals_opened_at_once_migrate_once(tmp_path: Path, journal_target: str | Path) -> None:
    path = journal_target
    gate = tmp_path / "go"
    args = [(str(path), str(gate), str(tmp_path / f"ready{w}")) for w in range(WORKERS)]
    codes = _race(_open_journal, args, gate)
    assert codes == [0] * WORKERS
    if isinstance(path, str):  # PostgreSQL: one version row, every table once
        import psycopg

        with psycopg.connect(path) as db:
            assert db.execute("SELECT version FROM schema_version").fetchall() == [
                (SCHEMA_VERSION,)
            ]
            tables = [r[0] for r in db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
        assert len(tables) == len(set(tables)) and "interactions" in tables
        return

    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


def test_a_truncated_journal_is_still_a_corrupt_home(tmp_path: Path) -> None:
    """The race fix must not hide real damage: a cut-off file is still refused."""
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\x00garbage" * 64)
    with pytest.raises(CorruptHomeError, match="not a readable SQLite database"):
        Journal(path)
