"""Consolidation: a namespace's buffered memories move into its LoRA adapter, and the
move is measured.

The :class:`Consolidator` holds what both modes share: the policy that writes
self-edits, a separate trainable copy of the base, the adapter store, the run
ledger, the namespace lock. ``consolidation.mode`` picks the mode:

* ``recall`` (the default, memorize.py): a memory leaves retrieval only once
  the new weights say its check questions;
* ``loglik`` (reward_loop.py): the SEAL reward loop, self-edits rewarded by
  the gold answers' log-likelihood.

This module also defines what a run reports (:class:`ConsolidationReport`)
and what it says while it runs (:class:`ProgressEvent`). A run holds the
namespace's lock (a killed run never leaves it stuck) and changes nothing the
agent uses until its promotion transaction commits.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import Field

from seal_agent.config import SealAgentConfig
from seal_agent.innerloop import InnerLoop
from seal_agent.journal import Journal
from seal_agent.runs import ReportStatus, RunLedger
from seal_agent.types import FrozenModel, Interaction, Namespace

if TYPE_CHECKING:
    from seal_agent.adapters import AdapterStore
    from seal_agent.buffer import Buffer
    from seal_agent.memorize import Memorizer
    from seal_agent.models.base import LanguageModel, TrainableBase
    from seal_agent.reward import Scorer
    from seal_agent.reward_loop import RewardLoop
    from seal_agent.selfedit import SelfEditWriter
    from seal_agent.training import LoraTrainer

__all__ = [
    "CandidateResult",
    "ConsolidationReport",
    "Consolidator",
    "InteractionOutcome",
    "InteractionResult",
    "ProgressEvent",
]


class CandidateResult(FrozenModel):
    format: str
    items: int
    directive: dict[str, Any] | None
    score_after: float | None
    reward: float | None
    tokens: int
    seconds: float


class InteractionOutcome(StrEnum):
    """What the reward loop did with one buffered interaction (mode "loglik").

    Per interaction, beside the run's :class:`~seal_agent.runs.ReportStatus`:
    its memories moved (``CHOSEN``), or they stay buffered for a reason.
    """

    CHOSEN = "chosen"  # a candidate's reward was positive: trained into the adapter
    NOT_POSITIVE = "not_positive"  # no candidate beat the current weights; tried again next run
    GIVEN_UP = "given_up"  # not positive for the max_tries-th time: stays buffered for good
    NO_PROBES = "no_probes"  # nothing to score it by
    NO_CANDIDATES = "no_candidates"  # every sampled self-edit was dropped


class InteractionResult(FrozenModel):
    interaction_id: str
    probes: int
    score_before: float | None
    candidates: tuple[CandidateResult, ...]
    chosen: int | None  # index into candidates
    outcome: InteractionOutcome


class ConsolidationReport(FrozenModel):
    run_id: str | None
    namespace: Namespace
    status: ReportStatus
    reason: str
    interactions: tuple[InteractionResult, ...] = ()
    candidates_tried: int = 0
    chosen: int = 0
    not_positive: int = 0
    given_up: int = 0
    skipped_no_probes: int = 0
    directive_fallbacks: dict[str, int] = Field(default_factory=dict)
    lines_dropped: dict[str, int] = Field(default_factory=dict)
    recall_before: float | None = None
    recall_after: float | None = None
    retention_before: float | None = None
    retention_after: float | None = None
    retention_probes: int = 0
    version: int | None = None
    version_id: str | None = None
    parent_version: int | None = None
    scorer: str = ""
    tokens_trained: int = 0
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()
    recall: dict[str, Any] | None = None  # recall mode: what the weights say (memorize.py)

    @property
    def promoted(self) -> bool:
        return self.status is ReportStatus.PROMOTED


class ProgressEvent(FrozenModel):
    """What the loop is doing now (the CLI draws it; a library caller may log it)."""

    stage: str  # probes | before | candidates | train | score | update | gate | promote | staged | done
    interaction: int = 0  # 1-based position in this run
    interactions: int = 0
    candidate: int = 0
    candidates: int = 0
    reward: float | None = None
    message: str = ""


Progress = Callable[[ProgressEvent], None]


class Consolidator:
    """Runs the reward loop for one namespace at a time.

    The policy model samples candidates (the agent's loaded model is fine,
    local or remote); the trainer holds a *separate* copy of the base wrapped
    with LoRA, so chat keeps working while a consolidation trains. That copy
    comes from ``base``: the policy's own weights (local backend) or
    ``model.trainer`` (remote); without one, construction raises
    ``BackendCapabilityError``.
    """

    def __init__(
        self,
        config: SealAgentConfig,
        journal: Journal,
        *,
        policy: LanguageModel,
        base: TrainableBase | None = None,
        writer: SelfEditWriter | None = None,
        trainer: LoraTrainer | None = None,
        store: AdapterStore | None = None,
        buffer: Buffer | None = None,
        progress: Progress | None = None,
    ) -> None:
        from seal_agent.adapters import AdapterStore
        from seal_agent.models import trainable_base
        from seal_agent.reward import make_scorer
        from seal_agent.selfedit import SelfEditWriter

        self.config = config
        self.cfg = config.consolidation
        self.journal = journal
        self.policy = policy
        self.base = base or trainable_base(policy, "consolidate")
        self.writer = writer or SelfEditWriter(policy, config.selfedit)
        self._trainer = trainer
        self.store = store or AdapterStore(config.adapters_dir, journal)
        self.runs = RunLedger(self.store, journal)  # run rows and tries, for both modes
        self.buffer = buffer
        self.progress = progress or (lambda event: None)
        self.scorer: Scorer = make_scorer(
            self.cfg.scorer, self.base.tokenizer, config.agent.system_prompt
        )

    @property
    def inner(self) -> InnerLoop:
        """The shared inner loop (innerloop.py) on this consolidator's trainer."""
        if getattr(self, "_inner", None) is None:
            self._inner = InnerLoop(
                self.trainer, self.scorer, self.cfg, system_prompt=self.config.agent.system_prompt
            )
        return self._inner

    @property
    def memorizer(self) -> Memorizer:
        """Consolidation by behaviour (memorize.py), on this consolidator's parts."""
        if getattr(self, "_memorizer", None) is None:
            from seal_agent.memorize import Memorizer

            self._memorizer = Memorizer(self)
        return self._memorizer

    @property
    def reward_loop(self) -> RewardLoop:
        """The SEAL reward loop on the probes' log-likelihood (reward_loop.py), on these parts."""
        if getattr(self, "_reward_loop", None) is None:
            from seal_agent.reward_loop import RewardLoop

            self._reward_loop = RewardLoop(self)
        return self._reward_loop

    @property
    def trainer(self) -> LoraTrainer:
        """A second copy of the base (fast from the safetensors cache), LoRA-wrapped once."""
        if self._trainer is None:
            from seal_agent.innerloop import build_trainer

            self._trainer = build_trainer(self.config, self.base)
        return self._trainer

    # -- the run -------------------------------------------------------------------
    def run(
        self,
        user_id: str,
        agent_id: str = "default",
        *,
        k: int | None = None,
        max_interactions: int | None = None,
        dry_run: bool = False,
    ) -> ConsolidationReport:
        ns = Namespace(user_id=user_id, agent_id=agent_id)
        with self.store.lock(user_id, agent_id):
            self.store.cleanup(user_id, agent_id)
            self.runs.mark_abandoned_runs()
            with self.runs.recording():  # an exception that escapes marks the run failed
                if self.cfg.mode == "recall":
                    return self.memorizer.run(ns, k or self.cfg.recall_k, max_interactions, dry_run)
                return self.reward_loop.run(ns, k or self.cfg.k, max_interactions, dry_run)

    # -- pieces ----------------------------------------------------------------------
    def buffered_interactions(
        self, ns: Namespace, limit: int | None
    ) -> list[tuple[Interaction, int]]:
        """Interactions with buffered memories, oldest first, not yet given up."""
        return self.journal.buffered_interactions(
            ns.user_id, ns.agent_id, max_tries=self.cfg.max_tries, limit=limit or None)
