"""Forgetting: delete a memory, an interaction, or a whole namespace from the journal.

One transaction per forget: an interaction takes its self-edits, probes,
fact probes and recall checks with it (by cascade) and its consolidation
candidates; a namespace also takes its adapter versions and runs, because they
hold what was learned from the user's words.  The tables of other stages are
deleted by their owners' functions (``runs.erase_runs``,
``runs.erase_candidates``, ``adapters.erase_versions``), called inside this
transaction.  (The adapter files and the buffer are the caller's:
:meth:`seal_agent.SealAgent.forget` removes them.)
"""

from __future__ import annotations

from seal_agent.errors import MemoryNotFoundError, NamespaceNotFoundError
from seal_agent.journal.core import JournalCore, ns_where

__all__ = ["Forgetting"]


class Forgetting(JournalCore):
    """The journal's deletes."""

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
            from seal_agent.runs import erase_candidates  # runs.py owns the table

            erase_candidates(db, interaction_id)
        return ids

    def forget_namespace(self, user_id: str, agent_id: str | None = None) -> list[str]:
        """Delete all of a user's (or one user-agent pair's) interactions and memories."""
        where, args = ns_where(user_id, agent_id, None)
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
            # What consolidation kept about them goes too, in the same transaction,
            # each table by its owner: candidates and runs hold the user's words and
            # their scores, adapter versions what was learned from them.
            from seal_agent.adapters import erase_versions
            from seal_agent.runs import erase_runs

            erase_versions(db, user_id, agent_id)  # first: versions refer to their runs
            erase_runs(db, user_id, agent_id)
        return ids
