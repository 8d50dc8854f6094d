"""The SEAL reward loop (``consolidation.mode = "loglik"``): self-edits rewarded by the
gold answers' log-likelihood move a namespace's buffered memories into its adapter.

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
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from seal_agent.consolidation import (
    CandidateResult,
    ConsolidationReport,
    InteractionOutcome,
    InteractionResult,
    ProgressEvent,
)
from seal_agent.innerloop import mean
from seal_agent.journal import new_id
from seal_agent.runs import ReportStatus
from seal_agent.types import (
    Interaction,
    MemoryStatus,
    Namespace,
    Probe,
    SelfEdit,
    SelfEditFormat,
)

if TYPE_CHECKING:
    from seal_agent.consolidation import Consolidator
    from seal_agent.selfedit import Candidate

__all__ = ["RewardLoop"]

Emit = Callable[..., None]


class Winner(NamedTuple):
    """An interaction whose best candidate earned a positive reward."""

    interaction: Interaction
    cand: Candidate
    sequences: list[str]
    probes: list[Probe]
    before: float


@dataclass
class _Run:
    """One run's state, from its start to its ending."""

    ns: Namespace
    run_id: str
    started: float
    dry_run: bool
    total: int  # interactions in this run
    start_state: dict[str, Any] | None
    retention: list[tuple[str, str]]
    retention_before: float | None
    results: list[InteractionResult] = field(default_factory=list)
    winners: list[Winner] = field(default_factory=list)
    tokens: int = 0
    fallbacks: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)

    def failed_ids(self) -> list[str]:
        return [r.interaction_id for r in self.results
                if r.outcome in (InteractionOutcome.NOT_POSITIVE, InteractionOutcome.GIVEN_UP,
                                  InteractionOutcome.NO_CANDIDATES)]

    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 2)


class RewardLoop:
    """Runs the reward loop for one namespace on a :class:`Consolidator`'s parts."""

    def __init__(self, cons: Consolidator) -> None:
        self.cons = cons
        self.cfg = cons.cfg
        self.journal = cons.journal

    def run(self, ns: Namespace, k: int, max_interactions: int | None,
            dry_run: bool) -> ConsolidationReport:
        started = time.perf_counter()
        cons = self.cons
        todo = cons.buffered_interactions(ns, max_interactions or self.cfg.max_interactions)
        if not todo:
            return ConsolidationReport(
                run_id=None, namespace=ns, status=ReportStatus.EMPTY,
                reason="the buffer holds nothing to consolidate for this namespace",
                scorer=cons.scorer.name,
            )
        run_id = cons.runs.open(
            ns, {"config": cons.config.public_dict(), "pid": os.getpid(), "dry_run": dry_run}
        )
        version, warnings = cons.store.loadable(ns.user_id, ns.agent_id)
        trainer = cons.trainer
        start_state = trainer.load(version.path) if version is not None else None
        trainer.reset(start_state)
        retention = self._retention_probes(ns)
        retention_before = mean(cons.scorer.score(trainer.model, retention)) if retention else None
        run = _Run(ns, run_id, started, dry_run, len(todo), start_state, retention,
                   retention_before)
        for n, (interaction, tries) in enumerate(todo, 1):
            self._interaction(run, self._emitter(n, len(todo)), interaction, tries, k)
        base_report = self._base_report(run, version, warnings)
        if not run.winners:
            if not dry_run:
                cons.runs.count_tries(run.failed_ids())
            status = ReportStatus.DRY_RUN if dry_run else ReportStatus.NOTHING_TO_PROMOTE
            cons.runs.close(run_id, status, base_report, tokens=run.tokens, started=started)
            return ConsolidationReport(
                **base_report, status=status,
                reason="no candidate raised its probes' score; the memories stay buffered",
                tokens_trained=run.tokens, seconds=run.seconds())
        return self._update_and_gate(run, base_report, version)

    # -- 1 to 3, per interaction ---------------------------------------------------------
    def _interaction(self, run: _Run, emit: Emit, interaction: Interaction, tries: int,
                     k: int) -> None:
        """Sample, train and reward the candidates of one interaction; keep the winner."""
        emit("probes", message=interaction.id)
        probes = self._probes(interaction)
        if not probes:
            run.results.append(InteractionResult(
                interaction_id=interaction.id, probes=0, score_before=None,
                candidates=(), chosen=None, outcome=InteractionOutcome.NO_PROBES))
            return
        qa = [(p.question, p.answer) for p in probes]
        emit("candidates")
        candidates = self.cons.writer.candidates(
            interaction, k=k, formats=self.cfg.formats, temperature=self.cfg.temperature,
            held_out=probes,
            # reproducible with the run's seed; a retry samples afresh
            seed=None if self.cfg.seed is None else self.cfg.seed + tries,
        )
        statements = [
            e.text for e in self.journal.self_edits(interaction_id=interaction.id)
            if e.format is SelfEditFormat.STATEMENT
        ]
        before = self.cons.inner.score(qa, run.start_state)
        scored, rows = self._reward_candidates(run, emit, candidates, statements, qa, before)
        best = max(
            (i for i, c in enumerate(scored) if c.reward is not None),
            key=lambda i: scored[i].reward or 0.0, default=None,
        )
        if best is not None and (scored[best].reward or 0.0) > 0.0:
            outcome = InteractionOutcome.CHOSEN
            run.winners.append(Winner(interaction, rows[best]["cand"], rows[best]["sequences"],
                                      probes, before))
        elif not candidates or best is None:
            outcome = InteractionOutcome.NO_CANDIDATES
        else:
            outcome = (InteractionOutcome.GIVEN_UP if tries + 1 >= self.cfg.max_tries
                       else InteractionOutcome.NOT_POSITIVE)
        chosen = best if outcome is InteractionOutcome.CHOSEN else None
        # every (prompt, candidate, directive, reward): the later policy step's data
        self.cons.runs.record_candidates(run.run_id, interaction, rows, before=before,
                                         chosen=chosen, policy=self.cons.writer.author)
        run.results.append(InteractionResult(
            interaction_id=interaction.id, probes=len(probes), score_before=before,
            candidates=tuple(scored), chosen=chosen, outcome=outcome))

    def _reward_candidates(
        self, run: _Run, emit: Emit, candidates: Sequence[Candidate], statements: list[str],
        qa: list[tuple[str, str]], before: float,
    ) -> tuple[list[CandidateResult], list[dict[str, Any]]]:
        """Each candidate trained from the start state and rewarded on the probes."""
        inner = self.cons.inner
        scored: list[CandidateResult] = []
        rows: list[dict[str, Any]] = []
        for j, cand in enumerate(candidates, 1):
            run.dropped.update(cand.dropped)
            if cand.directive is not None:
                run.fallbacks.update(cand.directive.fallbacks)
            sequences = inner.sequences(cand, statements)
            emit("train", candidate=j, candidates=len(candidates))
            res = inner.reward(cand, statements, qa, start=run.start_state, before=before)
            run.tokens += res.tokens
            emit("score", candidate=j, candidates=len(candidates), reward=res.reward)
            scored.append(CandidateResult(
                format=cand.format.value, items=len(cand.items),
                directive=cand.directive.as_dict() if cand.directive else None,
                score_after=res.after, reward=res.reward, tokens=res.tokens,
                seconds=res.seconds))
            rows.append({"cand": cand, "sequences": sequences, "after": res.after,
                         "reward": res.reward})
        return scored, rows

    def _base_report(self, run: _Run, version: Any, warnings: Sequence[str]) -> dict[str, Any]:
        """The report's fields every ending shares."""
        counts = Counter(r.outcome for r in run.results)
        return {
            "run_id": run.run_id, "namespace": run.ns, "interactions": tuple(run.results),
            "candidates_tried": sum(len(r.candidates) for r in run.results),
            "chosen": counts[InteractionOutcome.CHOSEN],
            "not_positive": counts[InteractionOutcome.NOT_POSITIVE],
            "given_up": counts[InteractionOutcome.GIVEN_UP],
            "skipped_no_probes": counts[InteractionOutcome.NO_PROBES],
            "directive_fallbacks": dict(run.fallbacks), "lines_dropped": dict(run.dropped),
            "retention_before": run.retention_before, "retention_probes": len(run.retention),
            "parent_version": version.version if version else None,
            "scorer": self.cons.scorer.name, "warnings": tuple(warnings),
        }

    # -- 4. update, 5. gate ------------------------------------------------------------
    def _update_and_gate(self, run: _Run, base_report: dict[str, Any],
                         version: Any) -> ConsolidationReport:
        """Train the next adapter on the winners from the current state; gate it."""
        cons, cfg, winners = self.cons, self.cfg, run.winners
        trainer = cons.trainer
        emit = self._emitter(run.total, run.total)
        emit("update", message=f"{len(winners)} winners")
        trainer.reset(run.start_state)
        sequences = [s for w in winners for s in w.sequences] + self._replay(run.ns)
        stats = trainer.train(sequences, cons.inner.settings(update=True))
        run.tokens += stats.tokens
        new_qa = [(p.question, p.answer) for w in winners for p in w.probes]
        recall_after = mean(cons.scorer.score(trainer.model, new_qa))
        recall_before = mean([w.before for w in winners for _ in w.probes])  # per-probe weight
        retention_before = run.retention_before
        retention_after = (mean(cons.scorer.score(trainer.model, run.retention))
                           if run.retention else None)
        emit("gate")
        gain = recall_after - recall_before
        drop = (retention_before - retention_after
                if retention_after is not None and retention_before is not None else 0.0)
        metrics = {
            **{k: v for k, v in base_report.items() if k in (
                "candidates_tried", "chosen", "not_positive", "given_up", "skipped_no_probes",
                "directive_fallbacks", "lines_dropped", "retention_probes", "scorer")},
            "recall_before": recall_before, "recall_after": recall_after,
            "retention_before": retention_before, "retention_after": retention_after,
            "tokens_trained": run.tokens,
        }
        report = {**base_report, "recall_before": recall_before, "recall_after": recall_after,
                  "retention_after": retention_after}
        if gain <= cfg.min_recall_gain or drop > cfg.max_retention_drop:
            reason = (
                f"recall gain {gain:+.3f} does not clear {cfg.min_recall_gain:+.3f}"
                if gain <= cfg.min_recall_gain
                else f"retention fell by {drop:.3f} (tolerance {cfg.max_retention_drop:.3f})"
            )
            if not run.dry_run:
                cons.runs.count_tries(run.failed_ids() + [w.interaction.id for w in winners])
            status = ReportStatus.DRY_RUN if run.dry_run else ReportStatus.GATE_REJECTED
            cons.runs.close(run.run_id, status, metrics, tokens=run.tokens, started=run.started)
            return ConsolidationReport(**report, status=status, reason=reason,
                                       tokens_trained=run.tokens, seconds=run.seconds())
        if run.dry_run:
            cons.runs.close(run.run_id, ReportStatus.DRY_RUN, metrics, tokens=run.tokens,
                            started=run.started)
            return ConsolidationReport(**report, status=ReportStatus.DRY_RUN,
                                       reason="the gate would promote this adapter (dry run)",
                                       tokens_trained=run.tokens, seconds=run.seconds())
        return self._promote(run, report, metrics, version)

    # -- 6. promotion: files first, then one transaction ----------------------------------
    def _promote(self, run: _Run, report: dict[str, Any], metrics: dict[str, Any],
                 version: Any) -> ConsolidationReport:
        cons, ns, winners = self.cons, run.ns, run.winners
        emit = self._emitter(run.total, run.total)
        emit("promote")
        metrics["seconds"] = run.seconds()
        staged = cons.store.stage(
            ns.user_id, ns.agent_id, "memory", cons.trainer.save,
            config=cons.config.public_dict(), metrics=metrics, run_id=run.run_id,
            parent_id=version.id if version else None,
        )
        emit("staged", message=staged.name)
        moved = self._consolidated_ids([w.interaction.id for w in winners])
        new_edits = self._winner_edits(winners)
        failed_ids = run.failed_ids()

        def commit(conn: Any) -> None:
            self.journal.set_status(moved, MemoryStatus.CONSOLIDATED, conn)
            self.journal.add_self_edits(new_edits, conn, indexed=True)
            cons.runs.count_tries(failed_ids, conn)

        promoted = cons.runs.promote(staged, run.run_id, metrics, also=commit)
        if cons.buffer is not None:
            # The journal is already right; a crash here leaves only status drift,
            # which SealAgent.reconcile() repairs.
            cons.buffer.set_status(moved, MemoryStatus.CONSOLIDATED)
        emit("done", message=f"v{promoted.version}")
        before, after = report["recall_before"], report["recall_after"]
        kept_before, kept_after = report["retention_before"], report["retention_after"]
        return ConsolidationReport(
            **report, status=ReportStatus.PROMOTED,
            reason=f"recall {before:.3f} -> {after:.3f}" + (
                f", retention {kept_before:.3f} -> {kept_after:.3f}"
                if kept_before is not None and kept_after is not None else ""),
            version=promoted.version, version_id=promoted.id,
            tokens_trained=run.tokens, seconds=run.seconds())

    # -- pieces ----------------------------------------------------------------------
    def _probes(self, interaction: Interaction) -> list[Probe]:
        probes = self.journal.probes(interaction_id=interaction.id)
        if probes:
            return probes
        # Interactions derived without probes: write them now (kept for later runs).
        written = self.cons.writer.probes_for(interaction)
        if written:
            self.journal.add_probes(written)
        return written

    def _retention_probes(self, ns: Namespace) -> list[tuple[str, str]]:
        pairs = self.journal.consolidated_probe_pairs(ns.user_id, ns.agent_id)
        rng = random.Random(self.cfg.seed)
        return rng.sample(pairs, min(len(pairs), self.cfg.retention_probes))

    def _replay(self, ns: Namespace) -> list[str]:
        texts = [
            self.cons.inner.render(e.format, e.text)
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

    def _winner_edits(self, winners: Sequence[Winner]) -> list[SelfEdit]:
        """The winners' items as consolidated, unretrievable self-edits (the adapter holds them)."""
        edits = []
        created = datetime.now(UTC)
        for w in winners:
            fmt = (SelfEditFormat.IMPLICATION if w.cand.format is SelfEditFormat.DIRECTIVE
                   else w.cand.format)
            sample = new_id("smp")
            for item in w.cand.items:
                edits.append(SelfEdit(
                    id=new_id("mem"), interaction_id=w.interaction.id,
                    namespace=w.interaction.namespace, format=fmt, text=item,
                    status=MemoryStatus.CONSOLIDATED, author=self.cons.writer.author,
                    sample_id=sample, retrievable=False, created_at=created))
        return edits

    def _emitter(self, n: int, total: int) -> Emit:
        def emit(stage: str, **fields: Any) -> None:
            self.cons.progress(ProgressEvent(stage=stage, interaction=n, interactions=total,
                                             **fields))

        return emit
