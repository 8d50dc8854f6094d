"""The journal: SQLite in WAL mode (or PostgreSQL), the source of truth of a memory home.

Every interaction is committed here before anything is derived from it, so a
crash during self-edit generation loses nothing: the interaction stays with
``derive_status = 'pending'`` and ``seal-agent reprocess`` redoes the work.
The Chroma buffer is derived state: retrieval cross-checks hits against the
journal, and :meth:`Journal.unindexed_self_edits` / the buffer reconcile step
repair any gap a crash left between the two.

The package, in the order data flows through it:

* ``schema.py``: the numbered migrations, and which module writes each table;
* ``core.py``: opening SQLite or PostgreSQL, write transactions, migrating;
* ``postgres.py``: the PostgreSQL dialect layer under ``core.py``;
* ``interactions.py``, ``self_edits.py``, ``probes.py``: one store per table;
* ``forget.py``: deleting a memory, an interaction or a namespace.

:class:`Journal` is all of them in one object, as every stage receives it.
"""

from __future__ import annotations

from seal_agent.journal.core import Connection, new_id
from seal_agent.journal.forget import Forgetting
from seal_agent.journal.interactions import InteractionStore
from seal_agent.journal.postgres import advisory_key
from seal_agent.journal.probes import ProbeStore
from seal_agent.journal.schema import MIGRATIONS, SCHEMA_VERSION
from seal_agent.journal.self_edits import SelfEditStore

__all__ = ["Connection", "Journal", "MIGRATIONS", "SCHEMA_VERSION", "advisory_key", "new_id"]


class Journal(InteractionStore, SelfEditStore, ProbeStore, Forgetting):
    """Thread-safe access to one journal (one connection, one lock).

    ``Journal(path)`` opens (or creates) the SQLite file; ``Journal(url)``
    with a ``postgresql://`` URL opens that database instead.  Other
    processes may open the same journal at the same time: on SQLite, WAL lets
    readers and one writer work side by side and ``busy_timeout`` waits out
    locks; on PostgreSQL, the server does the same and writers queue on one
    advisory lock.  (Opening, transactions and migrations:
    :class:`~seal_agent.journal.core.JournalCore`.)
    """
