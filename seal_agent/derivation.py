"""From a logged interaction to its self-edits and probes: when, how, and again.

An interaction is committed ``pending``; :class:`Deriver` decides when it is
derived (``agent.derive``: inline in the call, on the background worker, or
not at all), derives it (the self-edit writer, then the journal, then the
buffer), resumes what a stopped process left pending, and re-derives on
demand (``reprocess``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from seal_agent.errors import MemoryNotFoundError
from seal_agent.facts_store import FactStore
from seal_agent.types import DeriveStatus, FrozenModel, Interaction, InteractionKind, SelfEditFormat

if TYPE_CHECKING:
    from seal_agent.config import SealAgentConfig
    from seal_agent.journal import Journal
    from seal_agent.memory_index import MemoryIndex
    from seal_agent.models.base import LanguageModel
    from seal_agent.selfedit import SelfEditWriter
    from seal_agent.worker import DeriveWorker

__all__ = ["Deriver", "ReprocessReport"]

log = logging.getLogger("seal_agent")


class ReprocessReport(FrozenModel):
    derived: int
    failed: int
    reindexed: int
    orphans_removed: int


class Deriver:
    """Derives logged interactions, inline or on a background worker.

    The writer and the model are asked for only when something is derived
    (``writer()``, ``lm()``), so an agent that never derives never loads them.
    ``turn_idle`` is cleared while a turn decodes; the worker waits for it.
    """

    def __init__(
        self,
        config: SealAgentConfig,
        journal: Journal,
        index: MemoryIndex,
        *,
        writer: Callable[[], SelfEditWriter],
        lm: Callable[[], LanguageModel],
        turn_idle: threading.Event,
    ) -> None:
        self._config = config
        self._journal = journal
        self._index = index
        self._writer = writer
        self._lm = lm
        self._turn_idle = turn_idle
        self._worker: DeriveWorker | None = None

    # -- when -----------------------------------------------------------------------
    def after_logged(self, interaction_id: str) -> None:
        """Derive a just-logged interaction as ``agent.derive`` says."""
        mode = self._config.agent.derive
        if mode == "inline":
            self.derive(interaction_id)
        elif mode == "background":
            self._background().submit(interaction_id)

    def _background(self) -> DeriveWorker:
        if self._worker is None:
            from seal_agent.worker import DeriveWorker

            self._worker = DeriveWorker(self._derive_quietly, self._turn_idle)
        return self._worker

    def resume_pending(self) -> None:
        """Queue pending interactions that a stopped process left underived.

        A chat turn without its answer may still be in progress in another
        process; it is left to `seal-agent reprocess`.  (Deriving one twice is
        harmless: a derivation replaces the previous one.)
        """
        pending = self._journal.interactions(derive_status=[DeriveStatus.PENDING])
        for interaction in pending:
            complete = interaction.kind is InteractionKind.DOCUMENT or any(
                m.role == "assistant" for m in interaction.messages
            )
            if complete:
                self._background().submit(interaction.id)

    def _derive_quietly(self, interaction_id: str) -> None:
        try:
            self.derive(interaction_id)
        except MemoryNotFoundError:
            pass  # forgotten before its turn came
        except Exception as exc:
            log.warning("could not derive self-edits for %s: %s", interaction_id, exc)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for background derivation to finish; False on timeout."""
        return self._worker.join(timeout) if self._worker is not None else True

    def stop(self, *, wait: bool) -> None:
        """Stop the worker, finishing its queue if ``wait`` (else the queue stays pending)."""
        if self._worker is not None:
            if wait:
                self._worker.join()
            self._worker.stop(cancel_queued=not wait)

    # -- how ----------------------------------------------------------------------------
    def derive(self, interaction_id: str) -> DeriveStatus:
        """Write (or rewrite) the self-edits and probes of one interaction."""
        journal = self._journal
        interaction = journal.get_interaction(interaction_id)
        caller_probes = [
            p for p in journal.probes(interaction_id=interaction_id) if p.source == "caller"
        ]
        try:
            derivation = self._writer().derive(
                interaction, write_probes=not caller_probes, held_out=caller_probes
            )
        except Exception as exc:
            journal.mark_derive_failed(interaction_id, f"{type(exc).__name__}: {exc}")
            raise
        removed = journal.save_derivation(
            interaction_id,
            derivation.self_edits,
            derivation.probes,
            derivation.report.model_dump(),
        )
        self._index.delete(removed)
        self._index.add([e for e in derivation.self_edits if e.retrievable])
        if self._config.consolidation.mode == "recall" and any(
            e.format is SelfEditFormat.STATEMENT for e in derivation.self_edits
        ):
            self._write_fact_probes(interaction)
        return DeriveStatus.DONE

    def _write_fact_probes(self, interaction: Interaction) -> None:
        """The pairs consolidation will train and check (memorize.py), written now, in the
        background, rather than inside a consolidation run. A failure here costs nothing:
        consolidation writes whatever is missing."""
        from seal_agent.memorize import write_fact_probes

        try:
            write_fact_probes(self._lm(), FactStore(self._journal), [interaction],
                              self._config.consolidation)
        except Exception as exc:  # the derivation itself is done and durable
            log.warning("fact probes for %s not written now (%s); consolidation will", interaction.id, exc)

    # -- again --------------------------------------------------------------------------
    def reprocess(
        self,
        *,
        user_id: str | None,
        agent_id: str | None,
        include_done: bool,
        progress: Any,
    ) -> ReprocessReport:
        """Repair the buffer, then redo derivation for pending and failed interactions
        (or all of them); ``progress(done, total)`` is called after each one."""
        opened_before = self._index.is_open
        reindexed, orphans = self._index.reconcile()
        if not opened_before:  # opening the buffer just now repaired it already
            reindexed += self._index.repaired_on_open[0]
            orphans += self._index.repaired_on_open[1]
        statuses = None if include_done else [DeriveStatus.PENDING, DeriveStatus.FAILED]
        todo = self._journal.interactions(user_id=user_id, agent_id=agent_id, derive_status=statuses)
        derived = failed = 0
        for n, interaction in enumerate(todo, 1):
            try:
                self.derive(interaction.id)
                derived += 1
            except MemoryNotFoundError:
                pass
            except Exception as exc:
                failed += 1
                log.warning("reprocess: %s failed: %s", interaction.id, exc)
            if progress is not None:
                progress(n, len(todo))
        return ReprocessReport(
            derived=derived, failed=failed, reindexed=reindexed, orphans_removed=orphans
        )
