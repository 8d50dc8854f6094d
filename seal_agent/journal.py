"""The journal: SQLite in WAL mode (or PostgreSQL), the source of truth of a memory home.

Every interaction is committed here before anything is derived from it, so a
crash during self-edit generation loses nothing: the interaction stays with
``derive_status = 'pending'`` and ``seal-agent reprocess`` redoes the work.
The Chroma buffer is derived state: retrieval cross-checks hits against the
journal, and :meth:`Journal.unindexed_self_edits` / the buffer reconcile step
repair any gap a crash left between the two.

Schema changes are numbered migrations applied in order (``PRAGMA
user_version``); a journal from a newer seal-agent is refused, never altered.

Two engines, one definition of each query.  SQL is written once, in SQLite's
dialect, and :class:`Journal` translates it on the way to PostgreSQL
(``journal.url = postgresql://...``): ``?`` placeholders become ``%s``; the
migrations' DDL gets an explicit ``rowid`` identity column (the insertion
order SQLite gives every table, which the queries sort by), 64-bit integers,
double-precision reals and byte-order ("C") text; ``PRAGMA user_version``
becomes a one-row ``schema_version`` table; ``BEGIN IMMEDIATE`` becomes
``BEGIN`` plus a transaction-level advisory lock, so writers are serialised
exactly as SQLite serialises them and readers never wait.  Rows come back
with the same names, positions and values on both (``rowid`` is hidden, as
SQLite hides it).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import re
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from seal_agent.errors import (
    ConfigError,
    CorruptHomeError,
    JournalUnavailableError,
    MemoryNotFoundError,
    MissingDependencyError,
    NamespaceNotFoundError,
    SchemaVersionError,
)
from seal_agent.types import (
    DeriveStatus,
    Interaction,
    InteractionKind,
    MemoryStatus,
    Message,
    Namespace,
    Probe,
    SelfEdit,
    SelfEditFormat,
)

if TYPE_CHECKING:
    from seal_agent.config import SealAgentConfig

__all__ = ["Connection", "Journal", "MIGRATIONS", "SCHEMA_VERSION", "new_id"]


class Connection(Protocol):
    """What :meth:`Journal.transaction` hands out: ``sqlite3.Connection``'s two methods.

    SQL passed to it is written in SQLite's dialect (``?`` placeholders) on
    both engines.
    """

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# Each entry upgrades the schema by one version.  Never edit a released one:
# append a new migration instead.
MIGRATIONS: tuple[str, ...] = (
    # 1: interactions, the self-edits and probes derived from them.
    """
    CREATE TABLE interactions (
        id              TEXT PRIMARY KEY,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        session_id      TEXT NOT NULL,
        kind            TEXT NOT NULL,
        messages        TEXT NOT NULL,
        metadata        TEXT NOT NULL DEFAULT '{}',
        created_at      TEXT NOT NULL,
        derive_status   TEXT NOT NULL DEFAULT 'pending',
        derive_error    TEXT,
        derive_report   TEXT NOT NULL DEFAULT '{}',
        derived_at      TEXT
    );
    CREATE INDEX ix_interactions_ns ON interactions (user_id, agent_id, session_id);
    CREATE INDEX ix_interactions_derive ON interactions (derive_status);
    CREATE TABLE self_edits (
        id              TEXT PRIMARY KEY,
        interaction_id  TEXT NOT NULL REFERENCES interactions (id) ON DELETE CASCADE,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        session_id      TEXT NOT NULL,
        format          TEXT NOT NULL,
        text            TEXT NOT NULL,
        status          TEXT NOT NULL DEFAULT 'buffered',
        author          TEXT NOT NULL,
        sample_id       TEXT,
        retrievable     INTEGER NOT NULL DEFAULT 1,
        indexed         INTEGER NOT NULL DEFAULT 0,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
    );
    CREATE INDEX ix_self_edits_ns ON self_edits (user_id, agent_id, status);
    CREATE INDEX ix_self_edits_interaction ON self_edits (interaction_id);
    CREATE TABLE probes (
        id              TEXT PRIMARY KEY,
        interaction_id  TEXT NOT NULL REFERENCES interactions (id) ON DELETE CASCADE,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        session_id      TEXT NOT NULL,
        question        TEXT NOT NULL,
        answer          TEXT NOT NULL,
        source          TEXT NOT NULL,
        created_at      TEXT NOT NULL
    );
    CREATE INDEX ix_probes_interaction ON probes (interaction_id);
    """,
    # 2: room for consolidation: runs, adapter versions, the active pointer.
    """
    CREATE TABLE consolidation_runs (
        id              TEXT PRIMARY KEY,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        status          TEXT NOT NULL,
        started_at      TEXT NOT NULL,
        finished_at     TEXT,
        config          TEXT NOT NULL DEFAULT '{}',
        metrics         TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE adapter_versions (
        id              TEXT PRIMARY KEY,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        kind            TEXT NOT NULL,
        version         INTEGER NOT NULL,
        path            TEXT NOT NULL,
        manifest_sha256 TEXT NOT NULL,
        run_id          TEXT REFERENCES consolidation_runs (id),
        metrics         TEXT NOT NULL DEFAULT '{}',
        created_at      TEXT NOT NULL,
        UNIQUE (user_id, agent_id, kind, version)
    );
    CREATE TABLE active_adapters (
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        kind            TEXT NOT NULL,
        version_id      TEXT NOT NULL REFERENCES adapter_versions (id),
        updated_at      TEXT NOT NULL,
        PRIMARY KEY (user_id, agent_id, kind)
    );
    """,
    # 3: the reward loop's record: every candidate with its reward (the
    # training set of the later self-edit policy step), and per-interaction
    # consolidation tries.
    """
    CREATE TABLE candidates (
        id              TEXT PRIMARY KEY,
        run_id          TEXT NOT NULL REFERENCES consolidation_runs (id) ON DELETE CASCADE,
        interaction_id  TEXT NOT NULL,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        sample_index    INTEGER NOT NULL,
        format          TEXT NOT NULL,
        prompt          TEXT NOT NULL,
        completion      TEXT NOT NULL,
        sequences       TEXT NOT NULL DEFAULT '[]',
        directive       TEXT NOT NULL DEFAULT '{}',
        policy          TEXT NOT NULL,
        score_before    REAL,
        score_after     REAL,
        reward          REAL,
        chosen          INTEGER NOT NULL DEFAULT 0,
        dropped         TEXT NOT NULL DEFAULT '{}',
        created_at      TEXT NOT NULL
    );
    CREATE INDEX ix_candidates_run ON candidates (run_id);
    CREATE INDEX ix_candidates_interaction ON candidates (interaction_id);
    ALTER TABLE interactions ADD COLUMN consolidation_tries INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX ix_adapter_versions_ns ON adapter_versions (user_id, agent_id, kind, version);
    """,
    # 4: consolidation by behaviour (memorize.py; the tables belong to facts_store.py):
    # per memory, the question/answer pairs trained on and the check questions
    # held apart, and whether the weights said the memory back.
    """
    CREATE TABLE fact_probes (
        id              TEXT PRIMARY KEY,
        interaction_id  TEXT NOT NULL REFERENCES interactions (id) ON DELETE CASCADE,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        fact_key        TEXT NOT NULL,
        role            TEXT NOT NULL,
        question        TEXT NOT NULL,
        answer          TEXT NOT NULL,
        origin          TEXT NOT NULL,
        retired         INTEGER NOT NULL DEFAULT 0,
        created_at      TEXT NOT NULL
    );
    CREATE INDEX ix_fact_probes_interaction ON fact_probes (interaction_id);
    CREATE INDEX ix_fact_probes_ns ON fact_probes (user_id, agent_id);
    CREATE TABLE weights_recall (
        interaction_id  TEXT PRIMARY KEY REFERENCES interactions (id) ON DELETE CASCADE,
        user_id         TEXT NOT NULL,
        agent_id        TEXT NOT NULL,
        state           TEXT NOT NULL,
        checks          INTEGER NOT NULL DEFAULT 0,
        said            INTEGER NOT NULL DEFAULT 0,
        version_id      TEXT,
        run_id          TEXT,
        detail          TEXT NOT NULL DEFAULT '{}',
        checked_at      TEXT NOT NULL
    );
    CREATE INDEX ix_weights_recall_ns ON weights_recall (user_id, agent_id, state);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

# How long a statement waits for another process's lock before giving up.
_BUSY_TIMEOUT_S = 30.0

# PostgreSQL: the advisory lock every write transaction takes (what SQLite's
# BEGIN IMMEDIATE does for the file), and the URL schemes that select it.
_PG_SCHEMES = ("postgresql", "postgres")
_PG_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)"
_PG_INSTALL = "pip install 'seal-agent[postgres]'  (psycopg 3)"


class Journal:
    """Thread-safe access to one journal (one connection, one lock).

    ``Journal(path)`` opens (or creates) the SQLite file; ``Journal(url)``
    with a ``postgresql://`` URL opens that database instead.  Other
    processes may open the same journal at the same time: on SQLite, WAL lets
    readers and one writer work side by side and ``busy_timeout`` waits out
    locks; on PostgreSQL, the server does the same and writers queue on one
    advisory lock.
    """

    dialect: Literal["sqlite", "postgresql"]

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.RLock()
        scheme = _scheme(str(path))
        if scheme is None:
            self._open_sqlite(Path(path))
        elif scheme in _PG_SCHEMES:
            self._open_postgres(str(path))
        else:
            raise ConfigError(
                f"unknown journal scheme {scheme!r} in {_redact(str(path))}: use a file path "
                "(SQLite) or postgresql://user@host:port/db"
            )

    @classmethod
    def from_config(cls, config: SealAgentConfig) -> Journal:
        """The journal the settings name: ``journal.url``, else ``<home>/journal.sqlite3``."""
        return cls(config.journal.url or config.journal_path)

    def _open_sqlite(self, path: Path) -> None:
        self.dialect = "sqlite"
        self.path: Path | None = path
        self.location = str(path)
        self.errors: tuple[type[Exception], ...] = (sqlite3.Error,)
        if path.exists() and not path.is_file():
            raise CorruptHomeError(f"journal path {path} exists but is not a file")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db: Any = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            self._db.row_factory = sqlite3.Row
            self._check_version()  # before WAL: a newer journal is refused untouched
            self._enable_wal()
            # FULL: a committed interaction survives power loss, not only a killed process.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
            self._migrate()
        except SchemaVersionError:
            self._db.close()
            raise
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise CorruptHomeError(
                f"journal {path} is not a readable SQLite database ({exc}); restore it "
                "from a backup or move it aside to start an empty memory home"
            ) from exc

    def _open_postgres(self, url: str) -> None:
        psycopg = _psycopg()
        self.dialect = "postgresql"
        self.path = None
        self.url = url
        self.location = _redact(url)
        self.errors = (psycopg.Error,)
        self._db = _PgConnection(self.connect_session())
        try:
            self._migrate()
        except SchemaVersionError:
            self._db.close()
            raise
        except psycopg.OperationalError as exc:  # the server went away, or a lock timed out
            self._db.close()
            raise JournalUnavailableError(
                f"journal database {self.location} failed while opening: {exc}"
            ) from exc
        except psycopg.Error as exc:
            self._db.close()
            raise CorruptHomeError(
                f"journal database {self.location} does not hold a usable seal-agent "
                f"schema ({exc}); point journal.url at an empty database or restore it"
            ) from exc

    def connect_session(self) -> Any:
        """A new psycopg connection to this PostgreSQL journal (autocommit, rows by name).

        The journal uses one; the adapter store opens one per held namespace
        lock, so the lock lives exactly as long as its session.
        """
        if self.dialect != "postgresql":
            raise ConfigError("connect_session is for a PostgreSQL journal; this one is SQLite")
        psycopg = _psycopg()
        # Who holds a lock is read back from pg_stat_activity by the next process refused.
        name = f"seal-agent pid {os.getpid()} on {socket.gethostname()}"[:63]
        try:
            return psycopg.connect(
                self.url, autocommit=True, row_factory=_pg_rows, application_name=name,
                connect_timeout=int(_BUSY_TIMEOUT_S),
                options=f"-c lock_timeout={int(_BUSY_TIMEOUT_S * 1000)}",
            )
        except psycopg.OperationalError as exc:
            raise JournalUnavailableError(
                f"cannot reach the journal database {self.location}: {str(exc).strip()}"
            ) from exc

    # -- plumbing ------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> Any:
        """A public write transaction, for stages that must change several
        tables at once (promotion: adapter version, active pointer, statuses).

        Yields a :class:`Connection`; SQL is written in SQLite's dialect on
        both engines."""
        return self._tx()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """A read query for stages with their own tables (runs, adapters, candidates).

        Rows are read by name or by position (``sqlite3.Row`` on SQLite, the
        same shape on PostgreSQL)."""
        return self._rows(sql, args)

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One serialised write transaction: all of it is committed, or none of it.

        SQLite: ``BEGIN IMMEDIATE`` takes the file's write lock at once.
        PostgreSQL: the same, as a transaction-level advisory lock that every
        writer takes first; the server drops it at COMMIT or ROLLBACK.
        """
        with self._lock:
            if self.dialect == "sqlite":
                self._db.execute("BEGIN IMMEDIATE")
            else:
                self._db.execute("BEGIN")
            try:
                if self.dialect == "postgresql":
                    self._db.execute("SELECT pg_advisory_xact_lock(?)", (_WRITE_LOCK,))
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def _read_version(self) -> int:
        """How many migrations have run: ``PRAGMA user_version``, or the
        ``schema_version`` row on PostgreSQL (0 before the first)."""
        if self.dialect == "sqlite":
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if self._db.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
            return 0
        row = self._db.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row is not None else 0

    def _write_version(self, db: Connection, version: int) -> None:
        if self.dialect == "sqlite":
            db.execute(f"PRAGMA user_version = {int(version)}")
            return
        db.execute(_PG_VERSION_TABLE)
        db.execute("DELETE FROM schema_version")
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def _check_version(self) -> int:
        version = self._read_version()
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"journal {self.location} has schema version {version}, this seal-agent knows "
                f"up to {SCHEMA_VERSION}: upgrade seal-agent"
            )
        return version

    def _enable_wal(self) -> None:
        """Switch to WAL, waiting out other processes that open the home at once.

        The switch needs an exclusive lock, and SQLite answers "database is
        locked" at once instead of calling the busy handler when another
        connection holds the file (several workers creating one new home).  So
        it is retried here for as long as ``busy_timeout`` would have waited.
        """
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        pause = 0.005
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(pause * (1 + random.random()))  # jitter: the openers do not march in step
            pause = min(pause * 2, 0.2)

    def _migrate(self) -> None:
        """Apply the missing migrations, each in its own IMMEDIATE transaction.

        Several processes may open a new home at the same moment (four workers
        starting together).  The version read before the transaction can be
        stale by the time the write lock is ours, so it is read again under the
        lock: a migration another process has just applied is skipped, never
        run twice (which failed as "table already exists", a false corrupt home).
        """
        for number in range(self._check_version(), SCHEMA_VERSION):
            with self._tx() as db:
                if self.dialect == "postgresql":
                    # A lookup that takes a lock first: the server then refreshes its
                    # catalog cache, so a table another opener committed while we
                    # waited is seen (to_regclass alone could still answer "none").
                    db.execute(_PG_VERSION_TABLE)
                if self._check_version() > number:
                    continue  # another process applied it while we waited for the lock
                script = MIGRATIONS[number]
                if self.dialect == "postgresql":
                    script = _pg_ddl(script)  # DDL is transactional there too
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                self._write_version(db, number + 1)

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._read_version()

    # -- interactions ----------------------------------------------------------
    def log_interaction(
        self,
        namespace: Namespace,
        kind: InteractionKind,
        messages: Sequence[Message],
        *,
        metadata: dict[str, Any] | None = None,
        probes: Iterable[tuple[str, str]] = (),
    ) -> Interaction:
        """Commit an interaction (and any caller-supplied probes) durably."""
        iid = new_id("int")
        created = _now()
        msgs = json.dumps([m.model_dump() for m in messages], ensure_ascii=False)
        meta = json.dumps(metadata or {}, ensure_ascii=False, default=str)
        with self._tx() as db:
            db.execute(
                "INSERT INTO interactions (id, user_id, agent_id, session_id, kind, messages, "
                "metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (iid, namespace.user_id, namespace.agent_id, namespace.session_id, kind.value,
                 msgs, meta, created),
            )
            for question, answer in probes:
                db.execute(
                    "INSERT INTO probes (id, interaction_id, user_id, agent_id, session_id, "
                    "question, answer, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'caller', ?)",
                    (new_id("prb"), iid, namespace.user_id, namespace.agent_id,
                     namespace.session_id, question, answer, created),
                )
        return self.get_interaction(iid)

    def get_interaction(self, interaction_id: str) -> Interaction:
        rows = self._rows("SELECT * FROM interactions WHERE id = ?", (interaction_id,))
        if not rows:
            raise MemoryNotFoundError(f"no interaction with id {interaction_id!r}")
        return _interaction(rows[0])

    def interactions(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        kind: InteractionKind | None = None,
        derive_status: Sequence[DeriveStatus] | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Interaction]:
        where, args = _ns_where(user_id, agent_id, session_id)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind.value)
        if derive_status:
            where.append(f"derive_status IN ({','.join('?' * len(derive_status))})")
            args.extend(s.value for s in derive_status)
        sql = "SELECT * FROM interactions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rowid " + ("DESC" if newest_first else "ASC")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_interaction(r) for r in self._rows(sql, args)]

    def session_history(self, namespace: Namespace, limit: int = 50) -> list[Interaction]:
        """The session's chat turns, oldest first (the newest ``limit`` of them)."""
        newest = self.interactions(
            user_id=namespace.user_id,
            agent_id=namespace.agent_id,
            session_id=namespace.session_id,
            kind=InteractionKind.CHAT,
            limit=limit,
            newest_first=True,
        )
        return list(reversed(newest))

    def complete_turn(
        self, interaction_id: str, answer: Message, metadata: dict[str, Any] | None = None
    ) -> None:
        """Add the agent's answer to a turn whose user message is already committed."""
        with self._tx() as db:
            row = db.execute(
                "SELECT messages, metadata FROM interactions WHERE id = ?", (interaction_id,)
            ).fetchone()
            if row is None:
                raise MemoryNotFoundError(f"no interaction with id {interaction_id!r}")
            messages = json.loads(row["messages"]) + [answer.model_dump()]
            meta = {**json.loads(row["metadata"]), **(metadata or {})}
            db.execute(
                "UPDATE interactions SET messages = ?, metadata = ? WHERE id = ?",
                (json.dumps(messages, ensure_ascii=False),
                 json.dumps(meta, ensure_ascii=False, default=str), interaction_id),
            )

    def mark_derive_failed(self, interaction_id: str, error: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE interactions SET derive_status = 'failed', derive_error = ? WHERE id = ?",
                (error[:2000], interaction_id),
            )

    def save_derivation(
        self,
        interaction_id: str,
        self_edits: Sequence[SelfEdit],
        probes: Sequence[Probe],
        report: dict[str, Any],
    ) -> list[str]:
        """Replace what was derived from an interaction, in one transaction.

        Re-deriving (``reprocess``) drops the earlier buffered self-edits and
        model-written probes of the interaction; consolidated ones and the
        caller's probes stay.  Returns the ids of the dropped self-edits, for
        the buffer to delete.
        """
        now = _now()
        with self._tx() as db:
            exists = db.execute("SELECT 1 FROM interactions WHERE id = ?", (interaction_id,)).fetchone()
            if not exists:  # forgotten while it was being derived: keep nothing
                return []
            old = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM self_edits WHERE interaction_id = ? AND status != 'consolidated'",
                    (interaction_id,),
                )
            ]
            db.execute(
                "DELETE FROM self_edits WHERE interaction_id = ? AND status != 'consolidated'",
                (interaction_id,),
            )
            db.execute(
                "DELETE FROM probes WHERE interaction_id = ? AND source = 'model'", (interaction_id,)
            )
            db.executemany(
                "INSERT INTO self_edits (id, interaction_id, user_id, agent_id, session_id, format, "
                "text, status, author, sample_id, retrievable, indexed, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                [
                    (e.id, interaction_id, e.namespace.user_id, e.namespace.agent_id,
                     e.namespace.session_id, e.format.value, e.text, e.status.value, e.author,
                     e.sample_id, int(e.retrievable), now, now)
                    for e in self_edits
                ],
            )
            db.executemany(
                "INSERT INTO probes (id, interaction_id, user_id, agent_id, session_id, question, "
                "answer, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (p.id, interaction_id, p.namespace.user_id, p.namespace.agent_id,
                     p.namespace.session_id, p.question, p.answer, p.source, now)
                    for p in probes
                ],
            )
            db.execute(
                "UPDATE interactions SET derive_status = 'done', derive_error = NULL, "
                "derive_report = ?, derived_at = ? WHERE id = ?",
                (json.dumps(report), now, interaction_id),
            )
        return old

    # -- self-edits (memories) ---------------------------------------------------
    def self_edits(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        interaction_id: str | None = None,
        status: Sequence[MemoryStatus] | None = None,
        retrievable: bool | None = None,
        limit: int | None = None,
    ) -> list[SelfEdit]:
        where, args = _ns_where(user_id, agent_id, None)
        if interaction_id is not None:
            where.append("interaction_id = ?")
            args.append(interaction_id)
        if status:
            where.append(f"status IN ({','.join('?' * len(status))})")
            args.extend(s.value for s in status)
        if retrievable is not None:
            where.append("retrievable = ?")
            args.append(int(retrievable))
        sql = "SELECT * FROM self_edits"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_self_edit(r) for r in self._rows(sql, args)]

    def get_self_edit(self, self_edit_id: str) -> SelfEdit:
        rows = self._rows("SELECT * FROM self_edits WHERE id = ?", (self_edit_id,))
        if not rows:
            raise MemoryNotFoundError(f"no memory with id {self_edit_id!r}")
        return _self_edit(rows[0])

    def statuses(self, ids: Sequence[str]) -> dict[str, MemoryStatus]:
        """Current status of each id that is still in the journal (retrieval cross-check)."""
        if not ids:
            return {}
        rows = self._rows(
            f"SELECT id, status FROM self_edits WHERE id IN ({','.join('?' * len(ids))})", list(ids)
        )
        return {r["id"]: MemoryStatus(r["status"]) for r in rows}

    def retrievable_ids(self) -> set[str]:
        """Ids of every self-edit that belongs in the buffer (any status)."""
        return {r[0] for r in self._rows("SELECT id FROM self_edits WHERE retrievable = 1")}

    def self_edits_by_ids(self, ids: Sequence[str]) -> list[SelfEdit]:
        if not ids:
            return []
        rows = self._rows(
            f"SELECT * FROM self_edits WHERE id IN ({','.join('?' * len(ids))}) ORDER BY rowid",
            list(ids),
        )
        return [_self_edit(r) for r in rows]

    def unindexed_self_edits(self, limit: int = 1000) -> list[SelfEdit]:
        """Retrievable self-edits committed here but not yet confirmed in the buffer."""
        rows = self._rows(
            "SELECT * FROM self_edits WHERE indexed = 0 AND retrievable = 1 ORDER BY rowid LIMIT ?",
            (limit,),
        )
        return [_self_edit(r) for r in rows]

    def mark_indexed(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._tx() as db:
            db.executemany("UPDATE self_edits SET indexed = 1 WHERE id = ?", [(i,) for i in ids])

    def set_status(self, ids: Sequence[str], status: MemoryStatus) -> None:
        now = _now()
        with self._tx() as db:
            db.executemany(
                "UPDATE self_edits SET status = ?, updated_at = ? WHERE id = ?",
                [(status.value, now, i) for i in ids],
            )

    def probes(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        interaction_id: str | None = None,
    ) -> list[Probe]:
        where, args = _ns_where(user_id, agent_id, None)
        if interaction_id is not None:
            where.append("interaction_id = ?")
            args.append(interaction_id)
        sql = "SELECT * FROM probes" + (" WHERE " + " AND ".join(where) if where else "")
        return [_probe(r) for r in self._rows(sql + " ORDER BY rowid", args)]

    # -- forgetting ----------------------------------------------------------------
    def forget_self_edit(self, self_edit_id: str) -> list[str]:
        with self._tx() as db:
            cur = db.execute("DELETE FROM self_edits WHERE id = ?", (self_edit_id,))
            if cur.rowcount == 0:
                raise MemoryNotFoundError(f"no memory with id {self_edit_id!r}")
        return [self_edit_id]

    def forget_interaction(self, interaction_id: str) -> list[str]:
        """Delete an interaction and everything derived from it; returns self-edit ids."""
        with self._tx() as db:
            ids = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM self_edits WHERE interaction_id = ?", (interaction_id,)
                )
            ]
            cur = db.execute("DELETE FROM interactions WHERE id = ?", (interaction_id,))
            if cur.rowcount == 0:
                raise MemoryNotFoundError(f"no interaction with id {interaction_id!r}")
            db.execute("DELETE FROM candidates WHERE interaction_id = ?", (interaction_id,))
        return ids

    def forget_namespace(self, user_id: str, agent_id: str | None = None) -> list[str]:
        """Delete all of a user's (or one user-agent pair's) interactions and memories."""
        where, args = _ns_where(user_id, agent_id, None)
        clause = " AND ".join(where)
        with self._tx() as db:
            n = db.execute(f"SELECT COUNT(*) FROM interactions WHERE {clause}", args).fetchone()[0]
            if n == 0:
                raise NamespaceNotFoundError(
                    f"no interactions for user {user_id!r}"
                    + (f" and agent {agent_id!r}" if agent_id else "")
                )
            ids = [r[0] for r in db.execute(f"SELECT id FROM self_edits WHERE {clause}", args)]
            db.execute(f"DELETE FROM interactions WHERE {clause}", args)
            # What consolidation kept about them goes too: candidates hold the
            # user's words, adapters hold what was learned from them.
            db.execute(f"DELETE FROM candidates WHERE {clause}", args)
            db.execute(f"DELETE FROM active_adapters WHERE {clause}", args)
            db.execute(f"DELETE FROM adapter_versions WHERE {clause}", args)
            db.execute(f"DELETE FROM consolidation_runs WHERE {clause}", args)
        return ids

    # -- summaries -----------------------------------------------------------------
    def counts(self, user_id: str | None = None, agent_id: str | None = None) -> dict[str, Any]:
        where, args = _ns_where(user_id, agent_id, None)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        inter = {
            r[0]: r[1]
            for r in self._rows(
                f"SELECT derive_status, COUNT(*) FROM interactions{clause} GROUP BY derive_status", args
            )
        }
        edits = {
            r[0]: r[1]
            for r in self._rows(f"SELECT status, COUNT(*) FROM self_edits{clause} GROUP BY status", args)
        }
        formats = {
            r[0]: r[1]
            for r in self._rows(f"SELECT format, COUNT(*) FROM self_edits{clause} GROUP BY format", args)
        }
        probes = self._rows(f"SELECT COUNT(*) FROM probes{clause}", args)[0][0]
        return {
            "interactions": sum(inter.values()),
            "derive": {s.value: inter.get(s.value, 0) for s in DeriveStatus},
            "self_edits": {s.value: edits.get(s.value, 0) for s in MemoryStatus},
            "formats": formats,
            "probes": probes,
        }

    def namespaces(self) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT user_id, agent_id, COUNT(*) AS n, MAX(created_at) AS last "
            "FROM interactions GROUP BY user_id, agent_id ORDER BY user_id, agent_id"
        )
        return [dict(r) for r in rows]


def _ns_where(
    user_id: str | None, agent_id: str | None, session_id: str | None
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("user_id", user_id), ("agent_id", agent_id), ("session_id", session_id)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    return where, args


# -- PostgreSQL ------------------------------------------------------------------
# One 64-bit key for the journal's writer lock; namespace locks (adapters.py)
# hash their own names into the same key space.
def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (sha256, first 8 bytes)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


_WRITE_LOCK = advisory_key("seal-agent journal writer")


def _psycopg() -> Any:
    """psycopg 3, imported only when a PostgreSQL journal is opened."""
    try:
        import psycopg
    except ImportError as exc:
        raise MissingDependencyError(
            f"journal.url names a PostgreSQL database, which needs psycopg 3: {_PG_INSTALL}"
        ) from exc
    return psycopg


def _scheme(target: str) -> str | None:
    """``postgresql`` for ``postgresql://...``; None for a plain path."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", target)
    return match[1].lower() if match else None


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"^([^:/]+://[^:/@]*):[^@/]*@", r"\1:***@", url)


@functools.lru_cache(maxsize=1024)
def _pg_sql(sql: str) -> str:
    """SQLite's placeholders in psycopg's spelling: ``?`` → ``%s``, a literal ``%`` → ``%%``.

    A ``?`` inside a quoted string stays a question mark.
    """
    out: list[str] = []
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if ch == "%":
            out.append("%%")
        elif ch == "?" and not quoted:
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


def _pg_ddl(script: str) -> str:
    """A migration as PostgreSQL runs it, with what SQLite gives implicitly made explicit.

    * every table gets ``rowid``, an identity column: the insertion order the
      queries sort by (hidden from rows, as SQLite hides its own);
    * ``INTEGER`` is 64 bits and ``REAL`` a double, as they are in SQLite;
    * ``TEXT`` compares byte by byte (``COLLATE "C"``), as SQLite's BINARY
      does, so ``ORDER BY user_id`` lists namespaces in the same order.
    """
    script = re.sub(
        r"(CREATE TABLE \w+ \()", r"\1\n        rowid BIGINT GENERATED ALWAYS AS IDENTITY,", script
    )
    script = re.sub(r"\bINTEGER\b", "BIGINT", script)
    script = re.sub(r"\bREAL\b", "DOUBLE PRECISION", script)
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', script)


class _PgRow(tuple[Any, ...]):
    """A row read by position or by name, like ``sqlite3.Row`` (``dict(row)`` works)."""

    _index: dict[str, int]
    _keys: tuple[str, ...]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._keys)


def _pg_rows(cursor: Any) -> Any:
    """psycopg row factory: :class:`_PgRow`, with the ``rowid`` column left out."""
    if cursor.description is None:
        return tuple
    names = [col.name for col in cursor.description]
    keep = [i for i, name in enumerate(names) if name != "rowid"]
    keys = tuple(names[i] for i in keep)
    index: dict[str, int] = {}
    for position, name in enumerate(keys):
        index.setdefault(name, position)  # the first of two equal names, as sqlite3.Row

    def make(values: Sequence[Any]) -> _PgRow:
        row = _PgRow(values[i] for i in keep)
        row._index, row._keys = index, keys
        return row

    return make


class _PgConnection:
    """A psycopg connection that takes the journal's SQL (SQLite's placeholders)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        return self.raw.execute(_pg_sql(sql), tuple(parameters))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any:
        cursor = self.raw.cursor()
        rows = [tuple(p) for p in parameters]
        if rows:
            cursor.executemany(_pg_sql(sql), rows)
        return cursor

    def close(self) -> None:
        self.raw.close()


def _ns(row: Any) -> Namespace:
    return Namespace(user_id=row["user_id"], agent_id=row["agent_id"], session_id=row["session_id"])


def _interaction(row: Any) -> Interaction:
    return Interaction(
        id=row["id"],
        namespace=_ns(row),
        kind=InteractionKind(row["kind"]),
        messages=tuple(Message(**m) for m in json.loads(row["messages"])),
        created_at=datetime.fromisoformat(row["created_at"]),
        metadata=json.loads(row["metadata"]),
        derive_status=DeriveStatus(row["derive_status"]),
        derive_error=row["derive_error"],
        derive_report=json.loads(row["derive_report"]),
    )


def _self_edit(row: Any) -> SelfEdit:
    return SelfEdit(
        id=row["id"],
        interaction_id=row["interaction_id"],
        namespace=_ns(row),
        format=SelfEditFormat(row["format"]),
        text=row["text"],
        status=MemoryStatus(row["status"]),
        author=row["author"],
        sample_id=row["sample_id"],
        retrievable=bool(row["retrievable"]),
        created_at=datetime.fromisoformat(row["created_at"]),
    )


def _probe(row: Any) -> Probe:
    return Probe(
        id=row["id"],
        interaction_id=row["interaction_id"],
        namespace=_ns(row),
        question=row["question"],
        answer=row["answer"],
        source=row["source"],
        created_at=datetime.fromisoformat(row["created_at"]),
    )
