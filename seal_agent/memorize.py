"""Consolidation by behaviour: a memory leaves retrieval only once the weights say it.

The default consolidation mode (``consolidation.mode = "recall"``). For one
(user, agent) namespace:

1. probes: per buffered memory (one interaction), question/answer pairs to
   train on and check questions held apart (facts.py), written once and kept
   in the journal. A memory with no answer that can be checked is marked
   ``uncheckable`` and stays buffered, never trained.
2. candidates: k training sets per memory. Candidate 0 is its pairs plus the
   user's statement; the others add one SEAL self-edit (directive,
   implications, rewrite ... as ``consolidation.formats``) sampled by the
   self-edit policy and gated against the user's words.
3. inner loop, one adapter per candidate index: trained *from the base* on
   every memory the namespace keeps in its weights (earlier ones too, so a
   new batch cannot wear them away, and a forgotten memory is simply left
   out) plus replay of the base model's own answers, until the train
   questions are said back (or a cap). A memory's reward is its check
   questions said after minus before; the keys' log-likelihood breaks ties.
4. update: each memory's winning candidate; trained again only if the
   winners came from different candidates.
5. gate: general questions answered at least ``min_general_share`` as well
   as by the base, with no user answer in them; memory-on answers (the
   adapter plus what stays retrievable) no fewer than before.
6. promotion, in one journal transaction with the adapter version: memories
   whose check questions are all said are drained; earlier memories the new
   weights no longer say go back to retrieval; every state is recorded.

After any run every memory is either said from the weights or retrievable.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from seal_agent.fact_check import FactPair
from seal_agent.facts import build_probes, question_key, said
from seal_agent.facts_store import FactStore, RecallRecord, RecallState, StoredFact
from seal_agent.memorize_answers import Answerer
from seal_agent.memorize_gate import Gate, drained_by, gate_refusal, lost_memories
from seal_agent.memorize_promote import Outcome, close_unpromoted, now, promote
from seal_agent.memorize_train import Training
from seal_agent.models.base import GenerationParams
from seal_agent.prompts import FACT_QA_PROMPT
from seal_agent.text import drop_questions
from seal_agent.types import Interaction, Namespace

if TYPE_CHECKING:
    from seal_agent.config import ConsolidationConfig
    from seal_agent.consolidation import ConsolidationReport, Consolidator

__all__ = ["BatchMemory", "Memorizer", "write_fact_probes"]

_WRITE = GenerationParams(max_new_tokens=120, stop=("\n\nStatement:", "\nStatement:"),
                          stop_on_repeated_line=True)


@dataclass
class BatchMemory:
    """One memory (interaction) of a run, with its stored probes."""

    interaction: Interaction
    stored: StoredFact
    new: bool  # buffered now, in this run's batch
    extra: list[list[str]] = field(default_factory=list)  # per candidate: self-edit lines

    @property
    def id(self) -> str:
        return self.interaction.id

    @property
    def statement(self) -> str:
        return drop_questions(self.interaction.user_text)


def write_fact_probes(
    lm: Any, store: FactStore, interactions: Sequence[Interaction], cfg: ConsolidationConfig,
) -> tuple[dict[str, StoredFact], list[str]]:
    """Write and keep the train pairs and check questions of each interaction.

    The model writes pairs too (one batched, greedy completion) when
    ``cfg.model_pairs``; what it writes is checked against the user's words
    (facts.py) before it joins the relation templates. An interaction with no
    checkable answer is recorded ``uncheckable``: it stays buffered and is
    never trained. Called at derivation (background) and, for anything
    derived before, by consolidation.
    """
    if not interactions:
        return {}, []
    written: list[str] = []
    sources = [drop_questions(i.user_text) for i in interactions]
    if cfg.model_pairs:
        prompts = [FACT_QA_PROMPT.format(source=" ".join(s.split())) for s in sources if s]
        outputs = iter(lm.complete(prompts, _WRITE)) if prompts else iter(())
        written = [("What" + next(outputs)) if s else "" for s in sources]
    out: dict[str, StoredFact] = {}
    uncheckable: list[str] = []
    for n, interaction in enumerate(interactions):
        facts, _dropped = build_probes(sources[n], written[n] if written else "",
                                       n_train=cfg.train_questions, n_check=cfg.check_questions)
        facts = [f for f in facts if f.checkable]
        ns = interaction.namespace
        if not facts:
            uncheckable.append(interaction.id)
            store.record_now([RecallRecord(interaction.id, RecallState.UNCHECKABLE, 0, 0, None, now())],
                             ns.user_id, ns.agent_id, None)
            continue
        store.save(interaction.id, ns.user_id, ns.agent_id, facts)
        out[interaction.id] = StoredFact(interaction.id, tuple(facts))
    return out, uncheckable


class Memorizer:
    """Runs consolidation by behaviour on a :class:`Consolidator`'s parts.

    The steps live beside it: asking (memorize_answers.py), training and
    checking (memorize_train.py), the gate (memorize_gate.py) and the ending
    (memorize_promote.py); this class chooses the batch and runs them in order.
    """

    def __init__(self, cons: Consolidator) -> None:
        self.cons = cons
        self.cfg = cons.cfg
        self.config = cons.config
        self.journal = cons.journal
        self.facts = FactStore(cons.journal)
        self.answerer = Answerer(cons)
        self.training = Training(self)
        self.gate = Gate(self)
        self.timings: dict[str, float] = {}  # seconds per stage of the current run
        self._stage: str | None = None
        self._t = 0.0

    def said_from_weights(self, pairs: Sequence[FactPair]) -> list[bool]:
        """Whether the current state says each pair's key, nothing in context."""
        got = self.answerer.answers([self.answerer.prompt(p.question) for p in pairs])
        return [said(a, p.key) for a, p in zip(got, pairs, strict=True)]

    def said_by_memory(self, memories: Sequence[BatchMemory], train: Sequence[FactPair] = ()
                       ) -> tuple[dict[str, list[bool]], list[bool]]:
        """Per memory, whether the current state says each check question; and each of
        ``train``. Asked in one batch: decoding costs per step, nearly whatever the
        batch size, so twenty calls of two questions took 94 s where one took 5."""
        checks = [p for m in memories for p in m.stored.check]
        flags = self.said_from_weights([*checks, *train])
        out: dict[str, list[bool]] = {}
        i = 0
        for m in memories:
            out[m.id] = flags[i : i + len(m.stored.check)]
            i += len(m.stored.check)
        return out, flags[i:]

    # -- the run ------------------------------------------------------------------------
    def run(self, ns: Namespace, k: int, max_interactions: int | None,
            dry_run: bool) -> ConsolidationReport:
        from seal_agent.consolidation import ConsolidationReport

        started = time.perf_counter()
        self.timings, self._stage = {}, None
        cons = self.cons
        todo = self._todo(ns, max_interactions)
        if not todo:
            return ConsolidationReport(
                run_id=None, namespace=ns, status="empty", scorer="recall",
                reason="the buffer holds nothing to consolidate for this namespace")
        run_id = cons.runs.open(ns, {
            "config": self.config.public_dict(), "pid": os.getpid(), "dry_run": dry_run,
            "mode": "recall"})
        self.emit("probes", message=f"{len(todo)} memories")
        new, uncheckable = self._probes(todo)
        earlier = self._earlier(ns, {m.id for m in new})
        superseded = _superseded(new, earlier)
        memories = [m for m in earlier if m.id not in superseded] + new
        version, warnings = cons.store.loadable(ns.user_id, ns.agent_id)
        trainer = cons.trainer
        start_state = trainer.load(version.path) if version is not None else None
        outcome = Outcome(ns=ns, run_id=run_id, started=started, warnings=list(warnings),
                          uncheckable=uncheckable, superseded=sorted(superseded),
                          parent=version, timings=self.timings)
        if not new:
            return close_unpromoted(self, outcome, todo, "no memory with a checkable answer",
                                    dry_run)
        trainer.reset(start_state)
        return self._train_and_gate(outcome, memories, new, k, dry_run)

    def _train_and_gate(self, o: Outcome, memories: Sequence[BatchMemory],
                        new: Sequence[BatchMemory], k: int, dry_run: bool) -> ConsolidationReport:
        """Steps 2 to 6 on a batch with something to train, from the namespace's current state."""
        self.emit("before", message="weights and memory-on answers before training")
        before, _ = self.said_by_memory(memories)
        on_before = self.gate.memory_on(o.ns, memories, drained=None)
        self.training.candidates(new, k)
        trained = [self.training.candidate(memories, j) for j in range(k)]
        o.tokens += sum(t.tokens for t in trained)
        choice = self.training.choose(new, before, trained)
        first = self.training.final(memories, choice, trained)
        final, o.held = self.gate.hold_leaks(memories, choice, first)
        if final is not first and all(first is not t for t in trained):
            o.tokens += first.tokens  # the winners' training, replaced by the one without leaks
        unsoftened = final
        final, o.scale = self.gate.soften(memories, final)
        if final is not unsoftened and all(unsoftened is not t for t in trained):
            o.tokens += unsoftened.tokens  # a retrained state, now scaled (scaling trains nothing)
        self.emit("gate")
        verified = drained_by(final.said, self.cfg.verify_share)
        general = self.gate.general(memories, final.state)
        o.leaks = list(general.leaks)
        self.cons.trainer.reset(final.state)
        drain, on_after = self.gate.drain_set(o.ns, memories, verified)
        lost = lost_memories(on_before, on_after, final.said)
        o.fill(memories, new, before, final, verified, choice, trained, general, on_before,
               on_after, drain=drain, lost=lost)
        reason = gate_refusal(self.cfg, verified, general, on_before, on_after, lost)
        if reason is not None:
            status = "dry_run" if dry_run else (
                "nothing_to_promote" if not verified else "gate_rejected")
            return close_unpromoted(self, o, [m.interaction for m in new], reason, dry_run,
                                    status=status, records=o.records(None, new_only=True))
        if dry_run:
            return close_unpromoted(self, o, [], "the gate would promote this adapter (dry run)",
                                    True)
        return promote(self, o, memories, new, drain, final)

    # -- 1. the batch -------------------------------------------------------------------
    def _todo(self, ns: Namespace, max_interactions: int | None) -> list[Interaction]:
        """The buffered interactions to consolidate, less those known to be uncheckable."""
        todo = [i for i, _ in self.cons.buffered_interactions(
            ns, max_interactions or self.cfg.max_interactions)]
        checked = self.facts.state_of(i.id for i in todo)
        return [i for i in todo if i.id not in checked
                or checked[i.id].state is not RecallState.UNCHECKABLE]

    def _probes(self, todo: Sequence[Interaction]) -> tuple[list[BatchMemory], list[str]]:
        """Load each memory's probes (derivation wrote most); write the missing; mark the uncheckable."""
        stored = self.facts.load(i.id for i in todo)
        missing = [i for i in todo if i.id not in stored]
        written, uncheckable = write_fact_probes(self.cons.policy, self.facts, missing, self.cfg)
        stored.update(written)
        new = [BatchMemory(i, stored[i.id], new=True) for i in todo if i.id in stored]
        return new, uncheckable

    def _earlier(self, ns: Namespace, exclude: set[str]) -> list[BatchMemory]:
        """Memories already trained into this namespace's weights (said or not)."""
        states = self.facts.states(ns.user_id, ns.agent_id)
        ids = [i for i, r in states.items()
               if r.state in (RecallState.SAID, RecallState.NOT_SAID, RecallState.MISSED)
               and i not in exclude]
        stored = self.facts.load(ids)
        out = []
        for iid in ids:
            if iid in stored:
                try:
                    out.append(BatchMemory(self.journal.get_interaction(iid), stored[iid], new=False))
                except Exception:  # forgotten since: its rows went with it
                    continue
        out.sort(key=lambda m: m.interaction.created_at)
        return out

    def emit(self, stage: str, **fields: Any) -> None:
        """Say what the run does now; the time since the last stage is charged to that stage."""
        from seal_agent.consolidation import ProgressEvent

        stamp = time.perf_counter()
        if self._stage is not None:
            self.timings[self._stage] = round(self.timings.get(self._stage, 0.0) + stamp - self._t, 2)
        self._stage, self._t = stage, stamp
        self.cons.progress(ProgressEvent(stage=stage, **fields))


def _superseded(new: Sequence[BatchMemory], earlier: Sequence[BatchMemory]) -> set[str]:
    """Older memories that a newer one answers differently, asked the same question.

    "I live in Oslo" then "I moved to Bergen": both are asked "Where do I
    live?"; the newer key wins, the older memory's probes are retired.
    """
    out: set[str] = set()
    ordered = [*earlier, *new]
    for i, older in enumerate(ordered):
        questions = {question_key(p.question): normalize_key(p.key)
                     for p in [*older.stored.train, *older.stored.check]}
        for newer in ordered[i + 1 :]:
            for p in [*newer.stored.train, *newer.stored.check]:
                old_key = questions.get(question_key(p.question))
                if old_key is not None and old_key != normalize_key(p.key):
                    out.add(older.id)
    return out


def normalize_key(key: str) -> str:
    from seal_agent.text import normalize

    return normalize(key)
