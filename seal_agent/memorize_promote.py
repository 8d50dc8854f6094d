"""How a recall-mode run ends: promotion and the drain in one journal transaction, or a
closed run that changes nothing; and the run's report.

Step 6 of memorize.py. Promotion stages the adapter's files first, then one
journal transaction activates the version and records everything the new
weights change: the memories they say leave retrieval (the drain), earlier
ones they no longer say come back, superseded memories are retired, every
recall state is recorded. A crash before it commits leaves the previous
adapter active and the journal as it was; the buffer's copy of the statuses
follows after the commit (``reconcile`` repairs it if a crash intervened).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from seal_agent.facts_store import RecallRecord, RecallState
from seal_agent.innerloop import mean
from seal_agent.types import Interaction, MemoryStatus, Namespace

if TYPE_CHECKING:
    from seal_agent.consolidation import ConsolidationReport
    from seal_agent.memorize import BatchMemory, Memorizer
    from seal_agent.memorize_gate import GeneralCheck
    from seal_agent.memorize_train import Trained

__all__ = ["Outcome", "close_unpromoted", "now", "promote"]


@dataclass
class Outcome:
    """What a run found, for its report, its metrics and its recall records."""

    ns: Namespace
    run_id: str
    started: float
    warnings: list[str]
    uncheckable: list[str]
    superseded: list[str]
    parent: Any
    tokens: int = 0
    fields: dict[str, Any] = field(default_factory=dict)
    said_after: dict[str, list[bool]] = field(default_factory=dict)
    verified: set[str] = field(default_factory=set)
    new_ids: set[str] = field(default_factory=set)
    held: list[str] = field(default_factory=list)  # left out of the training: their answers leaked
    scale: float = 1.0  # the update's scale (Gate.soften): below 1 when general answers had fallen
    leaks: list[dict[str, str]] = field(default_factory=list)  # the gate state's, if any
    timings: dict[str, float] = field(default_factory=dict)

    def fill(self, memories: Sequence[BatchMemory], new: Sequence[BatchMemory],
             before: dict[str, list[bool]], final: Trained, verified: set[str],
             choice: dict[str, int], trained: Sequence[Trained], general: GeneralCheck,
             on_before: dict[str, list[bool]] | None, on_after: dict[str, list[bool]] | None,
             *, drain: set[str] | None = None, lost: Sequence[str] = ()) -> None:
        """Take in what the gate measured on the final state."""
        self.said_after = final.said
        self.verified = verified
        drain = verified if drain is None else drain
        self.new_ids = {m.id for m in new}
        if all(final is not t for t in trained):
            self.tokens += final.tokens
        new_checks = [x for m in new for x in final.said[m.id]]
        old = [m for m in memories if not m.new]
        self.fields = {
            "memories_new": len(new),
            "memories_earlier": len(old),
            "check_questions": sum(len(final.said[m.id]) for m in memories),
            "weights_said_before": sum(sum(before[m.id]) for m in memories),
            "weights_said_after": sum(sum(final.said[m.id]) for m in memories),
            "new_said_share": mean([float(x) for x in new_checks]),
            "verified_new": sum(m.id in verified for m in new),
            "verified_earlier": sum(m.id in verified for m in old),
            "drained_new": sum(m.id in drain for m in new),
            # said from the weights, yet kept retrievable: memory on, the rest pulled the answer away
            "kept_retrievable": sorted(verified - drain),
            "returned_to_retrieval": sum(m.id not in drain for m in old),
            "epochs": final.epochs,
            "update_scale": self.scale,
            "candidate_wins": dict(Counter(str(j) for j in choice.values())),
            "general_base": general.base_right,  # of general_questions, right by the base
            "general_after": general.new_right,  # of those, still right with the new weights
            "general_questions": general.questions,
            "general_lost": list(general.lost),
            "leaked": general.leaked,
            "leaked_answers": list(self.leaks),  # each: the key, the general question, the answer
            "held_leaking": list(self.held),  # trained without: their answers had leaked
            "memory_on_before": None if on_before is None else sum(map(sum, on_before.values())),
            "memory_on_after": None if on_after is None else sum(map(sum, on_after.values())),
            "memory_on_questions": None if on_after is None else sum(map(len, on_after.values())),
            "memories_lost": sorted(lost),
        }

    def records(self, version_id: str | None, *, new_only: bool) -> list[RecallRecord]:
        """The recall state of each memory measured (and each superseded one)."""
        stamp = now()
        out = []
        for iid, flags in self.said_after.items():
            if new_only and iid not in self.new_ids:
                continue
            state = RecallState.SAID if iid in self.verified else RecallState.NOT_SAID
            out.append(RecallRecord(iid, state, len(flags), sum(flags), version_id, stamp))
        out += [RecallRecord(i, RecallState.SUPERSEDED, 0, 0, version_id, stamp)
                for i in self.superseded]
        return out

    def metrics(self) -> dict[str, Any]:
        return {**self.fields, "stage_seconds": dict(self.timings), "uncheckable": len(self.uncheckable),
                "superseded": len(self.superseded), "tokens_trained": self.tokens,
                "seconds": round(time.perf_counter() - self.started, 2), "scorer": "recall"}

    def report_fields(self) -> dict[str, Any]:
        f = self.fields
        n_new = f.get("memories_new", 0)
        return {
            "run_id": self.run_id, "namespace": self.ns, "scorer": "recall",
            "chosen": f.get("verified_new", 0),
            "recall_before": None if not f else f["weights_said_before"] / max(1, f["check_questions"]),
            "recall_after": None if not f else f["weights_said_after"] / max(1, f["check_questions"]),
            "parent_version": self.parent.version if self.parent else None,
            "tokens_trained": self.tokens,
            "seconds": round(time.perf_counter() - self.started, 2),
            "warnings": tuple(self.warnings),
            "recall": {**self.metrics(), "memories_new": n_new},
        }

    def summary(self) -> str:
        f = self.fields
        return (f"said from the weights {f['weights_said_before']} -> {f['weights_said_after']} "
                f"of {f['check_questions']} check questions; {f['verified_new']}/"
                f"{f['memories_new']} new memories verified, {f['drained_new']} drained; general answers "
                f"kept {f['general_after']}/{f['general_base']}"
                + (f"; update scaled x{self.scale} to keep them" if self.scale < 1 else ""))


def promote(mem: Memorizer, o: Outcome, memories: Sequence[BatchMemory],
            new: Sequence[BatchMemory], drained: set[str], final: Trained) -> ConsolidationReport:
    """Stage the final state's files, then activate it and drain in one journal transaction."""
    from seal_agent.consolidation import ConsolidationReport

    cons, journal = mem.cons, mem.journal
    mem.emit("promote")
    cons.trainer.reset(final.state)
    metrics = o.metrics()
    staged = cons.store.stage(
        o.ns.user_id, o.ns.agent_id, "memory", cons.trainer.save,
        config=mem.config.public_dict(), metrics=metrics, run_id=o.run_id,
        parent_id=o.parent.id if o.parent else None)
    mem.emit("staged", message=staged.name)
    drain = [e.id for m in memories if m.id in drained
             for e in journal.self_edits(interaction_id=m.id, status=[MemoryStatus.BUFFERED])]
    back = [e.id for m in memories if not m.new and m.id not in drained
            for e in journal.self_edits(interaction_id=m.id, status=[MemoryStatus.CONSOLIDATED])]
    # in hybrid mode (drain = false) consolidated memories are still retrieved (agent._recall)
    drain_status = MemoryStatus.CONSOLIDATED
    retired = [e.id for iid in o.superseded
               for e in journal.self_edits(interaction_id=iid)
               if e.status is not MemoryStatus.REJECTED]
    records = o.records(staged.id, new_only=False)
    failed = [m.id for m in new if m.id not in drained]

    def commit(conn: Any) -> None:  # inside the promotion's one transaction
        journal.set_status(drain, drain_status, conn)
        journal.set_status(back, MemoryStatus.BUFFERED, conn)
        journal.set_status(retired, MemoryStatus.REJECTED, conn)
        for iid in o.superseded:
            mem.facts.retire(conn, iid)
        journal.add_consolidation_tries(failed, conn)
        mem.facts.record(conn, records, o.ns.user_id, o.ns.agent_id, o.run_id)

    promoted = cons.runs.promote(staged, o.run_id, metrics, also=commit)
    if cons.buffer is not None:  # the journal is right already; reconcile repairs a crash here
        cons.buffer.set_status(drain, drain_status)
        cons.buffer.set_status(back, MemoryStatus.BUFFERED)
        cons.buffer.set_status(retired, MemoryStatus.REJECTED)
    mem.emit("done", message=f"v{promoted.version}")
    return ConsolidationReport(
        **o.report_fields(), status="promoted", version=promoted.version,
        version_id=promoted.id, reason=o.summary())


def close_unpromoted(mem: Memorizer, o: Outcome, failed: Sequence[Interaction], reason: str,
                     dry_run: bool, *, status: str | None = None,
                     records: Sequence[RecallRecord] = ()) -> ConsolidationReport:
    """Close a run that promotes nothing: its tries counted, its recall records kept."""
    from seal_agent.consolidation import ConsolidationReport

    cons = mem.cons
    status = status or ("dry_run" if dry_run else "nothing_to_promote")
    if not dry_run:
        if records:
            mem.facts.record_now(records, o.ns.user_id, o.ns.agent_id, o.run_id)
        cons.runs.count_tries([i.id for i in failed])
    cons.runs.close(o.run_id, status, {**o.metrics(), "reason": reason}, tokens=o.tokens,
                    started=o.started)
    return ConsolidationReport(**o.report_fields(), status=status, reason=reason)


def now() -> str:
    """The time a recall record is stamped with."""
    return datetime.now(UTC).isoformat(timespec="microseconds")
