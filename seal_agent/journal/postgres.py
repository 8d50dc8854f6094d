"""The PostgreSQL dialect layer: the journal's SQLite-dialect SQL, run on PostgreSQL.

SQL is written once, in SQLite's dialect, and translated on the way to
PostgreSQL (``journal.url = postgresql://...``): ``?`` placeholders become
``%s``; the migrations' DDL gets an explicit ``rowid`` identity column (the
insertion order SQLite gives every table, which the queries sort by), 64-bit
integers, double-precision reals and byte-order ("C") text; ``PRAGMA
user_version`` becomes a one-row ``schema_version`` table; ``BEGIN IMMEDIATE``
becomes ``BEGIN`` plus a transaction-level advisory lock (:data:`WRITE_LOCK`),
so writers are serialised exactly as SQLite serialises them and readers never
wait.  Rows come back with the same names, positions and values on both
(``rowid`` is hidden, as SQLite hides it).

psycopg is imported only here, and only when a PostgreSQL journal is opened.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from seal_agent.errors import MissingDependencyError

__all__ = [
    "PG_SCHEMES",
    "PG_VERSION_TABLE",
    "WRITE_LOCK",
    "PgConnection",
    "PgRow",
    "advisory_key",
    "load_psycopg",
    "pg_ddl",
    "pg_rows",
    "pg_sql",
    "redact",
    "scheme",
]

# The URL schemes that select PostgreSQL, and the table that stands in for
# SQLite's ``PRAGMA user_version``.
PG_SCHEMES = ("postgresql", "postgres")
PG_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)"
_PG_INSTALL = "pip install 'seal-agent[postgres]'  (psycopg 3)"


# One 64-bit key for the journal's writer lock; namespace locks (adapters.py)
# hash their own names into the same key space.
def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (sha256, first 8 bytes)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


# The advisory lock every write transaction takes (what SQLite's BEGIN
# IMMEDIATE does for the file).
WRITE_LOCK = advisory_key("seal-agent journal writer")


def load_psycopg() -> Any:
    """psycopg 3, imported only when a PostgreSQL journal is opened."""
    try:
        import psycopg
    except ImportError as exc:
        raise MissingDependencyError(
            f"journal.url names a PostgreSQL database, which needs psycopg 3: {_PG_INSTALL}"
        ) from exc
    return psycopg


def scheme(target: str) -> str | None:
    """``postgresql`` for ``postgresql://...``; None for a plain path."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", target)
    return match[1].lower() if match else None


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"^([^:/]+://[^:/@]*):[^@/]*@", r"\1:***@", url)


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
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


def pg_ddl(script: str) -> str:
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


class PgRow(tuple[Any, ...]):
    """A row read by position or by name, like ``sqlite3.Row`` (``dict(row)`` works)."""

    _index: dict[str, int]
    _keys: tuple[str, ...]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._keys)


def pg_rows(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    """psycopg row factory: :class:`PgRow`, with the ``rowid`` column left out."""
    if cursor.description is None:
        return tuple
    names = [col.name for col in cursor.description]
    keep = [i for i, name in enumerate(names) if name != "rowid"]
    keys = tuple(names[i] for i in keep)
    index: dict[str, int] = {}
    for position, name in enumerate(keys):
        index.setdefault(name, position)  # the first of two equal names, as sqlite3.Row

    def make(values: Sequence[Any]) -> PgRow:
        row = PgRow(values[i] for i in keep)
        row._index, row._keys = index, keys
        return row

    return make


class PgConnection:
    """A psycopg connection that takes the journal's SQL (SQLite's placeholders)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        return self.raw.execute(pg_sql(sql), tuple(parameters))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any:
        cursor = self.raw.cursor()
        rows = [tuple(p) for p in parameters]
        if rows:
            cursor.executemany(pg_sql(sql), rows)
        return cursor

    def close(self) -> None:
        self.raw.close()
