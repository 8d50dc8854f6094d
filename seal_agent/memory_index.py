"""The buffer as the journal sees it: opened and repaired once, searched with a cross-check.

The journal is the truth; the buffer (Chroma) is a copy of its retrievable
self-edits, written after each journal commit.  This module is the one place
that keeps the copy honest: it repairs the buffer when it is opened, checks
every search hit against the journal, and :meth:`MemoryIndex.reconcile`
makes the two agree on demand (``seal-agent reprocess``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from seal_agent.types import Memory, MemoryStatus, Namespace, SelfEdit

if TYPE_CHECKING:
    from seal_agent.buffer import Buffer
    from seal_agent.config import SealAgentConfig
    from seal_agent.journal import Journal
    from seal_agent.models.base import Embedder

__all__ = ["MemoryIndex"]

BATCH = 500  # rows per journal read and buffer write while repairing


class MemoryIndex:
    """The agent's buffer, kept in agreement with its journal.

    The buffer opens on first use (Chroma and the embedder are heavy), through
    :meth:`open_and_repair`.  A buffer handed in by the caller is the caller's:
    it counts as open and is not repaired until someone calls :meth:`reconcile`.
    """

    def __init__(
        self,
        config: SealAgentConfig,
        journal: Journal,
        embedder: Callable[[], Embedder],
        buffer: Buffer | None = None,
    ) -> None:
        self._config = config
        self._journal = journal
        self._embedder = embedder
        self._buffer = buffer
        self.repaired_on_open = (0, 0)  # what open_and_repair re-indexed and removed

    @property
    def is_open(self) -> bool:
        return self._buffer is not None

    @property
    def buffer(self) -> Buffer:
        """The buffer; the first use opens it with :meth:`open_and_repair`."""
        return self._buffer if self._buffer is not None else self.open_and_repair()

    def open_and_repair(self) -> Buffer:
        """Open the buffer, then make it agree with the journal, before its first search.

        Why the repair runs here: every buffer write follows a journal commit,
        so a process killed between the two, a forget cut short, a deleted
        store or a new server leaves the buffer behind (memories missing,
        orphans present, statuses stale).  A search's journal cross-check hides
        orphans but cannot bring back a memory the buffer lost, so the repair
        has to happen once, as the buffer opens, before anything searches it.
        What it did is kept in ``repaired_on_open`` for ``reprocess`` to report.
        """
        from seal_agent.buffer import Buffer

        self._buffer = Buffer.from_config(self._config, self._embedder())
        self.repaired_on_open = self.reconcile()
        return self._buffer

    def search(
        self,
        query: str,
        ns: Namespace,
        top_k: int | None = None,
        min_similarity: float | None = None,
        include_consolidated: bool | None = None,
    ) -> list[Memory]:
        """The namespace's memories nearest ``query``, as the journal says they stand.

        Hits the journal no longer knows (forgotten there, a crash kept them
        in Chroma) are deleted from the buffer on the way; hits whose journal
        status is not wanted are dropped.
        """
        k = top_k or self._config.buffer.top_k
        # Hybrid mode (consolidation.drain = false): consolidated memories stay retrievable.
        if include_consolidated is None:
            include_consolidated = not self._config.consolidation.drain
        wanted = (
            (MemoryStatus.BUFFERED, MemoryStatus.CONSOLIDATED)
            if include_consolidated
            else (MemoryStatus.BUFFERED,)
        )
        hits = self.buffer.search(
            query, ns, top_k=k, min_similarity=min_similarity, statuses=wanted
        )
        truth = self._journal.statuses([h.id for h in hits])
        orphans = [h.id for h in hits if h.id not in truth]
        if orphans:
            self.buffer.delete(orphans)
        live = [h for h in hits if truth.get(h.id) in wanted]
        return live[:k]

    def add(self, edits: Sequence[SelfEdit]) -> None:
        """Index derived self-edits, then mark them indexed in the journal."""
        self.buffer.add(edits)
        self._journal.mark_indexed([e.id for e in edits])

    def delete(self, ids: Iterable[str]) -> None:
        self.buffer.delete(ids)

    def reconcile(self) -> tuple[int, int]:
        """Make the buffer agree with the journal; returns (re-indexed, orphans removed)."""
        buffer, journal = self.buffer, self._journal
        reindexed = 0
        while batch := journal.unindexed_self_edits(limit=BATCH):
            buffer.add(batch)
            journal.mark_indexed([e.id for e in batch])
            reindexed += len(batch)
        in_buffer = buffer.ids()
        # Journal rows the buffer lost (a deleted store, a new collection or server).
        missing = sorted(journal.retrievable_ids() - in_buffer)
        for start in range(0, len(missing), BATCH):
            buffer.add(journal.self_edits_by_ids(missing[start : start + BATCH]))
        reindexed += len(missing)
        truth = journal.statuses(sorted(in_buffer))
        orphans = [i for i in sorted(in_buffer) if i not in truth]
        buffer.delete(orphans)
        for status in MemoryStatus:
            ids = [i for i, s in truth.items() if s is status]
            buffer.set_status(ids, status)
        return reindexed, len(orphans)
