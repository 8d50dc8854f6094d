"""A policy run's folder: its settings fingerprint, and the append-only log that makes it resumable.

Every finished unit of work (a context sampled, a selection, an update, a
round) is one JSON line in ``events.jsonl``, flushed and fsynced, so a run
killed at any point (SIGKILL included) resumes from the last finished unit:
a line cut short by the kill is dropped on reopening. A run is found again
by the fingerprint of its settings, episodes, scope and consolidation
settings in ``run.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["RunLog", "now", "open_run"]


class RunLog:
    """Append-only JSON lines, one per finished unit of work; fsynced per line."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "events.jsonl"
        self.events: list[dict[str, Any]] = []
        if self.path.exists():
            data = self.path.read_bytes()
            cut = data.rfind(b"\n") + 1
            if cut < len(data):  # a line cut short by a kill: drop it
                with self.path.open("r+b") as fh:
                    fh.truncate(cut)
                data = data[:cut]
            self.events = [json.loads(line) for line in data.decode().splitlines() if line.strip()]

    def append(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, sort_keys=True, default=str) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.events.append(json.loads(line))

    def find(self, kind: str, **keys: Any) -> dict[str, Any] | None:
        for event in self.events:
            if event.get("kind") == kind and all(event.get(k) == v for k, v in keys.items()):
                return event
        return None


def open_run(
    runs_dir: Path, key: dict[str, Any], method: str, origin: str, start: Any, fresh: bool,
    reuse_finished: bool = False,
) -> tuple[str, RunLog, bool]:
    """An unfinished run under ``runs_dir`` with the same ``key``, or a new one.

    Returns the run id, its log, and whether it was resumed. ``start``: the
    policy version the run starts from (None: the base model).
    """
    fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    runs_dir.mkdir(parents=True, exist_ok=True)
    if not fresh:
        for folder in sorted(runs_dir.iterdir(), reverse=True):
            meta_path = folder / "run.json"
            if not meta_path.is_file():
                continue
            meta = json.loads(meta_path.read_text())
            log = RunLog(folder)
            if meta.get("fingerprint") == fingerprint and (
                reuse_finished or log.find("finished") is None
            ):
                return folder.name, log, True
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + method + "-" + fingerprint[:6]
    folder = runs_dir / run_id
    folder.mkdir()
    meta = {"fingerprint": fingerprint, "created": now(), "key": key, "origin": origin,
            "start_label": start.id if start else "base",
            "start_version_id": start.id if start else None}
    tmp = folder / "run.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
    os.replace(tmp, folder / "run.json")
    return run_id, RunLog(folder), False


def now() -> str:
    """The time of an event, as the log records it (UTC, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
