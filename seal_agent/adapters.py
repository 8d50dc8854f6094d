"""The adapter store: versioned, checksummed LoRA adapters, crash-safe on disk.

Layout, one immutable folder per version::

    <adapters_dir>/<user_id>/<agent_id>/.lock          the namespace's consolidation lock
    <adapters_dir>/<user_id>/<agent_id>/<kind>/v0003/  adapter files + manifest.json

The journal says which versions exist and which one is active; a folder is
only a candidate until its row is committed.  That split is what makes a
crash harmless at every point:

* ``stage`` writes into ``.tmp-v0003-<random>``, fsyncs every file and folder,
  then renames it to ``v0003`` (atomic).  A crash leaves a temp folder or an
  unreferenced ``v0003``, never a half-written folder the journal points at.
* ``promote`` inserts the version row, moves the active pointer and runs the
  caller's own updates (self-edits consolidated, run finished) in one SQLite
  transaction: all of it happens, or none of it.
* ``cleanup`` removes what a crash left (temp folders, folders with no row).
* ``loadable`` checks the active version's checksums before anyone loads it,
  and falls back to the newest earlier version that still verifies.

One consolidation per namespace at a time, across processes and hosts,
through a :class:`NamespaceLock`: ``flock`` on the namespace's ``.lock`` file
when the journal is SQLite, a session-level PostgreSQL advisory lock when it
is PostgreSQL (``flock`` is unreliable across hosts on a shared folder).
Either way the lock dies with its holder: the kernel drops a dead process's
``flock``, the server a dead session's advisory lock, so a killed
consolidation never leaves a namespace stuck.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import filelock
import psutil
from pydantic import Field

from seal_agent.errors import (
    AdapterNotFoundError,
    ConfigError,
    ConsolidationBusyError,
    ConsolidationError,
    CorruptAdapterError,
)
from seal_agent.journal import Connection, Journal, advisory_key, new_id
from seal_agent.runs import RunStatus  # defined with ReportStatus; still importable here
from seal_agent.types import FrozenModel, check_id

if TYPE_CHECKING:
    from seal_agent.config import SealAgentConfig

__all__ = [
    "ADAPTER_KINDS",
    "MANIFEST",
    "AdapterStore",
    "AdapterVersion",
    "NamespaceLock",
    "RunStatus",
    "StagedVersion",
]

log = logging.getLogger("seal_agent.adapters")

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1  # bump when the manifest's shape changes
ADAPTER_KINDS = ("memory", "policy")  # memory: what the user taught; policy: the self-edit writer
_VERSION_DIR = re.compile(r"^v(\d{4,})$")
_TMP_PREFIX = ".tmp-"
_LOCK_FILE = ".lock"
_CHUNK = 1 << 20


class AdapterVersion(FrozenModel):
    """One promoted adapter version, as the journal records it."""

    id: str
    user_id: str
    agent_id: str
    kind: str
    version: int
    path: Path
    manifest_sha256: str
    run_id: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    active: bool = False

    @property
    def name(self) -> str:
        """The folder name, ``v0003``: what messages and the CLI show."""
        return _dirname(self.version)


class StagedVersion(FrozenModel):
    """A version whose folder is complete on disk but that the journal does not know yet."""

    id: str  # chosen at staging and written into the manifest, so folder and row match
    user_id: str
    agent_id: str
    kind: str
    version: int
    path: Path
    manifest_sha256: str
    run_id: str | None = None
    parent_id: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime

    @property
    def name(self) -> str:
        return _dirname(self.version)


class AdapterStore:
    """Adapter versions of every namespace under one folder, indexed by the journal.

    Every method that changes something (``stage``, ``promote``, ``rollback``,
    ``prune``, ``cleanup``) takes the namespace's lock itself, or reuses it
    when the calling thread already holds it through :meth:`lock`.  A
    consolidation should hold :meth:`lock` around its whole stage-and-promote
    so no other process can clean up or prune between the two.

    (Annotations below the ``list`` method spell ``builtins.list``: inside the
    class body the bare name is the method.)
    """

    def __init__(self, root: str | Path, journal: Journal) -> None:
        self.root = Path(root).expanduser()
        self.journal = journal
        self._locks: dict[tuple[str, str], NamespaceLock] = {}
        self._locks_guard = threading.Lock()

    @classmethod
    def from_config(cls, config: SealAgentConfig, journal: Journal) -> AdapterStore:
        return cls(config.adapters_dir, journal)

    # -- the namespace lock ----------------------------------------------------
    @contextlib.contextmanager
    def lock(self, user_id: str, agent_id: str) -> Iterator[None]:
        """Hold the namespace's consolidation lock, or raise ConsolidationBusyError.

        Re-entrant for the thread that holds it (so ``stage`` inside ``lock``
        works); another thread, another store object or another process is
        refused at once, never queued.
        """
        key = (check_id(user_id, "user_id"), check_id(agent_id, "agent_id"))
        ns_lock = self._ns_lock(*key)
        if not ns_lock.try_acquire():
            raise ConsolidationBusyError(
                f"namespace {key[0]}/{key[1]} is being consolidated by {ns_lock.holder()}; "
                "try again when it finishes"
            )
        try:
            yield
        finally:
            ns_lock.release()

    def _ns_lock(self, user_id: str, agent_id: str) -> NamespaceLock:
        """The namespace's lock (one per store: it counts the holding thread's re-entries)."""
        with self._locks_guard:
            found = self._locks.get((user_id, agent_id))
            if found is None:
                if self.journal.dialect == "postgresql":
                    found = AdvisoryNamespaceLock(self.journal, user_id, agent_id)
                else:
                    found = FileNamespaceLock(self.root / user_id / agent_id / _LOCK_FILE, user_id,
                                              agent_id)
                self._locks[(user_id, agent_id)] = found
            return found

    # -- writing -----------------------------------------------------------------
    def stage(
        self,
        user_id: str,
        agent_id: str,
        kind: str,
        save: Callable[[Path], None],
        *,
        config: dict[str, Any],
        metrics: dict[str, Any],
        run_id: str | None = None,
        parent_id: str | None = None,
    ) -> StagedVersion:
        """Write a new version's folder durably; the journal does not know it yet.

        ``save(folder)`` writes the adapter files (``model.save_pretrained``);
        the store adds ``manifest.json`` with the checksum of every file.  On
        any error the half-written folder is removed and a ConsolidationError
        raised (``from`` the original).
        """
        kind_dir = self._kind_dir(user_id, agent_id, kind)
        ns = f"{user_id}/{agent_id}"
        with self.lock(user_id, agent_id):
            if run_id is not None:
                self._require_run(run_id)
            if parent_id is not None:
                parent = self.get(parent_id)
                if (parent.user_id, parent.agent_id, parent.kind) != (user_id, agent_id, kind):
                    raise ConsolidationError(
                        f"parent {parent_id} is a {parent.kind} adapter of "
                        f"{parent.user_id}/{parent.agent_id}, not of {ns} ({kind})"
                    )
            number = self._next_version(user_id, agent_id, kind, kind_dir)
            name = _dirname(number)
            final = kind_dir / name
            tmp: Path | None = None
            renamed = False
            try:
                _makedirs(kind_dir)
                tmp = kind_dir / f"{_TMP_PREFIX}{name}-{secrets.token_hex(4)}"
                tmp.mkdir()
                save(tmp)
                files = _seal_files(tmp)  # hashes and fsyncs what save wrote
                version_id = new_id("adp")
                created = _now()
                manifest = {
                    "format": MANIFEST_FORMAT,
                    "id": version_id,
                    "version": number,
                    "kind": kind,
                    "namespace": {"user_id": user_id, "agent_id": agent_id},
                    "created_at": created,
                    "run_id": run_id,
                    "parent_id": parent_id,
                    "seal_agent_version": _seal_agent_version(),
                    "files": files,
                    "config": config,
                    "metrics": metrics,
                }
                data = json.dumps(
                    manifest, indent=2, sort_keys=True, ensure_ascii=False, default=str
                ).encode()
                _write_durable(tmp / MANIFEST, data)
                _fsync_dir(tmp)
                os.rename(tmp, final)  # fails if `final` exists: never overwrite a version
                renamed = True
                _fsync_dir(kind_dir)  # the rename itself survives power loss
            except BaseException as exc:
                if renamed:
                    shutil.rmtree(final, ignore_errors=True)
                elif tmp is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
                if isinstance(exc, ConsolidationError) or not isinstance(exc, Exception):
                    raise
                if isinstance(exc, OSError):
                    raise ConsolidationError(
                        f"could not write {kind} adapter {name} of {ns} under {kind_dir}: {exc}"
                    ) from exc
                raise ConsolidationError(
                    f"saving {kind} adapter {name} of {ns} failed: {exc!r}"
                ) from exc
        return StagedVersion(
            id=version_id,
            user_id=user_id,
            agent_id=agent_id,
            kind=kind,
            version=number,
            path=final,
            manifest_sha256=hashlib.sha256(data).hexdigest(),
            run_id=run_id,
            parent_id=parent_id,
            metrics=metrics,
            created_at=datetime.fromisoformat(created),
        )

    def promote(
        self,
        staged: StagedVersion,
        *,
        also: Callable[[Connection], None] | None = None,
    ) -> AdapterVersion:
        """Record a staged version and make it active, in one journal transaction.

        ``also(conn)`` runs inside that transaction (mark self-edits
        consolidated, ``finish_run(conn, ...)``); it must not commit.  If
        anything raises, the journal is left exactly as it was and the staged
        folder stays for :meth:`cleanup`; exceptions from ``also`` propagate
        unchanged, database errors become ConsolidationError.
        """
        ns = f"{staged.user_id}/{staged.agent_id}"
        with self.lock(staged.user_id, staged.agent_id):
            try:
                digest, _ = _hash_file(staged.path / MANIFEST)
            except OSError as exc:
                raise ConsolidationError(
                    f"staged {staged.kind} adapter {staged.name} of {ns} is gone from "
                    f"{staged.path} ({exc}); was it cleaned up before promotion?"
                ) from exc
            if digest != staged.manifest_sha256:
                raise CorruptAdapterError(
                    f"staged {staged.kind} adapter {staged.name} of {ns}: {MANIFEST} changed "
                    "after staging"
                )
            updated = _now()
            try:
                with self.journal.transaction() as conn:
                    if conn.execute(
                        "SELECT 1 FROM adapter_versions WHERE id = ? OR (user_id = ? AND "
                        "agent_id = ? AND kind = ? AND version = ?)",
                        (staged.id, staged.user_id, staged.agent_id, staged.kind, staged.version),
                    ).fetchone():
                        raise ConsolidationError(
                            f"{staged.kind} adapter {staged.name} of {ns} is promoted already"
                        )
                    conn.execute(
                        "INSERT INTO adapter_versions (id, user_id, agent_id, kind, version, path, "
                        "manifest_sha256, run_id, metrics, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (staged.id, staged.user_id, staged.agent_id, staged.kind, staged.version,
                         self._relative(staged.path), staged.manifest_sha256, staged.run_id,
                         _dumps(staged.metrics),
                         staged.created_at.isoformat(timespec="microseconds")),
                    )
                    _set_active(conn, staged.user_id, staged.agent_id, staged.kind, staged.id, updated)
                    if also is not None:
                        also(conn)
            except self.journal.errors as exc:
                raise ConsolidationError(
                    f"could not promote {staged.kind} adapter {staged.name} of {ns}: {exc}"
                ) from exc
        return self.get(staged.id)

    def rollback(
        self,
        user_id: str,
        agent_id: str,
        kind: str = "memory",
        to_version: int | None = None,
    ) -> AdapterVersion:
        """Point the namespace at an earlier (or any listed) version, once it verifies.

        Without ``to_version``: the newest version older than the active one.
        """
        ns = f"{user_id}/{agent_id}"
        with self.lock(user_id, agent_id):
            versions = self.list(user_id, agent_id, kind)
            current = next((v for v in versions if v.active), None)
            if to_version is None:
                if current is None:
                    raise AdapterNotFoundError(
                        f"{ns} has no active {kind} adapter: nothing to roll back from"
                    )
                target = next((v for v in versions if v.version < current.version), None)
                if target is None:
                    raise AdapterNotFoundError(
                        f"{current.name} is the oldest {kind} adapter of {ns}: nothing to roll "
                        "back to"
                    )
            else:
                target = next((v for v in versions if v.version == to_version), None)
                if target is None:
                    have = ", ".join(v.name for v in versions) or "none"
                    raise AdapterNotFoundError(
                        f"{ns} has no {kind} adapter {_dirname(to_version)} (have: {have})"
                    )
            self.verify(target)
            with self.journal.transaction() as conn:
                _set_active(conn, user_id, agent_id, kind, target.id, _now())
        return target.model_copy(update={"active": True})

    def prune(
        self, user_id: str, agent_id: str, kind: str = "memory", keep: int = 3
    ) -> list[AdapterVersion]:
        """Delete the oldest versions beyond the newest ``keep``; the active one always stays.

        The newest version always stays too (``keep >= 1``), so version
        numbers never go back down.  Rows go first, in one transaction; a
        crash before the folders are gone leaves folders ``cleanup`` removes.
        """
        if keep < 1:
            raise ConfigError(f"keep must be at least 1, got {keep}")
        with self.lock(user_id, agent_id):
            doomed = [v for v in self.list(user_id, agent_id, kind)[keep:] if not v.active]
            removed: list[AdapterVersion] = []
            if doomed:
                with self.journal.transaction() as conn:
                    for v in doomed:
                        cur = conn.execute(
                            "DELETE FROM adapter_versions WHERE id = ? AND id NOT IN "
                            "(SELECT version_id FROM active_adapters)",
                            (v.id,),
                        )
                        if cur.rowcount:
                            removed.append(v)
            for v in removed:
                try:
                    shutil.rmtree(v.path)
                except FileNotFoundError:
                    pass
                except OSError as exc:  # the journal is consistent; cleanup retries
                    log.warning("pruned %s but could not remove %s: %s", v.name, v.path, exc)
            if removed:
                with contextlib.suppress(OSError):
                    _fsync_dir(self._kind_dir(user_id, agent_id, kind))
        return removed

    def cleanup(self, user_id: str, agent_id: str, kind: str = "memory") -> list[Path]:
        """Remove what a crash left: temp folders, and version folders with no journal row.

        Takes the namespace lock (or reuses the caller's), so it never removes
        a folder another process is still staging.
        """
        kind_dir = self._kind_dir(user_id, agent_id, kind)
        removed: list[Path] = []
        if not kind_dir.is_dir():  # nothing was ever staged: do not create a lock folder
            return removed
        with self.lock(user_id, agent_id):
            known = {
                int(r[0])
                for r in self.journal.execute(
                    "SELECT version FROM adapter_versions WHERE user_id = ? AND agent_id = ? "
                    "AND kind = ?",
                    (user_id, agent_id, kind),
                )
            }
            for entry in sorted(kind_dir.iterdir()):
                match = _VERSION_DIR.match(entry.name)
                orphan = match is not None and int(match[1]) not in known
                if not (orphan or entry.name.startswith(_TMP_PREFIX)):
                    continue
                try:
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
                except OSError as exc:
                    raise ConsolidationError(f"could not remove leftover {entry}: {exc}") from exc
                removed.append(entry)
            if removed:
                with contextlib.suppress(OSError):
                    _fsync_dir(kind_dir)
        return removed

    # -- reading -----------------------------------------------------------------
    def active(self, user_id: str, agent_id: str, kind: str = "memory") -> AdapterVersion | None:
        """The active version per the journal (one indexed query: cheap on every turn)."""
        rows = self.journal.execute(
            "SELECT v.*, 1 AS active FROM active_adapters a "
            "JOIN adapter_versions v ON v.id = a.version_id "
            "WHERE a.user_id = ? AND a.agent_id = ? AND a.kind = ?",
            (user_id, agent_id, kind),
        )
        return self._version(rows[0]) if rows else None

    def list(self, user_id: str, agent_id: str, kind: str = "memory") -> list[AdapterVersion]:
        """Every recorded version, newest first."""
        rows = self.journal.execute(
            "SELECT v.*, a.version_id IS NOT NULL AS active FROM adapter_versions v "
            "LEFT JOIN active_adapters a ON a.version_id = v.id "
            "WHERE v.user_id = ? AND v.agent_id = ? AND v.kind = ? ORDER BY v.version DESC",
            (user_id, agent_id, kind),
        )
        return [self._version(r) for r in rows]

    def get(self, version_id: str) -> AdapterVersion:
        rows = self.journal.execute(
            "SELECT v.*, a.version_id IS NOT NULL AS active FROM adapter_versions v "
            "LEFT JOIN active_adapters a ON a.version_id = v.id WHERE v.id = ?",
            (version_id,),
        )
        if not rows:
            raise AdapterNotFoundError(f"no adapter version with id {version_id!r}")
        return self._version(rows[0])

    def namespaces(self) -> builtins.list[tuple[str, str]]:
        """The (user_id, agent_id) pairs that have at least one recorded version."""
        rows = self.journal.execute(
            "SELECT DISTINCT user_id, agent_id FROM adapter_versions ORDER BY user_id, agent_id"
        )
        return [(r[0], r[1]) for r in rows]

    def verify(self, version: AdapterVersion) -> None:
        """Raise CorruptAdapterError unless every file matches the manifest the journal trusts."""
        problem = self._problem(version)
        if problem is not None:
            raise CorruptAdapterError(
                f"{version.kind} adapter {version.name} of {version.user_id}/{version.agent_id} "
                f"{problem} (in {version.path})"
            )

    def loadable(
        self, user_id: str, agent_id: str, kind: str = "memory"
    ) -> tuple[AdapterVersion | None, builtins.list[str]]:
        """The version to load: the active one if it verifies, else the newest earlier one that does.

        The active pointer is left alone: a failed check may be passing (a
        disk being remounted), a read path should not write, and the warnings
        keep saying what is wrong until someone runs ``rollback``.
        """
        current = self.active(user_id, agent_id, kind)
        if current is None:
            return None, []
        problem = self._problem(current)
        if problem is None:
            return current, []
        failures = [f"{current.name} {problem}"]
        for older in self.list(user_id, agent_id, kind):
            if older.version >= current.version:
                continue
            problem = self._problem(older)
            if problem is None:
                return older, [*failures[:-1], f"{failures[-1]}; using {older.name}"]
            failures.append(f"{older.name} {problem}")
        return None, [
            *failures[:-1],
            f"{failures[-1]}; no earlier {kind} adapter verifies, running without one",
        ]

    # -- consolidation runs --------------------------------------------------------
    def start_run(self, user_id: str, agent_id: str, config: dict[str, Any]) -> str:
        """Record a run as 'running', with the process that runs it (for mark_abandoned_runs)."""
        check_id(user_id, "user_id")
        check_id(agent_id, "agent_id")
        run_id = new_id("run")
        with self.journal.transaction() as conn:
            conn.execute(
                "INSERT INTO consolidation_runs (id, user_id, agent_id, status, started_at, "
                "config, metrics) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, user_id, agent_id, RunStatus.RUNNING.value, _now(), _dumps(config),
                 _dumps({"process": _this_process()})),
            )
        return run_id

    def finish_run(
        self,
        conn: Connection | None,
        run_id: str,
        status: RunStatus | str,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        """Close a run; ``metrics`` are merged over what it has (the process record stays).

        Pass the connection ``promote`` hands to ``also`` to finish the run in
        the promotion's transaction; pass None to commit on its own.
        """
        try:
            final = RunStatus(status)
        except ValueError:
            final = None
        if final is None or final is RunStatus.RUNNING:
            allowed = ", ".join(s.value for s in RunStatus if s is not RunStatus.RUNNING)
            raise ConfigError(f"cannot finish a run as {status!r}; use one of {allowed}")

        def apply(db: Connection) -> None:
            row = db.execute(
                "SELECT metrics FROM consolidation_runs WHERE id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise ConsolidationError(f"no consolidation run with id {run_id!r}")
            merged = {**json.loads(row[0]), **(metrics or {})}
            db.execute(
                "UPDATE consolidation_runs SET status = ?, finished_at = ?, metrics = ? "
                "WHERE id = ?",
                (final.value, _now(), _dumps(merged), run_id),
            )

        if conn is not None:
            apply(conn)
            return
        with self.journal.transaction() as db:
            apply(db)

    def last_run(self, user_id: str | None = None, agent_id: str | None = None) -> dict[str, Any] | None:
        """The most recently started run (of a user, or a user-agent pair), JSON fields decoded."""
        where, args = [], []
        for column, value in (("user_id", user_id), ("agent_id", agent_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT * FROM consolidation_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.journal.execute(sql + " ORDER BY started_at DESC, rowid DESC LIMIT 1", args)
        if not rows:
            return None
        run = dict(rows[0])
        run["config"] = json.loads(run["config"])
        run["metrics"] = json.loads(run["metrics"])
        return run

    def mark_abandoned_runs(self) -> builtins.list[str]:
        """Mark 'running' runs whose process is gone as 'abandoned'; returns their ids.

        Only runs started on this host are judged (another machine's pids mean
        nothing here), and a pid reused by a newer process counts as gone.
        """
        rows = self.journal.execute(
            "SELECT id, metrics FROM consolidation_runs WHERE status = ?", (RunStatus.RUNNING.value,)
        )
        gone = [r[0] for r in rows if _process_gone(json.loads(r[1]).get("process"))]
        if gone:
            finished = _now()
            with self.journal.transaction() as conn:
                for run_id in gone:
                    conn.execute(
                        "UPDATE consolidation_runs SET status = ?, finished_at = ? "
                        "WHERE id = ? AND status = ?",
                        (RunStatus.ABANDONED.value, finished, run_id, RunStatus.RUNNING.value),
                    )
        return gone

    # -- internals -------------------------------------------------------------------
    def _kind_dir(self, user_id: str, agent_id: str, kind: str) -> Path:
        if kind not in ADAPTER_KINDS:
            raise ConfigError(f"unknown adapter kind {kind!r}; use one of {', '.join(ADAPTER_KINDS)}")
        return self.root / check_id(user_id, "user_id") / check_id(agent_id, "agent_id") / kind

    def _relative(self, path: Path) -> str:
        """Rows hold paths relative to the root, so a memory home can be moved."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _version(self, row: Any) -> AdapterVersion:
        return AdapterVersion(
            id=row["id"],
            user_id=row["user_id"],
            agent_id=row["agent_id"],
            kind=row["kind"],
            version=row["version"],
            path=self.root / row["path"],
            manifest_sha256=row["manifest_sha256"],
            run_id=row["run_id"],
            metrics=json.loads(row["metrics"]),
            created_at=datetime.fromisoformat(row["created_at"]),
            active=bool(row["active"]),
        )

    def _next_version(self, user_id: str, agent_id: str, kind: str, kind_dir: Path) -> int:
        """1 + the highest number the journal or the disk has seen: never reuse one."""
        rows = self.journal.execute(
            "SELECT MAX(version) FROM adapter_versions WHERE user_id = ? AND agent_id = ? "
            "AND kind = ?",
            (user_id, agent_id, kind),
        )
        top = int(rows[0][0] or 0)
        if kind_dir.is_dir():
            for entry in kind_dir.iterdir():
                match = _VERSION_DIR.match(entry.name)
                if match:
                    top = max(top, int(match[1]))
        return top + 1

    def _require_run(self, run_id: str) -> None:
        if not self.journal.execute("SELECT 1 FROM consolidation_runs WHERE id = ?", (run_id,)):
            raise ConsolidationError(
                f"no consolidation run with id {run_id!r}: start it with start_run first"
            )

    def _problem(self, version: AdapterVersion) -> str | None:
        """What is wrong with a version's files, as the end of a sentence; None if nothing."""
        folder = version.path
        if not folder.is_dir():
            return "is missing its folder"
        try:
            data = (folder / MANIFEST).read_bytes()
        except FileNotFoundError:
            return f"is missing a file ({MANIFEST})"
        except OSError as exc:
            return f"could not be read ({MANIFEST}: {exc.strerror or exc})"
        if hashlib.sha256(data).hexdigest() != version.manifest_sha256:
            return f"failed its checksum ({MANIFEST})"
        manifest = json.loads(data)  # its checksum matched the journal's: trusted from here
        if manifest.get("id") != version.id:
            return f"holds another version's files ({MANIFEST})"
        for rel, expected in sorted(manifest["files"].items()):
            path = folder / rel
            try:
                if not path.is_file() or path.is_symlink():
                    return f"is missing a file ({rel})"
                digest, size = _hash_file(path)
            except OSError as exc:
                return f"could not be read ({rel}: {exc.strerror or exc})"
            if size != expected["size"]:
                return f"failed its size check ({rel}: {size} bytes, expected {expected['size']})"
            if digest != expected["sha256"]:
                return f"failed its checksum ({rel})"
        return None


# -- files ---------------------------------------------------------------------------
def _dirname(version: int) -> str:
    return f"v{version:04d}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _seal_agent_version() -> str:
    from seal_agent import __version__  # late: the package may import this module

    return __version__


def _hash_file(path: Path, *, fsync: bool = False) -> tuple[str, int]:
    """sha256 and size of a file, streamed; optionally flushed to disk on the way."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        if fsync:
            os.fsync(fh.fileno())
    return digest.hexdigest(), size


def _seal_files(folder: Path) -> dict[str, dict[str, Any]]:
    """Checksum and fsync everything ``save`` wrote; refuse what a manifest cannot vouch for."""
    files: dict[str, dict[str, Any]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        for name in sorted(dirnames + filenames):
            path = here / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise ConsolidationError(f"save wrote a symbolic link ({rel}); write real files")
            if name in dirnames:
                continue
            if not path.is_file():
                raise ConsolidationError(f"save wrote something that is not a file ({rel})")
            if rel == MANIFEST:
                raise ConsolidationError(f"save wrote {MANIFEST}; that name belongs to the store")
            digest, size = _hash_file(path, fsync=True)
            files[rel] = {"sha256": digest, "size": size}
        if here != folder:
            _fsync_dir(here)
    if not files:
        raise ConsolidationError("save wrote no files: nothing to version")
    return files


def _write_durable(path: Path, data: bytes) -> None:
    with path.open("xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs(path: Path) -> None:
    """mkdir -p, fsyncing the parent of every folder it creates (so the path survives a crash)."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # another process made it
        _fsync_dir(folder.parent)


def _set_active(
    conn: Connection, user_id: str, agent_id: str, kind: str, version_id: str, when: str
) -> None:
    conn.execute(
        "INSERT INTO active_adapters (user_id, agent_id, kind, version_id, updated_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, agent_id, kind) "
        "DO UPDATE SET version_id = excluded.version_id, updated_at = excluded.updated_at",
        (user_id, agent_id, kind, version_id, when),
    )


# -- namespace locks ---------------------------------------------------------------------
class NamespaceLock(Protocol):
    """One namespace's consolidation lock: the one interface both engines' locks share.

    ``try_acquire`` never waits: True when this thread now holds the lock
    (again, if it held it already: re-entrant per thread), False when another
    thread, store or process does.  Failing to reach the lock at all raises
    ConsolidationError.  ``holder`` says who has it, for the busy message.
    """

    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...

    def holder(self) -> str: ...


class FileNamespaceLock:
    """``flock`` on ``<adapters>/<user>/<agent>/.lock`` (the SQLite journal's lock)."""

    def __init__(self, path: Path, user_id: str, agent_id: str) -> None:
        self.path = path
        self._ns = f"{user_id}/{agent_id}"
        self._lock: filelock.BaseFileLock | None = None

    def _file_lock(self) -> filelock.BaseFileLock:
        if self._lock is None:
            try:
                _makedirs(self.path.parent)
            except OSError as exc:
                raise ConsolidationError(
                    f"cannot create the consolidation lock {self.path} of {self._ns}: {exc}"
                ) from exc
            # thread_local (the default): re-entrant per thread, so another thread of
            # this process is refused like another process.  blocking=False: refuse
            # at once.  The holder's pid is written for the busy message only.
            self._lock = filelock.FileLock(
                self.path, mode=0o644, blocking=False, preserve_lock_file=True,
                on_acquired=_write_pid,
            )
        return self._lock

    def try_acquire(self) -> bool:
        file_lock = self._file_lock()
        try:
            file_lock.acquire()
        except filelock.Timeout:
            return False
        except OSError as exc:
            if not self.path.is_file():
                raise ConsolidationError(
                    f"cannot create the consolidation lock {self.path} of {self._ns}: {exc}"
                ) from exc
            raise ConsolidationError(f"cannot lock {self.path}: {exc}") from exc
        return True

    def release(self) -> None:
        self._file_lock().release()

    def holder(self) -> str:
        """Who holds the lock, as far as its file says."""
        try:
            pid = int(self.path.read_text()[:32].strip())
        except (OSError, ValueError):
            return "another process"
        if pid == os.getpid():
            return f"another thread or store of this process (pid {pid})"
        return f"another process (pid {pid})"


class AdvisoryNamespaceLock:
    """A session-level PostgreSQL advisory lock (the PostgreSQL journal's lock).

    Each held lock has its own database session, opened at acquire and
    closed at release: the server frees the lock when the session ends, so a
    killed process (on any host) frees it too.  Advisory locks re-enter per
    session, not per thread, so the holding thread is tracked here and any
    other thread is refused, as ``flock`` refuses it.
    """

    def __init__(self, journal: Journal, user_id: str, agent_id: str) -> None:
        self.journal = journal
        self._ns = f"{user_id}/{agent_id}"
        self.key = advisory_key(f"seal-agent namespace {user_id}/{agent_id}")
        self._guard = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._session: Any = None

    def try_acquire(self) -> bool:
        me = threading.get_ident()
        with self._guard:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is not None:
                return False
            session = self.journal.connect_session()
            try:
                got = session.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]
            except self.journal.errors as exc:
                session.close()
                raise ConsolidationError(
                    f"cannot take the consolidation lock of {self._ns} on "
                    f"{self.journal.location}: {exc}"
                ) from exc
            if not got:
                session.close()
                return False
            self._session, self._owner, self._depth = session, me, 1
            return True

    def release(self) -> None:
        with self._guard:
            self._depth -= 1
            if self._depth > 0:
                return
            session, self._session, self._owner, self._depth = self._session, None, None, 0
        try:
            session.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except self.journal.errors as exc:  # the session is closed next: the lock goes anyway
            log.warning("could not unlock %s explicitly: %s", self._ns, exc)
        finally:
            session.close()

    def holder(self) -> str:
        """The holder's session name (``seal-agent pid N on HOST``), from pg_stat_activity."""
        if self._owner is not None and self._owner != threading.get_ident():
            return f"another thread of this process (pid {os.getpid()})"
        try:
            session = self.journal.connect_session()
        except Exception:  # only the message depends on it
            return "another process"
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        try:
            row = session.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1",
                (unsigned >> 32, unsigned & 0xFFFFFFFF),
            ).fetchone()
        except self.journal.errors:
            row = None
        finally:
            session.close()
        name = row[0] if row is not None else ""
        return f"another process ({name.removeprefix('seal-agent ')})" if name else "another process"


def _write_pid(fd: int) -> None:
    """Only for the busy message of whoever comes next: the flock is the lock."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


# -- processes -------------------------------------------------------------------------
def _start_ticks(proc: psutil.Process) -> int:
    """When a process started, in clock ticks since boot.

    The unit journals have always recorded (Linux's /proc ``starttime``), so a
    run recorded by an older seal-agent is judged the same way.
    """
    since_boot = proc.create_time() - psutil.boot_time()
    return round(since_boot * os.sysconf("SC_CLK_TCK"))


def _this_process() -> dict[str, Any]:
    try:
        start: int | None = _start_ticks(psutil.Process())
    except (psutil.Error, OSError, ValueError):
        start = None
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": start}


def _process_gone(process: Any) -> bool:
    """True only when we can tell: same host, and the pid is dead, a zombie, or reused."""
    if not isinstance(process, dict) or not isinstance(process.get("pid"), int):
        return False  # no process record: leave the run to a person
    if process.get("host") != socket.gethostname():
        return False
    try:
        proc = psutil.Process(process["pid"])
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        start = _start_ticks(proc)
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, OSError, ValueError):
        return False  # alive but unreadable (another user's, no permission): leave it
    return process.get("start") is not None and start != process["start"]
