"""The self-edit store: the memories derived from interactions, and where each stands.

A self-edit is one training sequence and, when retrievable, one memory in the
Chroma buffer.  Its status moves from buffered to consolidated (or rejected)
as consolidation drains it; ``indexed`` records that the buffer has it.  Only
this module writes the ``self_edits`` table (forget.py deletes from it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from seal_agent.errors import MemoryNotFoundError
from seal_agent.journal.core import Connection, JournalCore, now, ns_where, row_namespace
from seal_agent.types import MemoryStatus, SelfEdit, SelfEditFormat

__all__ = ["SelfEditStore", "insert_self_edits"]

_INSERT = (
    "INSERT INTO self_edits (id, interaction_id, user_id, agent_id, session_id, format, "
    "text, status, author, sample_id, retrievable, indexed, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def insert_self_edits(db: Connection, edits: Iterable[SelfEdit], *, stamp: str, indexed: bool) -> None:
    """Write ``edits`` inside the open transaction ``db``, created and updated at ``stamp``."""
    db.executemany(
        _INSERT,
        [
            (e.id, e.interaction_id, e.namespace.user_id, e.namespace.agent_id,
             e.namespace.session_id, e.format.value, e.text, e.status.value, e.author,
             e.sample_id, int(e.retrievable), int(indexed), stamp, stamp)
            for e in edits
        ],
    )


def drop_rederived(db: Connection, interaction_id: str) -> list[str]:
    """Delete an interaction's self-edits that re-deriving replaces (all but consolidated ones).

    Inside the open transaction ``db``; returns their ids, for the buffer to delete.
    """
    kept = "interaction_id = ? AND status != 'consolidated'"
    old = [r[0] for r in db.execute(f"SELECT id FROM self_edits WHERE {kept}", (interaction_id,))]
    db.execute(f"DELETE FROM self_edits WHERE {kept}", (interaction_id,))
    return old


class SelfEditStore(JournalCore):
    """The journal's queries and writes of ``self_edits``."""

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
        where, args = ns_where(user_id, agent_id, None)
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

    def set_status(
        self, ids: Sequence[str], status: MemoryStatus, conn: Connection | None = None
    ) -> None:
        """Move the self-edits ``ids`` to ``status``.

        Pass ``conn`` to write inside a transaction already open (a promotion's),
        so the move commits or rolls back with the rest of it.
        """
        stamp = now()
        with self._writing(conn) as db:
            db.executemany(
                "UPDATE self_edits SET status = ?, updated_at = ? WHERE id = ?",
                [(status.value, stamp, i) for i in ids],
            )

    def add_self_edits(
        self, edits: Sequence[SelfEdit], conn: Connection | None = None, *, indexed: bool = False
    ) -> None:
        """Write new self-edits, created and updated now.

        ``indexed``: the buffer needs nothing for them (they are not
        retrievable, as consolidation's winners are not).  Pass ``conn`` to
        write inside a transaction already open.
        """
        stamp = now()
        with self._writing(conn) as db:
            insert_self_edits(db, edits, stamp=stamp, indexed=indexed)


def _self_edit(row: Any) -> SelfEdit:
    return SelfEdit(
        id=row["id"],
        interaction_id=row["interaction_id"],
        namespace=row_namespace(row),
        format=SelfEditFormat(row["format"]),
        text=row["text"],
        status=MemoryStatus(row["status"]),
        author=row["author"],
        sample_id=row["sample_id"],
        retrievable=bool(row["retrievable"]),
        created_at=datetime.fromisoformat(row["created_at"]),
    )
