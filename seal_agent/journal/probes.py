"""The probe store: held-apart questions about an interaction, and their answers.

Consolidation scores itself on probes: recall on the interaction's own,
retention on those of interactions already consolidated.  A probe comes from
the caller (``source = 'caller'``, with the interaction) or from the model
(``'model'``, at derivation or when consolidation finds none).  Only this
module writes the ``probes`` table (forget.py deletes from it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from seal_agent.journal.core import Connection, JournalCore, ns_where, row_namespace
from seal_agent.types import Probe

__all__ = ["ProbeStore", "insert_probe_rows", "probe_row"]

_INSERT = (
    "INSERT INTO probes (id, interaction_id, user_id, agent_id, session_id, question, "
    "answer, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def probe_row(p: Probe, stamp: str | None = None) -> tuple[Any, ...]:
    """``p`` as a ``probes`` row, created at ``stamp`` (default: the probe's own time)."""
    ns = p.namespace
    return (p.id, p.interaction_id, ns.user_id, ns.agent_id, ns.session_id, p.question,
            p.answer, p.source, stamp or p.created_at.isoformat())


def insert_probe_rows(db: Connection, rows: Iterable[Sequence[Any]]) -> None:
    """Write rows in ``probes`` column order inside the open transaction ``db``."""
    db.executemany(_INSERT, list(rows))


def drop_model_probes(db: Connection, interaction_id: str) -> None:
    """Delete the probes the model wrote for an interaction (the caller's stay), inside ``db``."""
    db.execute("DELETE FROM probes WHERE interaction_id = ? AND source = 'model'", (interaction_id,))


class ProbeStore(JournalCore):
    """The journal's queries and writes of ``probes``."""

    def probes(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        interaction_id: str | None = None,
    ) -> list[Probe]:
        where, args = ns_where(user_id, agent_id, None)
        if interaction_id is not None:
            where.append("interaction_id = ?")
            args.append(interaction_id)
        sql = "SELECT * FROM probes" + (" WHERE " + " AND ".join(where) if where else "")
        return [_probe(r) for r in self._rows(sql + " ORDER BY rowid", args)]

    def add_probes(self, probes: Sequence[Probe], conn: Connection | None = None) -> None:
        """Write probes, each created at its own ``created_at``.

        Pass ``conn`` to write inside a transaction already open.
        """
        with self._writing(conn) as db:
            insert_probe_rows(db, (probe_row(p) for p in probes))

    def consolidated_probe_pairs(self, user_id: str, agent_id: str) -> list[tuple[str, str]]:
        """(question, answer) of every probe whose interaction has consolidated memories.

        What a new adapter must still answer (consolidation's retention check),
        in the order they were written.
        """
        rows = self._rows(
            "SELECT p.question, p.answer FROM probes p WHERE p.user_id = ? AND p.agent_id = ? "
            "AND EXISTS (SELECT 1 FROM self_edits e WHERE e.interaction_id = p.interaction_id "
            "AND e.status = 'consolidated') ORDER BY p.rowid",
            (user_id, agent_id),
        )
        return [(r[0], r[1]) for r in rows]


def _probe(row: Any) -> Probe:
    return Probe(
        id=row["id"],
        interaction_id=row["interaction_id"],
        namespace=row_namespace(row),
        question=row["question"],
        answer=row["answer"],
        source=row["source"],
        created_at=datetime.fromisoformat(row["created_at"]),
    )
