"""Consolidation: the SEAL reward loop moves a namespace's buffered memories
into a LoRA adapter, and measures the move.

For each buffered interaction of a (user, agent) namespace:

1. candidates: the self-edit policy samples k self-edits (directive,
   implications, rewrite ...); every line is checked against the user's own
   words before anything is trained on it;
2. inner loop: for each candidate, a temporary LoRA starts from the
   namespace's current memory adapter, trains on the candidate plus the
   user's statement, and answers the interaction's probe questions with no
   memory in context; reward = probe score after - before;
3. selection: the best candidate wins if its reward is positive; otherwise the
   interaction stays buffered (and is given up after ``max_tries`` runs).
   Every candidate and its reward is kept in the journal;
then, for the namespace:
4. update: the next adapter trains on all winners plus a replay sample of
   earlier consolidated self-edits;
5. gate: promoted only if recall on the new probes rose and retention on
   earlier probes held;
6. promotion: written, checksummed and renamed into place, then activated in
   one journal transaction that also marks the memories consolidated; the
   buffer follows (drain), and `reconcile` repairs it if a crash intervened.

A run holds the namespace's lock (a killed run never leaves it stuck) and
changes nothing the agent uses until the promotion transaction commits.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field

from seal_agent.config import SealAgentConfig
from seal_agent.innerloop import InnerLoop
from seal_agent.innerloop import mean as _mean
from seal_agent.journal import Journal, new_id
from seal_agent.runs import ReportStatus, RunLedger
from seal_agent.types import (
    FrozenModel,
    Interaction,
    MemoryStatus,
    Namespace,
    Probe,
    SelfEdit,
    SelfEditFormat,
)

if TYPE_CHECKING:
    from seal_agent.adapters import AdapterStore
    from seal_agent.buffer import Buffer
    from seal_agent.memorize import Memorizer
    from seal_agent.models.base import LanguageModel, TrainableBase
    from seal_agent.reward import Scorer
    from seal_agent.selfedit import Candidate, SelfEditWriter
    from seal_agent.training import LoraTrainer

__all__ = [
    "CandidateResult",
    "ConsolidationReport",
    "Consolidator",
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


class InteractionResult(FrozenModel):
    interaction_id: str
    probes: int
    score_before: float | None
    candidates: tuple[CandidateResult, ...]
    chosen: int | None  # index into candidates
    outcome: str  # chosen | not_positive | given_up | no_probes | no_candidates


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
                return self._run_locked(ns, k or self.cfg.k, max_interactions, dry_run)

    def _run_locked(
        self, ns: Namespace, k: int, max_interactions: int | None, dry_run: bool
    ) -> ConsolidationReport:
        started = time.perf_counter()
        cfg = self.cfg
        todo = self.buffered_interactions(ns, max_interactions or cfg.max_interactions)
        if not todo:
            return ConsolidationReport(
                run_id=None, namespace=ns, status=ReportStatus.EMPTY,
                reason="the buffer holds nothing to consolidate for this namespace",
                scorer=self.scorer.name,
            )
        run_id = self.runs.open(
            ns, {"config": self.config.public_dict(), "pid": os.getpid(), "dry_run": dry_run}
        )
        version, warnings = self.store.loadable(ns.user_id, ns.agent_id)
        trainer = self.trainer
        start_state = trainer.load(version.path) if version is not None else None
        trainer.reset(start_state)
        retention = self._retention_probes(ns)
        retention_before = _mean(self.scorer.score(trainer.model, retention)) if retention else None

        results: list[InteractionResult] = []
        winners: list[tuple[Interaction, Candidate, list[str], list[Probe], float]] = []
        tokens = 0
        fallbacks: Counter[str] = Counter()
        dropped: Counter[str] = Counter()
        for n, (interaction, tries) in enumerate(todo, 1):
            emit = self._emitter(n, len(todo))
            emit("probes", message=interaction.id)
            probes = self._probes(interaction)
            if not probes:
                results.append(InteractionResult(
                    interaction_id=interaction.id, probes=0, score_before=None,
                    candidates=(), chosen=None, outcome="no_probes"))
                continue
            qa = [(p.question, p.answer) for p in probes]
            emit("candidates")
            candidates = self.writer.candidates(
                interaction, k=k, formats=cfg.formats, temperature=cfg.temperature, held_out=probes
            )
            statements = [
                e.text for e in self.journal.self_edits(interaction_id=interaction.id)
                if e.format is SelfEditFormat.STATEMENT
            ]
            before = self.inner.score(qa, start_state)
            scored: list[CandidateResult] = []
            rows: list[dict[str, Any]] = []
            for j, cand in enumerate(candidates, 1):
                dropped.update(cand.dropped)
                if cand.directive is not None:
                    fallbacks.update(cand.directive.fallbacks)
                sequences = self.inner.sequences(cand, statements)
                emit("train", candidate=j, candidates=len(candidates))
                res = self.inner.reward(cand, statements, qa, start=start_state, before=before)
                tokens += res.tokens
                emit("score", candidate=j, candidates=len(candidates), reward=res.reward)
                scored.append(CandidateResult(
                    format=cand.format.value, items=len(cand.items),
                    directive=cand.directive.as_dict() if cand.directive else None,
                    score_after=res.after, reward=res.reward, tokens=res.tokens,
                    seconds=res.seconds))
                rows.append({"cand": cand, "sequences": sequences, "after": res.after,
                             "reward": res.reward})
            best = max(
                (i for i, c in enumerate(scored) if c.reward is not None),
                key=lambda i: scored[i].reward or 0.0, default=None,
            )
            if best is not None and (scored[best].reward or 0.0) > 0.0:
                outcome = "chosen"
                winners.append((interaction, rows[best]["cand"], rows[best]["sequences"], probes, before))
            elif not candidates or best is None:
                outcome = "no_candidates"
            else:
                outcome = "given_up" if tries + 1 >= cfg.max_tries else "not_positive"
            chosen = best if outcome == "chosen" else None
            self._record_candidates(run_id, interaction, rows, before, chosen)
            results.append(InteractionResult(
                interaction_id=interaction.id, probes=len(probes), score_before=before,
                candidates=tuple(scored), chosen=chosen, outcome=outcome))

        counts = Counter(r.outcome for r in results)
        base_report: dict[str, Any] = {
            "run_id": run_id, "namespace": ns, "interactions": tuple(results),
            "candidates_tried": sum(len(r.candidates) for r in results),
            "chosen": counts["chosen"], "not_positive": counts["not_positive"],
            "given_up": counts["given_up"], "skipped_no_probes": counts["no_probes"],
            "directive_fallbacks": dict(fallbacks), "lines_dropped": dict(dropped),
            "retention_before": retention_before, "retention_probes": len(retention),
            "parent_version": version.version if version else None,
            "scorer": self.scorer.name, "warnings": tuple(warnings),
        }
        failed_ids = [r.interaction_id for r in results if r.outcome in ("not_positive", "given_up", "no_candidates")]
        if not winners:
            if not dry_run:
                self.runs.count_tries(failed_ids)
            status = ReportStatus.DRY_RUN if dry_run else ReportStatus.NOTHING_TO_PROMOTE
            self.runs.close(run_id, status, base_report, tokens=tokens, started=started)
            return ConsolidationReport(
                **base_report, status=status,
                reason="no candidate raised its probes' score; the memories stay buffered",
                tokens_trained=tokens, seconds=round(time.perf_counter() - started, 2))

        # -- update: the next adapter, from the current memory state --------------
        self._emitter(len(todo), len(todo))("update", message=f"{len(winners)} winners")
        trainer.reset(start_state)
        sequences = [s for _, _, seqs, _, _ in winners for s in seqs] + self._replay(ns)
        stats = trainer.train(sequences, self.inner.settings(update=True))
        tokens += stats.tokens
        new_qa = [(p.question, p.answer) for _, _, _, probes, _ in winners for p in probes]
        recall_after = _mean(self.scorer.score(trainer.model, new_qa))
        recall_before = _mean([
            b for _, _, _, probes, b in winners for _ in probes
        ])  # per-probe weight, as recall_after
        retention_after = _mean(self.scorer.score(trainer.model, retention)) if retention else None
        self._emitter(len(todo), len(todo))("gate")
        gain = recall_after - recall_before
        drop = (retention_before - retention_after) if retention_after is not None and retention_before is not None else 0.0
        metrics = {
            **{k: v for k, v in base_report.items() if k in (
                "candidates_tried", "chosen", "not_positive", "given_up", "skipped_no_probes",
                "directive_fallbacks", "lines_dropped", "retention_probes", "scorer")},
            "recall_before": recall_before, "recall_after": recall_after,
            "retention_before": retention_before, "retention_after": retention_after,
            "tokens_trained": tokens,
        }
        report = {**base_report, "recall_before": recall_before, "recall_after": recall_after,
                  "retention_after": retention_after}
        if gain <= cfg.min_recall_gain or drop > cfg.max_retention_drop:
            reason = (
                f"recall gain {gain:+.3f} does not clear {cfg.min_recall_gain:+.3f}"
                if gain <= cfg.min_recall_gain
                else f"retention fell by {drop:.3f} (tolerance {cfg.max_retention_drop:.3f})"
            )
            if not dry_run:
                self.runs.count_tries(failed_ids + [i.id for i, *_ in winners])
            status = ReportStatus.DRY_RUN if dry_run else ReportStatus.GATE_REJECTED
            self.runs.close(run_id, status, metrics, tokens=tokens, started=started)
            return ConsolidationReport(**report, status=status, reason=reason,
                                       tokens_trained=tokens,
                                       seconds=round(time.perf_counter() - started, 2))
        if dry_run:
            self.runs.close(run_id, ReportStatus.DRY_RUN, metrics, tokens=tokens, started=started)
            return ConsolidationReport(**report, status=ReportStatus.DRY_RUN,
                                       reason="the gate would promote this adapter (dry run)",
                                       tokens_trained=tokens,
                                       seconds=round(time.perf_counter() - started, 2))

        # -- promotion: files first, then one transaction -------------------------
        self._emitter(len(todo), len(todo))("promote")
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        staged = self.store.stage(
            ns.user_id, ns.agent_id, "memory", trainer.save,
            config=self.config.public_dict(), metrics=metrics, run_id=run_id,
            parent_id=version.id if version else None,
        )
        self._emitter(len(todo), len(todo))("staged", message=staged.name)
        moved = self._consolidated_ids([i.id for i, *_ in winners])
        new_edits = self._winner_edits(winners)

        def commit(conn: Any) -> None:
            self.journal.set_status(moved, MemoryStatus.CONSOLIDATED, conn)
            self.journal.add_self_edits(new_edits, conn, indexed=True)
            self.runs.count_tries(failed_ids, conn)

        promoted = self.runs.promote(staged, run_id, metrics, also=commit)
        if self.buffer is not None:
            # The journal is already right; a crash here leaves only status drift,
            # which SealAgent.reconcile() repairs.
            self.buffer.set_status(moved, MemoryStatus.CONSOLIDATED)
        self._emitter(len(todo), len(todo))("done", message=f"v{promoted.version}")
        return ConsolidationReport(
            **report, status=ReportStatus.PROMOTED,
            reason=f"recall {recall_before:.3f} -> {recall_after:.3f}" + (
                f", retention {retention_before:.3f} -> {retention_after:.3f}"
                if retention_before is not None and retention_after is not None else ""),
            version=promoted.version, version_id=promoted.id,
            tokens_trained=tokens, seconds=round(time.perf_counter() - started, 2))

    # -- pieces ----------------------------------------------------------------------
    def buffered_interactions(
        self, ns: Namespace, limit: int | None
    ) -> list[tuple[Interaction, int]]:
        """Interactions with buffered memories, oldest first, not yet given up."""
        return self.journal.buffered_interactions(
            ns.user_id, ns.agent_id, max_tries=self.cfg.max_tries, limit=limit or None)

    def _probes(self, interaction: Interaction) -> list[Probe]:
        probes = self.journal.probes(interaction_id=interaction.id)
        if probes:
            return probes
        # Interactions derived without probes: write them now (kept for later runs).
        written = self.writer.probes_for(interaction)
        if written:
            self.journal.add_probes(written)
        return written

    def _retention_probes(self, ns: Namespace) -> list[tuple[str, str]]:
        pairs = self.journal.consolidated_probe_pairs(ns.user_id, ns.agent_id)
        rng = random.Random(self.cfg.seed)
        return rng.sample(pairs, min(len(pairs), self.cfg.retention_probes))

    def _replay(self, ns: Namespace) -> list[str]:
        texts = [
            self.inner.render(e.format, e.text)
            for e in self.journal.self_edits(
                user_id=ns.user_id, agent_id=ns.agent_id, status=[MemoryStatus.CONSOLIDATED]
            )
            if e.format is not SelfEditFormat.EXCHANGE
        ]
        rng = random.Random(self.cfg.seed)
        return rng.sample(texts, min(len(texts), self.cfg.replay))

    def _consolidated_ids(self, interaction_ids: Sequence[str]) -> list[str]:
        return [
            e.id
            for iid in interaction_ids
            for e in self.journal.self_edits(interaction_id=iid, status=[MemoryStatus.BUFFERED])
        ]

    def _winner_edits(self, winners: Sequence[tuple[Any, ...]]) -> list[SelfEdit]:
        """The winners' items as consolidated, unretrievable self-edits (the adapter holds them)."""
        edits = []
        created = datetime.now(UTC)
        for interaction, cand, _seqs, _probes, _before in winners:
            fmt = SelfEditFormat.IMPLICATION if cand.format is SelfEditFormat.DIRECTIVE else cand.format
            sample = new_id("smp")
            for item in cand.items:
                edits.append(SelfEdit(
                    id=new_id("mem"), interaction_id=interaction.id, namespace=interaction.namespace,
                    format=fmt, text=item, status=MemoryStatus.CONSOLIDATED,
                    author=self.writer.author, sample_id=sample, retrievable=False,
                    created_at=created))
        return edits

    def _record_candidates(
        self, run_id: str, interaction: Interaction, rows: list[dict[str, Any]],
        before: float, chosen: int | None,
    ) -> None:
        """Every (prompt, candidate, directive, reward): the later policy step's data."""
        self.runs.record_candidates(run_id, interaction, rows, before=before, chosen=chosen,
                                    policy=self.writer.author)

    def _emitter(self, n: int, total: int) -> Callable[..., None]:
        def emit(stage: str, **fields: Any) -> None:
            self.progress(ProgressEvent(stage=stage, interaction=n, interactions=total, **fields))

        return emit
