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

import hashlib
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from seal_agent.fact_check import FactPair
from seal_agent.facts import build_probes, question_key, said
from seal_agent.facts_store import FactStore, RecallRecord, RecallState, StoredFact
from seal_agent.models.base import GenerationParams
from seal_agent.prompts import (
    FACT_QA_PROMPT,
    GENERAL_CHECKS,
    REPLAY_PROMPTS,
    memory_system_prompt,
)
from seal_agent.text import drop_questions
from seal_agent.types import Interaction, MemoryStatus, Message, Namespace

if TYPE_CHECKING:
    from seal_agent.config import ConsolidationConfig
    from seal_agent.consolidation import ConsolidationReport, Consolidator
    from seal_agent.training import TrainExample

__all__ = ["Memorizer", "drained_by", "lost_memories", "settle_drain", "write_fact_probes"]

_ANSWER = GenerationParams(max_new_tokens=32)  # greedy: the key comes early in a short answer
_WRITE = GenerationParams(max_new_tokens=120, stop=("\n\nStatement:", "\nStatement:"),
                          stop_on_repeated_line=True)


@dataclass
class _Memory:
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


@dataclass(eq=False)  # holds tensors: compared by identity
class _Trained:
    state: dict[str, Any]
    tokens: int
    epochs: int
    said: dict[str, list[bool]]  # memory id -> per check question


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
            store.record_now([RecallRecord(interaction.id, RecallState.UNCHECKABLE, 0, 0, None, _now())],
                             ns.user_id, ns.agent_id, None)
            continue
        store.save(interaction.id, ns.user_id, ns.agent_id, facts)
        out[interaction.id] = StoredFact(interaction.id, tuple(facts))
    return out, uncheckable


class Memorizer:
    """Runs consolidation by behaviour on a :class:`Consolidator`'s parts."""

    def __init__(self, cons: Consolidator) -> None:
        self.cons = cons
        self.cfg = cons.cfg
        self.config = cons.config
        self.journal = cons.journal
        self.facts = FactStore(cons.journal)
        self._replay: list[TrainExample] | None = None
        self._general_base: list[str] | None = None
        self.timings: dict[str, float] = {}  # seconds per stage of the current run
        self.general_lost: list[str] = []  # general questions the last checked state got wrong
        self.general_leaks: list[dict[str, str]] = []  # ...and the user answers it said there
        self._stage: str | None = None
        self._t = 0.0

    # -- the agent's chat format --------------------------------------------------------
    def prompt(self, question: str, memories: Sequence[str] = ()) -> str:
        agent = self.config.agent
        system = memory_system_prompt(agent.system_prompt, agent.memory_header,
                                      agent.memory_footer, memories)
        messages = [Message(role="system", content=system).model_dump(),
                    Message(role="user", content=question).model_dump()]
        return str(self.cons.base.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True))

    def answers(self, prompts: Sequence[str], batch: int = 32) -> list[str]:
        """Greedy answers of the trainer's current state to ready-made prompts.

        Prompts of like length share a batch, so little of it is padding:
        1.6x the answers per second of batches of 16 in the order asked, the
        same answers (benchmarks/answer_speed.py).
        """
        from seal_agent.models.transformers_lm import generate

        tok = self.cons.base.tokenizer
        model = self.cons.trainer.model
        ctx = int(getattr(model.config, "max_position_embeddings", 2048))
        order = sorted(range(len(prompts)), key=lambda i: len(tok(
            prompts[i], add_special_tokens=False)["input_ids"]))
        out: dict[int, str] = {}
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            out.update(zip(idx, generate(model, tok, [prompts[i] for i in idx], _ANSWER, ctx),
                           strict=True))
        return [out[i] for i in range(len(prompts))]

    def said_from_weights(self, pairs: Sequence[FactPair]) -> list[bool]:
        """Whether the current state says each pair's key, nothing in context."""
        got = self.answers([self.prompt(p.question) for p in pairs])
        return [said(a, p.key) for a, p in zip(got, pairs, strict=True)]

    # -- the run ------------------------------------------------------------------------
    def run(self, ns: Namespace, k: int, max_interactions: int | None,
            dry_run: bool) -> ConsolidationReport:
        from seal_agent.consolidation import ConsolidationReport

        started = time.perf_counter()
        self.timings, self._stage = {}, None
        cons = self.cons
        todo = [i for i, _ in cons.buffered_interactions(ns, max_interactions or self.cfg.max_interactions)]
        checked = self.facts.state_of(i.id for i in todo)
        todo = [i for i in todo if i.id not in checked
                or checked[i.id].state is not RecallState.UNCHECKABLE]
        if not todo:
            return ConsolidationReport(
                run_id=None, namespace=ns, status="empty", scorer="recall",
                reason="the buffer holds nothing to consolidate for this namespace")
        run_id = cons.runs.open(ns, {
            "config": self.config.public_dict(), "pid": os.getpid(), "dry_run": dry_run,
            "mode": "recall"})
        emit = self._emit
        emit("probes", message=f"{len(todo)} memories")
        new, uncheckable = self._probes(ns, todo)
        earlier = self._earlier(ns, {m.id for m in new})
        superseded = _superseded(new, earlier)
        earlier = [m for m in earlier if m.id not in superseded]
        memories = earlier + new
        version, warnings = cons.store.loadable(ns.user_id, ns.agent_id)
        trainer = cons.trainer
        start_state = trainer.load(version.path) if version is not None else None
        outcome = _Outcome(ns=ns, run_id=run_id, started=started, warnings=list(warnings),
                           uncheckable=uncheckable, superseded=sorted(superseded),
                           parent=version, timings=self.timings)
        if not new:
            return self._finish_nothing(outcome, todo, "no memory with a checkable answer",
                                        dry_run)
        trainer.reset(start_state)
        emit("before", message="weights and memory-on answers before training")
        before = {m.id: self.said_from_weights(m.stored.check) for m in memories}
        on_before = self._memory_on(ns, memories, drained=None)
        self._candidates(new, k)
        trained = [self._train_candidate(memories, j) for j in range(k)]
        outcome.tokens += sum(t.tokens for t in trained)
        choice = self._choose(new, before, trained)
        final = self._final(memories, choice, trained)
        first = final
        final, outcome.held = self._hold_leaks(memories, choice, final)
        if final is not first and all(first is not t for t in trained):
            outcome.tokens += first.tokens  # the winners' training, replaced by the one without leaks
        return self._gate_and_promote(outcome, memories, new, before, on_before, final, choice,
                                      trained, dry_run)

    # -- 1. probes ----------------------------------------------------------------------
    def _probes(self, ns: Namespace, todo: Sequence[Interaction]) -> tuple[list[_Memory], list[str]]:
        """Load each memory's probes (derivation wrote most); write the missing; mark the uncheckable."""
        stored = self.facts.load(i.id for i in todo)
        missing = [i for i in todo if i.id not in stored]
        written, uncheckable = write_fact_probes(self.cons.policy, self.facts, missing, self.cfg)
        stored.update(written)
        new = [_Memory(i, stored[i.id], new=True) for i in todo if i.id in stored]
        return new, uncheckable

    def _earlier(self, ns: Namespace, exclude: set[str]) -> list[_Memory]:
        """Memories already trained into this namespace's weights (said or not)."""
        states = self.facts.states(ns.user_id, ns.agent_id)
        ids = [i for i, r in states.items()
               if r.state in (RecallState.SAID, RecallState.NOT_SAID) and i not in exclude]
        stored = self.facts.load(ids)
        out = []
        for iid in ids:
            if iid in stored:
                try:
                    out.append(_Memory(self.journal.get_interaction(iid), stored[iid], new=False))
                except Exception:  # forgotten since: its rows went with it
                    continue
        out.sort(key=lambda m: m.interaction.created_at)
        return out

    # -- 2. candidates ------------------------------------------------------------------
    def _candidates(self, new: Sequence[_Memory], k: int) -> None:
        """Candidate 0: pairs and statement. 1..k-1: plus a sampled, gated SEAL self-edit."""
        for m in new:
            m.extra = [[]]
            if k > 1:
                self._emit("candidates", message=m.id)
                cands = self.cons.writer.candidates(
                    m.interaction, k=k - 1, formats=self.cfg.formats,
                    temperature=self.cfg.temperature)
                for c in cands:
                    m.extra.append([self.cons.inner.render(c.format, x) for x in c.items])
            while len(m.extra) < k:
                m.extra.append([])

    # -- 3. inner loop ------------------------------------------------------------------
    def _examples(self, memories: Sequence[_Memory], pick: Callable[[_Memory], int]) -> list[Any]:
        from seal_agent.training import TrainExample

        out: list[Any] = []
        for m in memories:
            out.append(m.statement)
            out += [TrainExample(prompt=self.prompt(p.question), completion=p.answer)
                    for p in m.stored.train]
            if m.new and m.extra:
                out += m.extra[pick(m)]
        return out

    def _epochs(self, examples: Sequence[Any], epochs: int, first: int) -> tuple[list[Any], int]:
        """The data of ``epochs`` epochs and how many passes to train on it: the
        memories' examples, each time with the next slice of replay (one pass), or,
        when the whole pool fits in every epoch, one epoch's data (``epochs`` passes).

        Replay per epoch is ``replay_ratio`` times the memories' examples (at
        least ``replay_min``, at most the pool), taken round the pool from
        epoch ``first`` on: a batch of one memory trains on a few replay
        answers per epoch, not on all of them, yet sees the whole pool over a run.
        """
        pool = self.replay()
        per = min(len(pool), max(self.cfg.replay_min, round(self.cfg.replay_ratio * len(examples))))
        if per >= len(pool):  # the whole pool every epoch
            return list(examples) + pool, epochs
        out: list[Any] = []
        for e in range(first, first + epochs):
            start = (e * per) % len(pool)
            out += list(examples) + [pool[(start + i) % len(pool)] for i in range(per)]
        return out, 1

    def replay(self) -> list[TrainExample]:
        """The base model's own greedy answers to general prompts, as chat turns to train on."""
        from seal_agent.training import TrainExample

        if self._replay is None:
            prompts = [self.prompt(q) for q in REPLAY_PROMPTS[: self.cfg.replay_general]]
            answers = self.base_answers(prompts)
            distill = self.cfg.replay_distill and self.cons.trainer.can_distill
            self._replay = [TrainExample(prompt=p, completion=a.strip(), distill=distill)
                            for p, a in zip(prompts, answers, strict=True) if a.strip()]
        return self._replay

    def base_answers(self, prompts: Sequence[str]) -> list[str]:
        """The bare base model's greedy answers, cached in the model cache folder.

        The same model, prompts and decoding give the same answers: computing
        them once per memory home saves each run ~10 s of decoding.
        """
        key = hashlib.sha256(json.dumps(
            [self.config.model.name, str(self.cons.base.source), _ANSWER.model_dump(), list(prompts)]
        ).encode()).hexdigest()[:16]
        path = self.config.model_cache_dir / f"base-answers-{key}.json"
        try:
            cached = json.loads(path.read_text())
            if isinstance(cached, list) and len(cached) == len(prompts):
                return [str(x) for x in cached]
        except (OSError, ValueError):
            pass
        self.cons.trainer.reset(None)
        answers = self.answers(prompts)
        try:  # a cache: written atomically, and a failure to write is no failure
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(answers))
            os.replace(tmp, path)
        except OSError:
            pass
        return answers

    def _train(self, examples: Sequence[Any], memories: Sequence[_Memory],
               measure: Sequence[_Memory] | None = None) -> _Trained:
        """From the base, until the train questions of ``memories`` are said back (or the
        epoch cap); then the check questions of ``measure`` (default: ``memories``)."""
        from seal_agent.training import TrainSettings

        cfg = self.cfg
        trainer = self.cons.trainer
        trainer.reset(None, seed=cfg.seed)
        train_pairs = [p for m in memories for p in m.stored.train]
        tokens = epochs = 0
        lr, chunk = cfg.recall_lr, cfg.recall_epochs
        while True:
            data, passes = self._epochs(examples, chunk, epochs)
            stats = trainer.train(data, TrainSettings(
                epochs=passes, lr=lr, batch_tokens=cfg.recall_batch_tokens, schedule="linear",
                seed=None if cfg.seed is None else cfg.seed + epochs))
            tokens += stats.tokens
            epochs += chunk
            share = _mean(self.said_from_weights(train_pairs))
            self._emit("train", message=f"{epochs} epochs: {share:.0%} of train questions said")
            if share >= cfg.criterion or epochs + cfg.extra_epochs > cfg.max_recall_epochs:
                break
            lr, chunk = lr / 2, cfg.extra_epochs
        said_now = {m.id: self.said_from_weights(m.stored.check) for m in (measure or memories)}
        return _Trained(trainer.state(), tokens, epochs, said_now)

    def _train_candidate(self, memories: Sequence[_Memory], j: int) -> _Trained:
        self._emit("score", candidate=j + 1, message="training candidate")
        return self._train(self._examples(memories, lambda m: j), memories)

    def _choose(self, new: Sequence[_Memory], before: dict[str, list[bool]],
                trained: Sequence[_Trained]) -> dict[str, int]:
        """Each new memory's best candidate: check questions gained, then key log-likelihood."""
        from seal_agent.reward import LoglikScorer

        if len(trained) == 1:
            return {m.id: 0 for m in new}
        scorer = LoglikScorer(self.cons.base.tokenizer, self.config.agent.system_prompt)
        loglik: list[dict[str, float]] = []
        for t in trained:
            self.cons.trainer.reset(t.state)
            loglik.append({m.id: _mean(scorer.score(self.cons.trainer.model,
                                                    [(p.question, p.key) for p in m.stored.check]))
                           for m in new})
        choice = {}
        for m in new:
            gains = [(_mean(t.said[m.id]) - _mean(before[m.id]), loglik[j][m.id])
                     for j, t in enumerate(trained)]
            choice[m.id] = max(range(len(trained)), key=lambda j: (gains[j], -j))
        return choice

    # -- 4. update ----------------------------------------------------------------------
    def _final(self, memories: Sequence[_Memory], choice: dict[str, int],
               trained: Sequence[_Trained]) -> _Trained:
        picks = set(choice.values())
        if len(picks) == 1:
            best = trained[picks.pop()]
            self.cons.trainer.reset(best.state)
            return best
        self._emit("update", message="training the winners together")
        final = self._train(self._examples(memories, lambda m: choice[m.id]), memories)
        self.cons.trainer.reset(final.state)
        return final

    def _hold_leaks(self, memories: Sequence[_Memory], choice: dict[str, int],
                    final: _Trained) -> tuple[_Trained, list[str]]:
        """Train once more without the memories whose answers leak into general answers.

        One number said to "How many legs does a dog have?" would otherwise
        make the gate refuse the whole batch. The memories holding a leaked
        answer are left out of the training (they stay retrievable, and are
        tried again in the next run); everything is still measured, and the
        gate decides on the new state, leaks included.
        """
        if not self.cfg.leak_retry:
            return final, []
        leaked = self._general(memories, final.state)[2]
        held = held_for_leaks(memories, leaked)
        if not held:
            return final, []
        keep = [m for m in memories if m.id not in held]
        self._emit("update", message=f"training again without {len(held)} memories whose answers "
                                      f"leaked into general answers ({', '.join(sorted(leaked))})")
        again = self._train(self._examples(keep, lambda m: choice.get(m.id, 0)), keep,
                            measure=memories)
        return again, held

    # -- 5. gate, 6. promotion ------------------------------------------------------------
    def general_base(self) -> list[str]:
        if self._general_base is None:
            self._general_base = self.base_answers([self.prompt(q) for q, _ in GENERAL_CHECKS])
        return self._general_base

    def _general(self, memories: Sequence[_Memory], state: dict[str, Any]) -> tuple[int, int, list[str]]:
        """General questions the base answers right, how many the new state still does,
        and any user key that entered an answer (not in the question, not in the base's)."""
        base = self.general_base()
        self.cons.trainer.reset(state)
        new = self.answers([self.prompt(q) for q, _ in GENERAL_CHECKS])
        keys = {p.key for m in memories for p in m.stored.check}
        leaks = [{"key": k, "question": q, "answer": a} for k in sorted(keys)
                 for (q, _), a, b in zip(GENERAL_CHECKS, new, base, strict=True)
                 if said(a, k) and not said(b, k) and not said(q, k)]
        self.general_leaks = leaks
        leaked = sorted({x["key"] for x in leaks})
        base_right = [said(b, gold) for b, (_, gold) in zip(base, GENERAL_CHECKS, strict=True)]
        lost = [q for r, a, (q, gold) in zip(base_right, new, GENERAL_CHECKS, strict=True)
                if r and not said(a, gold)]
        self.general_lost = lost
        return sum(base_right), sum(base_right) - len(lost), leaked

    def _memory_on(self, ns: Namespace, memories: Sequence[_Memory],
                   drained: set[str] | None) -> dict[str, list[bool]] | None:
        """Memory-on answers to every check question of each memory, with the current state.

        ``drained``: the memories that would leave retrieval (None: as the
        journal has it now). Every earlier memory that is not drained counts
        as retrievable, as promotion would make it.
        """
        buffer = self.cons.buffer
        if buffer is None:
            return None
        top_k = self.config.buffer.top_k
        statuses = (MemoryStatus.BUFFERED, MemoryStatus.CONSOLIDATED)
        truth_ids = {m.id for m in memories}
        prompts, keys, owners = [], [], []
        for m in memories:
            for probe in m.stored.check:
                hits = buffer.search(probe.question, ns, top_k=top_k * 3, statuses=statuses)
                live = self.journal.statuses([h.id for h in hits])
                keep = []
                for h in hits:
                    status = live.get(h.id)
                    if status is None:
                        continue
                    if drained is not None and h.interaction_id in truth_ids:
                        visible = h.interaction_id not in drained or not self.cfg.drain
                    else:
                        visible = status is MemoryStatus.BUFFERED or not self.cfg.drain
                    if visible:
                        keep.append(h.text)
                prompts.append(self.prompt(probe.question, keep[:top_k]))
                keys.append(probe.key)
                owners.append(m.id)
        out: dict[str, list[bool]] = {m.id: [] for m in memories}
        for owner, key, answer in zip(owners, keys, self.answers(prompts), strict=True):
            out[owner].append(said(answer, key))
        return out

    def _drain_set(self, ns: Namespace, memories: Sequence[_Memory], verified: set[str],
                   ) -> tuple[set[str], dict[str, list[bool]] | None]:
        """The memories that leave retrieval, and the memory-on answers once they have
        (:func:`settle_drain`, with the current state's memory-on answers)."""
        return settle_drain(verified, lambda drain: self._memory_on(ns, memories, drained=drain),
                            self.cfg.verify_share)

    def _gate_and_promote(self, o: _Outcome, memories: Sequence[_Memory], new: Sequence[_Memory],
                          before: dict[str, list[bool]], on_before: dict[str, list[bool]] | None,
                          final: _Trained, choice: dict[str, int], trained: Sequence[_Trained],
                          dry_run: bool) -> ConsolidationReport:
        cfg = self.cfg
        self._emit("gate")
        verified = drained_by(final.said, cfg.verify_share)
        base_right, new_right, leaked = self._general(memories, final.state)
        o.leaks = list(self.general_leaks)
        self.cons.trainer.reset(final.state)
        drain, on_after = self._drain_set(o.ns, memories, verified)
        lost = lost_memories(on_before, on_after, final.said)
        o.fill(memories, new, before, final, verified, choice, trained,
               (base_right, new_right, leaked), on_before, on_after, self.general_lost,
               drain=drain, lost=lost)
        reason = None
        n_before = None if on_before is None else sum(map(sum, on_before.values()))
        n_after = None if on_after is None else sum(map(sum, on_after.values()))
        if not verified:
            reason = "the new weights say none of the memories' check questions"
        elif new_right < math.floor(cfg.min_general_share * base_right):  # whole answers
            reason = (f"general answers kept {new_right} of the {base_right} the base "
                      f"model gets right (needs {cfg.min_general_share:.0%})")
        elif leaked:
            reason = f"user answers leaked into general answers: {', '.join(leaked)}"
        elif n_before is not None and n_after is not None and n_after < n_before:
            reason = f"memory-on answers would fall ({n_before} -> {n_after})"
        elif lost:
            reason = (f"{len(lost)} memories answered with memory on now would be said by "
                      f"nothing after: {', '.join(sorted(lost))}")
        if reason is not None:
            status = "dry_run" if dry_run else (
                "nothing_to_promote" if not verified else "gate_rejected")
            return self._finish_nothing(o, [m.interaction for m in new], reason, dry_run,
                                        status=status, records=o.records(None, new_only=True))
        if dry_run:
            return self._finish_nothing(o, [], "the gate would promote this adapter (dry run)",
                                        True)
        return self._promote(o, memories, new, drain, final)

    def _promote(self, o: _Outcome, memories: Sequence[_Memory], new: Sequence[_Memory],
                 drained: set[str], final: _Trained) -> ConsolidationReport:
        from seal_agent.consolidation import ConsolidationReport

        cons = self.cons
        self._emit("promote")
        self.cons.trainer.reset(final.state)
        metrics = o.metrics()
        staged = cons.store.stage(
            o.ns.user_id, o.ns.agent_id, "memory", cons.trainer.save,
            config=self.config.public_dict(), metrics=metrics, run_id=o.run_id,
            parent_id=o.parent.id if o.parent else None)
        self._emit("staged", message=staged.name)
        drain = [e.id for m in memories if m.id in drained
                 for e in self.journal.self_edits(interaction_id=m.id, status=[MemoryStatus.BUFFERED])]
        back = [e.id for m in memories if not m.new and m.id not in drained
                for e in self.journal.self_edits(interaction_id=m.id,
                                                 status=[MemoryStatus.CONSOLIDATED])]
        # in hybrid mode (drain = false) consolidated memories are still retrieved (agent._recall)
        drain_status = MemoryStatus.CONSOLIDATED
        retired = [e.id for iid in o.superseded
                   for e in self.journal.self_edits(interaction_id=iid)
                   if e.status is not MemoryStatus.REJECTED]
        records = o.records(staged.id, new_only=False)
        failed = [m.id for m in new if m.id not in drained]

        def commit(conn: Any) -> None:
            self.journal.set_status(drain, drain_status, conn)
            self.journal.set_status(back, MemoryStatus.BUFFERED, conn)
            self.journal.set_status(retired, MemoryStatus.REJECTED, conn)
            for iid in o.superseded:
                self.facts.retire(conn, iid)
            self.journal.add_consolidation_tries(failed, conn)
            self.facts.record(conn, records, o.ns.user_id, o.ns.agent_id, o.run_id)

        promoted = cons.runs.promote(staged, o.run_id, metrics, also=commit)
        if cons.buffer is not None:  # the journal is right already; reconcile repairs a crash here
            cons.buffer.set_status(drain, drain_status)
            cons.buffer.set_status(back, MemoryStatus.BUFFERED)
            cons.buffer.set_status(retired, MemoryStatus.REJECTED)
        self._emit("done", message=f"v{promoted.version}")
        return ConsolidationReport(
            **o.report_fields(), status="promoted", version=promoted.version,
            version_id=promoted.id, reason=o.summary())

    def _finish_nothing(self, o: _Outcome, failed: Sequence[Interaction], reason: str,
                        dry_run: bool, *, status: str | None = None,
                        records: Sequence[RecallRecord] = ()) -> ConsolidationReport:
        from seal_agent.consolidation import ConsolidationReport

        cons = self.cons
        status = status or ("dry_run" if dry_run else "nothing_to_promote")
        if not dry_run:
            if records:
                self.facts.record_now(records, o.ns.user_id, o.ns.agent_id, o.run_id)
            cons.runs.count_tries([i.id for i in failed])
        cons.runs.close(o.run_id, status, {**o.metrics(), "reason": reason}, tokens=o.tokens,
                        started=o.started)
        return ConsolidationReport(**o.report_fields(), status=status, reason=reason)

    def _emit(self, stage: str, **fields: Any) -> None:
        """Say what the run does now; the time since the last stage is charged to that stage."""
        from seal_agent.consolidation import ProgressEvent

        now = time.perf_counter()
        if self._stage is not None:
            self.timings[self._stage] = round(self.timings.get(self._stage, 0.0) + now - self._t, 2)
        self._stage, self._t = stage, now
        self.cons.progress(ProgressEvent(stage=stage, **fields))


def drained_by(said_now: dict[str, list[bool]], share: float) -> set[str]:
    """The drain rule: a memory leaves retrieval only when the weights say enough of its
    check questions (``share`` of them; 1.0: all). No check question, no drain."""
    return {m for m, flags in said_now.items() if flags and _mean(flags) >= share}


def settle_drain(verified: set[str],
                 memory_on: Callable[[set[str]], dict[str, list[bool]] | None],
                 share: float, rounds: int = 3) -> tuple[set[str], dict[str, list[bool]] | None]:
    """Which of the memories the weights say may leave retrieval, and the memory-on
    answers (per check question) once they have.

    Said from the weights is not enough: with a memory gone from retrieval,
    what stays retrievable can pull the adapter's answer elsewhere ("You live
    in Kalamazoo", the city the user grew up in). A verified memory leaves
    only when ``share`` of its check questions are also said with memory on
    after the drain; the rest stay retrievable. Keeping one back changes what
    the others retrieve, so this repeats until nothing changes (``rounds`` at
    most; what is kept back after the last round is never drained).
    """
    drain = set(verified)
    on_after = memory_on(drain)
    for _ in range(rounds):
        if on_after is None:
            return drain, None
        keep = {m for m in drain if drained_by({m: on_after.get(m, [])}, share)}
        if keep == drain:
            return drain, on_after
        drain = keep
        on_after = memory_on(drain)
    if on_after is not None:  # the last round's answers decide: never drain a memory they miss
        drain = {m for m in drain if drained_by({m: on_after.get(m, [])}, share)}
    return drain, on_after


def lost_memories(on_before: dict[str, list[bool]] | None, on_after: dict[str, list[bool]] | None,
                  weights: dict[str, list[bool]]) -> list[str]:
    """Memories answered with memory on before that nothing says after: neither the
    new weights alone nor memory on (the adapter and what stays retrievable)."""
    if on_before is None or on_after is None:
        return []
    return sorted(m for m, flags in on_before.items()
                  if any(flags) and not any(on_after.get(m, ())) and not any(weights.get(m, ())))


def held_for_leaks(memories: Sequence[_Memory], leaked: Sequence[str]) -> list[str]:
    """The memories to train without when their answers leaked into general answers:
    each memory that holds a leaked key. None (empty) when no memory holds one, or
    when no new memory would be left to train."""
    keys = set(leaked)
    held = sorted(m.id for m in memories if keys & {p.key for p in m.stored.check})
    if not held or not any(m.new and m.id not in held for m in memories):
        return []
    return held


def _superseded(new: Sequence[_Memory], earlier: Sequence[_Memory]) -> set[str]:
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


@dataclass
class _Outcome:
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
    leaks: list[dict[str, str]] = field(default_factory=list)  # the gate state's, if any

    def fill(self, memories: Sequence[_Memory], new: Sequence[_Memory],
             before: dict[str, list[bool]], final: _Trained, verified: set[str],
             choice: dict[str, int], trained: Sequence[_Trained],
             general: tuple[int, int, list[str]], on_before: dict[str, list[bool]] | None,
             on_after: dict[str, list[bool]] | None, general_lost: Sequence[str] = (), *,
             drain: set[str] | None = None, lost: Sequence[str] = ()) -> None:
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
            "new_said_share": _mean([float(x) for x in new_checks]),
            "verified_new": sum(m.id in verified for m in new),
            "verified_earlier": sum(m.id in verified for m in old),
            "drained_new": sum(m.id in drain for m in new),
            # said from the weights, yet kept retrievable: memory on, the rest pulled the answer away
            "kept_retrievable": sorted(verified - drain),
            "returned_to_retrieval": sum(m.id not in drain for m in old),
            "epochs": final.epochs,
            "candidate_wins": dict(Counter(str(j) for j in choice.values())),
            "general_base": general[0],  # of general_questions, right by the base
            "general_after": general[1],  # of those, still right with the new weights
            "general_questions": len(GENERAL_CHECKS),
            "general_lost": list(general_lost),
            "leaked": general[2],
            "leaked_answers": list(self.leaks),  # each: the key, the general question, the answer
            "held_leaking": list(self.held),  # trained without: their answers had leaked
            "memory_on_before": None if on_before is None else sum(map(sum, on_before.values())),
            "memory_on_after": None if on_after is None else sum(map(sum, on_after.values())),
            "memory_on_questions": None if on_after is None else sum(map(len, on_after.values())),
            "memories_lost": sorted(lost),
        }

    def records(self, version_id: str | None, *, new_only: bool) -> list[RecallRecord]:
        now = _now()
        out = []
        for iid, flags in self.said_after.items():
            if new_only and iid not in self.new_ids:
                continue
            state = RecallState.SAID if iid in self.verified else RecallState.NOT_SAID
            out.append(RecallRecord(iid, state, len(flags), sum(flags), version_id, now))
        out += [RecallRecord(i, RecallState.SUPERSEDED, 0, 0, version_id, now)
                for i in self.superseded]
        return out

    timings: dict[str, float] = field(default_factory=dict)

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
                f"kept {f['general_after']}/{f['general_base']}")


def _mean(values: Sequence[float | bool]) -> float:
    return sum(float(v) for v in values) / len(values) if values else 0.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")

