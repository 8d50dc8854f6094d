"""The backstop of drained memories: a memory that left retrieval is never lost to a turn.

Consolidation drains a memory once the weights say its check questions
(memorize_gate.py). Those are a few questions; the user asks in words of
their own, and on unseen wording the weights can miss a fact they said to
every check (the held-out personal-facts run lost 3 of 13 drained memories
that way). So a turn answered through the adapter, with retrieval on, is
backed by the drained memories too:

1. :meth:`Backstop.candidates`: the namespace's drained (consolidated)
   memories that the message is about: above the retrieval floor and nearer
   the message than every memory still buffered (the hit retrieval would
   have put first before the drain), each with the answer keys its probes
   hold (facts_store.py);
2. :func:`missed`: those whose keys the answer from the weights holds none of.
   Only then is the turn answered again, with them in the prompt (in the
   user's own words): through the adapter, and if that still misses, without
   it, as the agent answered before the drain (an adapter can hold a wrong
   neighbour strongly enough to outvote the prompt: "Your cat is called
   Biscuit", the dog's name, with "My cat is called Pickles" in it);
3. :meth:`Backstop.settle`: if an answer again says a missed memory's key,
   the weights missed what the user asked about. That answer is the
   turn's, and the memory returns to retrieval (its self-edits buffered, its
   recall state ``missed``, in one journal transaction), so the next
   consolidation trains it again. Otherwise the message was not about it
   after all, and the answer from the weights stands.

One search finds a turn's buffered and drained hits (turns.py); a turn whose
answer from the weights holds the key costs nothing more. Answers without the adapter (``weights=False``) have nothing to
miss with: the drained matches simply join the prompt.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from seal_agent.facts import said
from seal_agent.facts_store import FactStore
from seal_agent.types import Memory, MemoryStatus, SelfEditFormat

if TYPE_CHECKING:
    from seal_agent.config import SealAgentConfig
    from seal_agent.journal import Journal
    from seal_agent.memory_index import MemoryIndex

__all__ = ["Backstop", "Drained", "missed"]


@dataclass(frozen=True)
class Drained:
    """One drained memory that matches a message, with the answers it holds."""

    memory: Memory
    keys: tuple[str, ...]

    @property
    def interaction_id(self) -> str:
        return self.memory.interaction_id


def missed(answer: str, drained: Sequence[Drained]) -> list[Drained]:
    """The drained matches whose keys the answer holds none of."""
    return [d for d in drained if not any(said(answer, k) for k in d.keys)]


class Backstop:
    """Finds a message's drained matches and returns the missed ones to retrieval.

    ``counts`` says what it did since the agent opened: ``backed`` (answers
    checked against drained matches), ``answered_again`` and ``returned``
    (memories sent back to retrieval).
    """

    def __init__(self, config: SealAgentConfig, journal: Journal, index: MemoryIndex) -> None:
        self._config = config
        self._journal = journal
        self._index = index
        self._facts = FactStore(journal)
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    @property
    def on(self) -> bool:
        """Drained memories exist only when consolidation drains (``consolidation.drain``)."""
        return self._config.agent.backstop and self._config.consolidation.drain

    def candidates(self, hits: Sequence[Memory], buffered: Sequence[Memory]) -> list[Drained]:
        """The drained memories among one search's ``hits`` that it is about, one per
        interaction, best first: nearer the query than every ``buffered`` hit."""
        best = max((m.score for m in buffered), default=-1.0)
        first: dict[str, Memory] = {}
        for h in hits:
            if h.status is MemoryStatus.CONSOLIDATED and h.score >= best:
                first.setdefault(h.interaction_id, h)
            if len(first) == self._config.agent.backstop_top_k:
                break
        stored = self._facts.load(first)
        return [Drained(self._in_own_words(m), tuple(f.key for f in stored[i].facts))
                for i, m in first.items() if i in stored and stored[i].facts]

    def _in_own_words(self, hit: Memory) -> Memory:
        """The hit's memory as the user said it (its statement self-edit), when it has one:
        the clearest text to put in a prompt (a hit may be a model-written line)."""
        if hit.format is SelfEditFormat.STATEMENT:
            return hit
        for e in self._journal.self_edits(interaction_id=hit.interaction_id,
                                          status=[MemoryStatus.CONSOLIDATED]):
            if e.format is SelfEditFormat.STATEMENT:
                return hit.model_copy(update={"id": e.id, "text": e.text, "format": e.format})
        return hit

    def count(self, event: str, n: int = 1) -> None:
        with self._lock:
            self.counts[event] += n

    def settle(self, second_answer: str, missed_now: Sequence[Drained]) -> list[str]:
        """Return to retrieval each missed memory the second answer says; their interaction
        ids (empty: the second answer says none, and the first one stands)."""
        said_now = sorted({d.interaction_id for d in missed_now
                           if any(said(second_answer, k) for k in d.keys)})
        journal = self._journal
        # those still consolidated (another turn may have returned one since)
        by_memory = {iid: [e.id for e in journal.self_edits(
            interaction_id=iid, status=[MemoryStatus.CONSOLIDATED])] for iid in said_now}
        edits = [e for ids in by_memory.values() for e in ids]
        if edits:
            with journal.transaction() as conn:
                journal.set_status(edits, MemoryStatus.BUFFERED, conn)
                self._facts.mark_missed(conn, said_now)
            # the journal is right already; the buffer's copy follows (reconcile repairs a crash)
            self._index.buffer.set_status(edits, MemoryStatus.BUFFERED)
            self.count("returned", sum(bool(ids) for ids in by_memory.values()))
        return said_now
