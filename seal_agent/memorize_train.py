"""Train and check: adapters trained from the base on a namespace's facts, and what each says.

Steps 2 to 4 of recall-mode consolidation (memorize.py): the k candidate
training sets of each new memory, one adapter per candidate index trained
*from the base* on every memory the namespace keeps in its weights plus
replay of the base model's own answers (until the train questions are said
back, or a cap), each adapter's greedy answers to the check questions, and
each memory's winning candidate (trained again together only if the winners
came from different candidates).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seal_agent.innerloop import mean
from seal_agent.prompts import REPLAY_PROMPTS

if TYPE_CHECKING:
    from seal_agent.memorize import BatchMemory, Memorizer
    from seal_agent.training import TrainExample

__all__ = ["Trained", "Training"]


@dataclass(eq=False)  # holds tensors: compared by identity
class Trained:
    """One trained adapter state and what it says from the weights."""

    state: dict[str, Any]
    tokens: int
    epochs: int
    said: dict[str, list[bool]]  # memory id -> per check question


class Training:
    """The train-and-check step of one :class:`~seal_agent.memorize.Memorizer`."""

    def __init__(self, mem: Memorizer) -> None:
        self.mem = mem
        self.cons = mem.cons
        self.cfg = mem.cfg
        self._replay: list[TrainExample] | None = None

    # -- 2. candidates ------------------------------------------------------------------
    def candidates(self, new: Sequence[BatchMemory], k: int) -> None:
        """Candidate 0: pairs and statement. 1..k-1: plus a sampled, gated SEAL self-edit."""
        for m in new:
            m.extra = [[]]
            if k > 1:
                self.mem.emit("candidates", message=m.id)
                cands = self.cons.writer.candidates(
                    m.interaction, k=k - 1, formats=self.cfg.formats,
                    temperature=self.cfg.temperature, seed=self.cfg.seed)
                for c in cands:
                    m.extra.append([self.cons.inner.render(c.format, x) for x in c.items])
            while len(m.extra) < k:
                m.extra.append([])

    # -- 3. inner loop ------------------------------------------------------------------
    def examples(self, memories: Sequence[BatchMemory],
                 pick: Callable[[BatchMemory], int]) -> list[Any]:
        """Each memory's statement and train pairs, and the new ones' picked self-edit lines."""
        from seal_agent.training import TrainExample

        prompt = self.mem.answerer.prompt
        out: list[Any] = []
        for m in memories:
            out.append(m.statement)
            out += [TrainExample(prompt=prompt(p.question), completion=p.answer)
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
            answerer = self.mem.answerer
            prompts = [answerer.prompt(q) for q in REPLAY_PROMPTS[: self.cfg.replay_general]]
            answers = answerer.base_answers(prompts)
            distill = self.cfg.replay_distill and self.cons.trainer.can_distill
            self._replay = [TrainExample(prompt=p, completion=a.strip(), distill=distill)
                            for p, a in zip(prompts, answers, strict=True) if a.strip()]
        return self._replay

    def train(self, examples: Sequence[Any], memories: Sequence[BatchMemory],
              measure: Sequence[BatchMemory] | None = None) -> Trained:
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
            # the check questions are asked with the train questions, in one batch: training
            # rarely goes on (the criterion is met), and then they are what it returns
            said_now, said_train = self.mem.said_by_memory(measure or memories, train_pairs)
            share = mean(said_train)
            self.mem.emit("train", message=f"{epochs} epochs: {share:.0%} of train questions said")
            if share >= cfg.criterion or epochs + cfg.extra_epochs > cfg.max_recall_epochs:
                break
            lr, chunk = lr / 2, cfg.extra_epochs
        return Trained(trainer.state(), tokens, epochs, said_now)

    def candidate(self, memories: Sequence[BatchMemory], j: int) -> Trained:
        """The adapter of candidate index ``j``: every new memory's ``j``-th training set."""
        self.mem.emit("score", candidate=j + 1, message="training candidate")
        return self.train(self.examples(memories, lambda m: j), memories)

    def choose(self, new: Sequence[BatchMemory], before: dict[str, list[bool]],
               trained: Sequence[Trained]) -> dict[str, int]:
        """Each new memory's best candidate: check questions gained, then key log-likelihood."""
        from seal_agent.reward import LoglikScorer

        if len(trained) == 1:
            return {m.id: 0 for m in new}
        scorer = LoglikScorer(self.cons.base.tokenizer, self.cons.config.agent.system_prompt)
        loglik: list[dict[str, float]] = []
        for t in trained:
            self.cons.trainer.reset(t.state)
            loglik.append({m.id: mean(scorer.score(self.cons.trainer.model,
                                                   [(p.question, p.key) for p in m.stored.check]))
                           for m in new})
        choice = {}
        for m in new:
            gains = [(mean(t.said[m.id]) - mean(before[m.id]), loglik[j][m.id])
                     for j, t in enumerate(trained)]
            choice[m.id] = max(range(len(trained)), key=lambda j: (gains[j], -j))
        return choice

    # -- 4. update ----------------------------------------------------------------------
    def final(self, memories: Sequence[BatchMemory], choice: dict[str, int],
              trained: Sequence[Trained]) -> Trained:
        """The winners' state: one candidate's adapter, or the winners trained together."""
        picks = set(choice.values())
        if len(picks) == 1:
            best = trained[picks.pop()]
            self.cons.trainer.reset(best.state)
            return best
        self.mem.emit("update", message="training the winners together")
        final = self.train(self.examples(memories, lambda m: choice[m.id]), memories)
        self.cons.trainer.reset(final.state)
        return final
