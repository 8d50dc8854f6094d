"""The journal's engine room: open SQLite or PostgreSQL, serialise writes, migrate.

:class:`JournalCore` holds one connection and one lock.  It opens (or
creates) the SQLite file in WAL mode, or a PostgreSQL database through
:mod:`seal_agent.journal.postgres`; hands out write transactions
(:meth:`JournalCore.transaction`) and read queries (:meth:`JournalCore.execute`)
in SQLite's dialect on both engines; and brings the schema up to
:data:`~seal_agent.journal.schema.SCHEMA_VERSION`.  It knows no table: the
stores (interactions.py, self_edits.py, probes.py, forget.py) add the queries.
"""

from __future__ import annotations

import os
import random
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

from seal_agent.errors import (
    ConfigError,
    CorruptHomeError,
    JournalUnavailableError,
    SchemaVersionError,
)
from seal_agent.journal.postgres import (
    PG_SCHEMES,
    PG_VERSION_TABLE,
    WRITE_LOCK,
    PgConnection,
    load_psycopg,
    pg_ddl,
    pg_rows,
    redact,
    scheme,
)
from seal_agent.journal.schema import MIGRATIONS, SCHEMA_VERSION
from seal_agent.types import Namespace

if TYPE_CHECKING:
    from seal_agent.config import SealAgentConfig

__all__ = ["Connection", "JournalCore", "new_id", "now", "ns_where", "row_namespace"]

# How long a statement waits for another process's lock before giving up.
_BUSY_TIMEOUT_S = 30.0


class Connection(Protocol):
    """What :meth:`JournalCore.transaction` hands out: ``sqlite3.Connection``'s two methods.

    SQL passed to it is written in SQLite's dialect (``?`` placeholders) on
    both engines.
    """

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def now() -> str:
    """The time a row is written, as the journal stores it (UTC, microseconds)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def ns_where(
    user_id: str | None, agent_id: str | None, session_id: str | None
) -> tuple[list[str], list[Any]]:
    """``WHERE`` terms (and their arguments) for the namespace parts that are given."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("user_id", user_id), ("agent_id", agent_id), ("session_id", session_id)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    return where, args


def row_namespace(row: Any) -> Namespace:
    return Namespace(user_id=row["user_id"], agent_id=row["agent_id"], session_id=row["session_id"])


class JournalCore:
    """One connection and one lock, opened on SQLite or PostgreSQL (see :class:`~seal_agent.journal.Journal`).

    ``dialect`` says which; ``location`` names it in messages (the URL without
    its password); ``errors`` are the engine's exception classes, for callers
    that map them.
    """

    dialect: Literal["sqlite", "postgresql"]

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.RLock()
        kind = scheme(str(path))
        if kind is None:
            self._open_sqlite(Path(path))
        elif kind in PG_SCHEMES:
            self._open_postgres(str(path))
        else:
            raise ConfigError(
                f"unknown journal scheme {kind!r} in {redact(str(path))}: use a file path "
                "(SQLite) or postgresql://user@host:port/db"
            )

    @classmethod
    def from_config(cls, config: SealAgentConfig) -> Self:
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
        psycopg = load_psycopg()
        self.dialect = "postgresql"
        self.path = None
        self.url = url
        self.location = redact(url)
        self.errors = (psycopg.Error,)
        self._db = PgConnection(self.connect_session())
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
        psycopg = load_psycopg()
        # Who holds a lock is read back from pg_stat_activity by the next process refused.
        name = f"seal-agent pid {os.getpid()} on {socket.gethostname()}"[:63]
        try:
            return psycopg.connect(
                self.url, autocommit=True, row_factory=pg_rows, application_name=name,
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

    def __enter__(self) -> Self:
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
                    self._db.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _writing(self, conn: Connection | None) -> Iterator[Connection]:
        """``conn`` where the caller has a transaction open (the writes join it), else a new one.

        How a store method takes part in a larger transaction (a promotion's)
        without its caller writing SQL.
        """
        if conn is not None:
            yield conn
            return
        with self._tx() as db:
            yield db

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
        db.execute(PG_VERSION_TABLE)
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
                    db.execute(PG_VERSION_TABLE)
                if self._check_version() > number:
                    continue  # another process applied it while we waited for the lock
                script = MIGRATIONS[number]
                if self.dialect == "postgresql":
                    script = pg_ddl(script)  # DDL is transactional there too
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                self._write_version(db, number + 1)

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._read_version()
