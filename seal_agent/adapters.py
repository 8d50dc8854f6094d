"""The adapter store: versioned, checksummed LoRA adapters, crash-safe on disk.

Layout, one immutable folder per version::

    <adapters_dir>/<user_id>/<agent_id>/.lock          the namespace's consolidation lock
    <adapters_dir>/<user_id>/<agent_id>/<kind>/v0003/  adapter files + manifest.json

The journal says which versions exist and which one is active (the
``adapter_versions`` and ``active_adapters`` tables, which nothing else
writes); a folder is only a candidate until its row is committed.  That split
is what makes a crash harmless at every point:

* ``stage`` writes into ``.tmp-v0003-<random>``, fsyncs every file and folder,
  then renames it to ``v0003`` (atomic; adapter_files.py).  A crash leaves a
  temp folder or an unreferenced ``v0003``, never a half-written folder the
  journal points at.
* ``promote`` inserts the version row, moves the active pointer and runs the
  caller's own updates (self-edits consolidated, run finished) in one SQLite
  transaction: all of it happens, or none of it.
* ``cleanup`` removes what a crash left (temp folders, folders with no row).
* ``loadable`` checks the active version's checksums before anyone loads it,
  and falls back to the newest earlier version that still verifies.

One consolidation per namespace at a time, across processes and hosts,
through the namespace lock (locks.py), which dies with its holder.

At ~480 lines this module is past the project's ~450: it is one job (the
versions and their two tables: stage, promote, activate, roll back, check,
clean up, erase), and a further split would put one transaction's steps
in two files.
"""

from __future__ import annotations

import builtins
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from seal_agent.adapter_files import (
    MANIFEST,
    dirname,
    folder_problem,
    hash_file,
    remove_leftovers,
    remove_pruned,
    version_numbers,
    write_version,
)
from seal_agent.errors import (
    AdapterNotFoundError,
    ConfigError,
    ConsolidationError,
    CorruptAdapterError,
)
from seal_agent.journal import Connection, Journal, new_id
from seal_agent.journal.core import ns_where
from seal_agent.locks import NamespaceLocks
from seal_agent.runs import RunStatus, RunStore  # RunStatus: still importable from here
from seal_agent.types import FrozenModel, check_id

if TYPE_CHECKING:
    from seal_agent.config import SealAgentConfig

__all__ = [
    "erase_versions",
    "ADAPTER_KINDS",
    "MANIFEST",
    "AdapterStore",
    "AdapterVersion",
    "RunStatus",
    "StagedVersion",
]

ADAPTER_KINDS = ("memory", "policy")  # memory: what the user taught; policy: the self-edit writer
_VERSIONS = (  # every version row with its active flag; add a WHERE
    "SELECT v.*, a.version_id IS NOT NULL AS active FROM adapter_versions v "
    "LEFT JOIN active_adapters a ON a.version_id = v.id "
)


class _Version(FrozenModel):
    """What a version is, staged or promoted: its namespace, number, folder and seal."""

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

    @property
    def name(self) -> str:
        """The folder name, ``v0003``: what messages and the CLI show."""
        return dirname(self.version)


class AdapterVersion(_Version):
    """One promoted adapter version, as the journal records it."""

    active: bool = False


class StagedVersion(_Version):
    """A version whose folder is complete on disk but that the journal does not know yet.

    Its ``id`` is chosen at staging and written into the manifest, so folder and row match.
    """

    parent_id: str | None = None


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
        self._locks = NamespaceLocks(self.root, journal)

    @classmethod
    def from_config(cls, config: SealAgentConfig, journal: Journal) -> AdapterStore:
        return cls(config.adapters_dir, journal)

    # -- the namespace lock ----------------------------------------------------
    def lock(self, user_id: str, agent_id: str) -> contextlib.AbstractContextManager[None]:
        """Hold the namespace's consolidation lock, or raise ConsolidationBusyError.

        Re-entrant for the thread that holds it (so ``stage`` inside ``lock``
        works); another thread, another store object or another process is
        refused at once, never queued.
        """
        return self._locks.hold(user_id, agent_id)

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
        with self.lock(user_id, agent_id):
            self._check_lineage(user_id, agent_id, kind, run_id, parent_id)
            number = self._next_version(user_id, agent_id, kind, kind_dir)

            def describe() -> dict[str, Any]:  # once save has written: created after the files
                return {"id": new_id("adp"), "version": number, "kind": kind,
                        "namespace": {"user_id": user_id, "agent_id": agent_id},
                        "created_at": _now(), "run_id": run_id, "parent_id": parent_id,
                        "config": config, "metrics": metrics}

            label = f"{kind} adapter {dirname(number)} of {user_id}/{agent_id}"
            path, digest, fields = write_version(
                kind_dir, dirname(number), save, describe, label=label
            )
        return StagedVersion(
            id=fields["id"], user_id=user_id, agent_id=agent_id, kind=kind, version=number,
            path=path, manifest_sha256=digest, run_id=run_id, parent_id=parent_id,
            metrics=metrics, created_at=datetime.fromisoformat(fields["created_at"]),
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
                digest, _ = hash_file(staged.path / MANIFEST)
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
                        f"{ns} has no {kind} adapter {dirname(to_version)} (have: {have})"
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
            remove_pruned([v.path for v in removed], self._kind_dir(user_id, agent_id, kind))
        return removed

    def cleanup(self, user_id: str, agent_id: str, kind: str = "memory") -> list[Path]:
        """Remove what a crash left: temp folders, and version folders with no journal row.

        Takes the namespace lock (or reuses the caller's), so it never removes
        a folder another process is still staging.
        """
        kind_dir = self._kind_dir(user_id, agent_id, kind)
        if not kind_dir.is_dir():  # nothing was ever staged: do not create a lock folder
            return []
        with self.lock(user_id, agent_id):
            return remove_leftovers(kind_dir, self._recorded(user_id, agent_id, kind))

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
            _VERSIONS + "WHERE v.user_id = ? AND v.agent_id = ? AND v.kind = ? "
            "ORDER BY v.version DESC",
            (user_id, agent_id, kind),
        )
        return [self._version(r) for r in rows]

    def get(self, version_id: str) -> AdapterVersion:
        rows = self.journal.execute(_VERSIONS + "WHERE v.id = ?", (version_id,))
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
        problem = _problem(version)
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
        problem = _problem(current)
        if problem is None:
            return current, []
        failures = [f"{current.name} {problem}"]
        for older in self.list(user_id, agent_id, kind):
            if older.version >= current.version:
                continue
            problem = _problem(older)
            if problem is None:
                return older, [*failures[:-1], f"{failures[-1]}; using {older.name}"]
            failures.append(f"{older.name} {problem}")
        return None, [
            *failures[:-1],
            f"{failures[-1]}; no earlier {kind} adapter verifies, running without one",
        ]

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
        same = ("id", "user_id", "agent_id", "kind", "version", "manifest_sha256", "run_id")
        return AdapterVersion(
            **{column: row[column] for column in same},
            path=self.root / row["path"],
            metrics=json.loads(row["metrics"]),
            created_at=datetime.fromisoformat(row["created_at"]),
            active=bool(row["active"]),
        )

    def _next_version(self, user_id: str, agent_id: str, kind: str, kind_dir: Path) -> int:
        """1 + the highest number the journal or the disk has seen: never reuse one."""
        return max({0, *self._recorded(user_id, agent_id, kind), *version_numbers(kind_dir)}) + 1

    def _recorded(self, user_id: str, agent_id: str, kind: str) -> set[int]:
        """The version numbers the journal has rows for."""
        rows = self.journal.execute(
            "SELECT version FROM adapter_versions WHERE user_id = ? AND agent_id = ? AND kind = ?",
            (user_id, agent_id, kind),
        )
        return {int(r[0]) for r in rows}

    def _check_lineage(
        self, user_id: str, agent_id: str, kind: str, run_id: str | None, parent_id: str | None
    ) -> None:
        """A new version may name only a recorded run, and a parent of its own namespace and kind."""
        if run_id is not None:
            RunStore(self.journal).require_run(run_id)
        if parent_id is not None:
            parent = self.get(parent_id)
            if (parent.user_id, parent.agent_id, parent.kind) != (user_id, agent_id, kind):
                raise ConsolidationError(
                    f"parent {parent_id} is a {parent.kind} adapter of "
                    f"{parent.user_id}/{parent.agent_id}, not of {user_id}/{agent_id} ({kind})"
                )


# -- helpers ---------------------------------------------------------------------------
def _problem(version: AdapterVersion) -> str | None:
    """What is wrong with a version's files, as the end of a sentence; None if nothing."""
    return folder_problem(version.path, version.manifest_sha256, version.id)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _set_active(
    conn: Connection, user_id: str, agent_id: str, kind: str, version_id: str, when: str
) -> None:
    conn.execute(
        "INSERT INTO active_adapters (user_id, agent_id, kind, version_id, updated_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, agent_id, kind) "
        "DO UPDATE SET version_id = excluded.version_id, updated_at = excluded.updated_at",
        (user_id, agent_id, kind, version_id, when),
    )


def erase_versions(conn: Connection, user_id: str, agent_id: str | None) -> None:
    """Forget a user's (or a pair's) version rows, inside the journal's forget transaction.

    The folders go after the commit (:meth:`AdapterStore.cleanup` finds them unrecorded).
    """
    where, args = ns_where(user_id, agent_id, None)
    clause = " AND ".join(where)
    conn.execute(f"DELETE FROM active_adapters WHERE {clause}", args)
    conn.execute(f"DELETE FROM adapter_versions WHERE {clause}", args)
