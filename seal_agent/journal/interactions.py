"""The interaction store: every exchange, committed before anything is derived from it.

An interaction is logged with ``derive_status = 'pending'``; its derivation
(self-edits and probes, :meth:`InteractionStore.save_derivation`) replaces
the previous one in one transaction and marks it ``done``.  Consolidation
counts its failed tries here, and reads from here which interactions are
buffered (:meth:`InteractionStore.buffered_interactions`: the one definition).
Only this module writes the ``interactions`` table (forget.py deletes from it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from seal_agent.errors import MemoryNotFoundError
from seal_agent.journal.core import Connection, JournalCore, new_id, now, ns_where, row_namespace
from seal_agent.journal.probes import drop_model_probes, insert_probe_rows, probe_row
from seal_agent.journal.self_edits import drop_rederived, insert_self_edits
from seal_agent.types import (
    DeriveStatus,
    Interaction,
    InteractionKind,
    MemoryStatus,
    Message,
    Namespace,
    Probe,
    SelfEdit,
)

__all__ = ["InteractionStore"]


def _buffered(max_tries: int | None) -> tuple[str, list[Any]]:
    """What makes an interaction *buffered*, as ``WHERE`` terms over ``interactions i``.

    Derived (``done``) and holding at least one buffered statement: what a
    consolidation run takes.  With ``max_tries``, only those that have failed
    fewer runs than that (the others are given up); None counts them too.
    """
    sql = (
        "i.derive_status = 'done' AND EXISTS (SELECT 1 FROM self_edits e "
        "WHERE e.interaction_id = i.id AND e.status = 'buffered' AND e.format = 'statement')"
    )
    if max_tries is None:
        return sql, []
    return sql + " AND i.consolidation_tries < ?", [max_tries]


class InteractionStore(JournalCore):
    """The journal's queries and writes of ``interactions``, and the derivation of each."""

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
        created = now()
        msgs = json.dumps([m.model_dump() for m in messages], ensure_ascii=False)
        meta = json.dumps(metadata or {}, ensure_ascii=False, default=str)
        ns = namespace
        with self._tx() as db:
            db.execute(
                "INSERT INTO interactions (id, user_id, agent_id, session_id, kind, messages, "
                "metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (iid, ns.user_id, ns.agent_id, ns.session_id, kind.value, msgs, meta, created),
            )
            insert_probe_rows(db, [
                (new_id("prb"), iid, ns.user_id, ns.agent_id, ns.session_id, question, answer,
                 "caller", created)
                for question, answer in probes
            ])
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
        where, args = ns_where(user_id, agent_id, session_id)
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
        stamp = now()
        with self._tx() as db:
            exists = db.execute("SELECT 1 FROM interactions WHERE id = ?", (interaction_id,)).fetchone()
            if not exists:  # forgotten while it was being derived: keep nothing
                return []
            old = drop_rederived(db, interaction_id)
            drop_model_probes(db, interaction_id)
            insert_self_edits(db, self_edits, stamp=stamp, indexed=False)
            insert_probe_rows(db, [probe_row(p, stamp) for p in probes])
            db.execute(
                "UPDATE interactions SET derive_status = 'done', derive_error = NULL, "
                "derive_report = ?, derived_at = ? WHERE id = ?",
                (json.dumps(report), stamp, interaction_id),
            )
        return old

    # -- consolidation's view ---------------------------------------------------------
    def buffered_interactions(
        self, user_id: str, agent_id: str, *, max_tries: int | None = None,
        limit: int | None = None,
    ) -> list[tuple[Interaction, int]]:
        """The namespace's buffered interactions, oldest first, each with its failed tries.

        Buffered: derived, with a buffered statement (``_buffered``); with
        ``max_tries``, not yet given up.  At most ``limit`` of them.
        """
        where, args = _buffered(max_tries)
        rows = self._rows(
            f"SELECT i.* FROM interactions i WHERE i.user_id = ? AND i.agent_id = ? AND {where} "
            "ORDER BY i.rowid" + (f" LIMIT {int(limit)}" if limit is not None else ""),
            [user_id, agent_id, *args],
        )
        return [(_interaction(r), int(r["consolidation_tries"])) for r in rows]

    def buffered_backlog(
        self, user_id: str, agent_id: str, *, max_tries: int | None = None
    ) -> tuple[int, datetime | None]:
        """How many interactions :meth:`buffered_interactions` holds, and when the newest came."""
        where, args = _buffered(max_tries)
        row = self._rows(
            f"SELECT COUNT(*), MAX(i.created_at) FROM interactions i "
            f"WHERE i.user_id = ? AND i.agent_id = ? AND {where}",
            [user_id, agent_id, *args],
        )[0]
        return int(row[0]), datetime.fromisoformat(row[1]) if row[1] is not None else None

    def buffered_namespaces(self, *, max_tries: int | None = None) -> list[tuple[str, str]]:
        """Every (user, agent) with a buffered interaction, in byte order.

        ``seal-agent consolidate`` without ``--user`` runs each; it passes no
        ``max_tries``, so a namespace whose buffer holds only given-up
        interactions is still named (its run reports an empty buffer).
        """
        where, args = _buffered(max_tries)
        rows = self._rows(
            f"SELECT DISTINCT i.user_id, i.agent_id FROM interactions i WHERE {where} "
            "ORDER BY i.user_id, i.agent_id",
            args,
        )
        return [(r[0], r[1]) for r in rows]

    def add_consolidation_tries(
        self, interaction_ids: Sequence[str], conn: Connection | None = None
    ) -> None:
        """One more failed consolidation try for each interaction.

        Pass ``conn`` to count inside a transaction already open (a promotion's).
        """
        with self._writing(conn) as db:
            db.executemany(
                "UPDATE interactions SET consolidation_tries = consolidation_tries + 1 WHERE id = ?",
                [(i,) for i in interaction_ids],
            )

    # -- summaries -----------------------------------------------------------------
    def counts(self, user_id: str | None = None, agent_id: str | None = None) -> dict[str, Any]:
        where, args = ns_where(user_id, agent_id, None)
        clause = (" WHERE " + " AND ".join(where)) if where else ""

        def grouped(sql: str) -> dict[str, int]:
            return {r[0]: r[1] for r in self._rows(sql.format(clause), args)}

        inter = grouped("SELECT derive_status, COUNT(*) FROM interactions{} GROUP BY derive_status")
        edits = grouped("SELECT status, COUNT(*) FROM self_edits{} GROUP BY status")
        formats = grouped("SELECT format, COUNT(*) FROM self_edits{} GROUP BY format")
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


def _interaction(row: Any) -> Interaction:
    return Interaction(
        id=row["id"],
        namespace=row_namespace(row),
        kind=InteractionKind(row["kind"]),
        messages=tuple(Message(**m) for m in json.loads(row["messages"])),
        created_at=datetime.fromisoformat(row["created_at"]),
        metadata=json.loads(row["metadata"]),
        derive_status=DeriveStatus(row["derive_status"]),
        derive_error=row["derive_error"],
        derive_report=json.loads(row["derive_report"]),
    )
