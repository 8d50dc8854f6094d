"""The gate of recall-mode consolidation: may the new weights replace the old, and what drains.

Step 5 of memorize.py, with the leak repair before it. The new state must
answer the general questions at least ``min_general_share`` as well as the
base, with no user answer in them (a memory whose answer leaks is trained
without, once: :meth:`Gate.hold_leaks`); memory-on answers (the adapter plus
what stays retrievable) must not fall, and no memory answered before may be
said by nothing after. A memory leaves retrieval only once the weights say
its check questions, with memory on too (:func:`settle_drain`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seal_agent.facts import said
from seal_agent.innerloop import mean
from seal_agent.prompts import GENERAL_CHECKS
from seal_agent.types import MemoryStatus, Namespace

if TYPE_CHECKING:
    from seal_agent.config import ConsolidationConfig
    from seal_agent.memorize import BatchMemory, Memorizer
    from seal_agent.memorize_train import Trained

__all__ = [
    "Gate",
    "GeneralCheck",
    "drained_by",
    "largest_passing_scale",
    "gate_refusal",
    "held_for_leaks",
    "lost_memories",
    "settle_drain",
]

Said = dict[str, list[bool]]  # memory id -> said, per check question


@dataclass(frozen=True)
class GeneralCheck:
    """The general questions: right by the base, still right, and user answers said in them."""

    base_right: int
    new_right: int
    leaked: list[str]  # the user keys said in a general answer
    lost: list[str]  # general questions the base gets right and the new state does not
    leaks: list[dict[str, str]]  # each: the key, the general question, the answer
    questions: int  # how many general questions were asked


class Gate:
    """The gate step of one :class:`~seal_agent.memorize.Memorizer`."""

    def __init__(self, mem: Memorizer) -> None:
        self.mem = mem
        self.cons = mem.cons
        self.cfg = mem.cfg
        self._general_base: list[str] | None = None
        # the last state asked and its answers: the leak check and the gate ask the same
        # state when nothing leaked, and its greedy answers cannot differ
        self._asked: tuple[dict[str, Any], list[str]] | None = None

    def general_base(self) -> list[str]:
        """The bare base's answers to the general questions (cached)."""
        if self._general_base is None:
            answerer = self.mem.answerer
            self._general_base = answerer.base_answers([answerer.prompt(q) for q, _ in GENERAL_CHECKS])
        return self._general_base

    def general(self, memories: Sequence[BatchMemory], state: dict[str, Any]) -> GeneralCheck:
        """General questions the base answers right, how many the new state still does,
        and any user key that entered an answer (not in the question, not in the base's)."""
        base = self.general_base()
        self.cons.trainer.reset(state)
        new = self._general_answers(state)
        keys = {p.key for m in memories for p in m.stored.check}
        leaks = [{"key": k, "question": q, "answer": a} for k in sorted(keys)
                 for (q, _), a, b in zip(GENERAL_CHECKS, new, base, strict=True)
                 if said(a, k) and not said(b, k) and not said(q, k)]
        leaked = sorted({x["key"] for x in leaks})
        base_right = [said(b, gold) for b, (_, gold) in zip(base, GENERAL_CHECKS, strict=True)]
        lost = [q for r, a, (q, gold) in zip(base_right, new, GENERAL_CHECKS, strict=True)
                if r and not said(a, gold)]
        return GeneralCheck(sum(base_right), sum(base_right) - len(lost), leaked, lost, leaks,
                            len(GENERAL_CHECKS))

    def _general_answers(self, state: dict[str, Any]) -> list[str]:
        """The state's greedy answers to the general questions (asked once per state)."""
        if self._asked is not None and self._asked[0] is state:
            return self._asked[1]
        answerer = self.mem.answerer
        new = answerer.answers([answerer.prompt(q) for q, _ in GENERAL_CHECKS])
        self._asked = (state, new)
        return new

    def hold_leaks(self, memories: Sequence[BatchMemory], choice: dict[str, int],
                   final: Trained) -> tuple[Trained, list[str]]:
        """Train once more without the memories whose answers leak into general answers.

        One number said to "How many legs does a dog have?" would otherwise
        make the gate refuse the whole batch. The memories holding a leaked
        answer are left out of the training (they stay retrievable, and are
        tried again in the next run); everything is still measured, and the
        gate decides on the new state, leaks included.
        """
        if not self.cfg.leak_retry:
            return final, []
        leaked = self.general(memories, final.state).leaked
        held = held_for_leaks(memories, leaked)
        if not held:
            return final, []
        keep = [m for m in memories if m.id not in held]
        self.mem.emit("update", message=f"training again without {len(held)} memories whose "
                                        f"answers leaked into general answers "
                                        f"({', '.join(sorted(leaked))})")
        training = self.mem.training
        again = training.train(training.examples(keep, lambda m: choice.get(m.id, 0)), keep,
                               measure=memories)
        return again, held

    def soften(self, memories: Sequence[BatchMemory], final: Trained) -> tuple[Trained, float]:
        """Scale the adapter's update down until the general answers pass; the state and scale.

        LoRA adds ``B @ A`` to each weight; multiplying every ``B`` by a scale
        moves the state back towards the base by that much, with no training.
        A fact learned well is still said at a smaller scale, while what the
        update wore away of the model's general answers comes back. Tried only
        when the state fails the general check: a bisection between
        ``soften_min`` and 1 (``soften_tries`` steps, 0.75 first) for the
        largest scale that passes, each step asking the check and general
        questions again. None passing: the full state, which the gate refuses.
        """
        from seal_agent.memorize_train import Trained

        check = self.general(memories, final.state)
        need = math.floor(self.cfg.min_general_share * check.base_right)
        if check.new_right >= need:
            return final, 1.0
        tried: dict[float, Trained] = {}

        def passes(scale: float) -> bool:
            state = {k: v * scale if ".lora_B." in k else v for k, v in final.state.items()}
            self.mem.emit("gate", message=f"general answers fell: the update at x{scale}")
            self.cons.trainer.reset(state)
            said_now, _ = self.mem.said_by_memory(memories)
            tried[scale] = Trained(state, 0, final.epochs, said_now)
            return self.general(memories, state).new_right >= need

        scale = largest_passing_scale(passes, self.cfg.soften_min, self.cfg.soften_tries)
        chosen = final if scale is None else tried[scale]
        self.cons.trainer.reset(chosen.state)
        return chosen, 1.0 if scale is None else scale

    def memory_on(self, ns: Namespace, memories: Sequence[BatchMemory],
                  drained: set[str] | None) -> Said | None:
        """Memory-on answers to every check question of each memory, with the current state.

        ``drained``: the memories that would leave retrieval (None: as the
        journal has it now). Every earlier memory that is not drained counts
        as retrievable, as promotion would make it.
        """
        buffer = self.cons.buffer
        if buffer is None:
            return None
        top_k = self.cons.config.buffer.top_k
        statuses = (MemoryStatus.BUFFERED, MemoryStatus.CONSOLIDATED)
        truth_ids = {m.id for m in memories}
        prompts, keys, owners = [], [], []
        for m in memories:
            for probe in m.stored.check:
                hits = buffer.search(probe.question, ns, top_k=top_k * 3, statuses=statuses)
                live = self.cons.journal.statuses([h.id for h in hits])
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
                prompts.append(self.mem.answerer.prompt(probe.question, keep[:top_k]))
                keys.append(probe.key)
                owners.append(m.id)
        out: Said = {m.id: [] for m in memories}
        for owner, key, answer in zip(owners, keys, self.mem.answerer.answers(prompts), strict=True):
            out[owner].append(said(answer, key))
        return out

    def drain_set(self, ns: Namespace, memories: Sequence[BatchMemory], verified: set[str],
                  ) -> tuple[set[str], Said | None]:
        """The memories that leave retrieval, and the memory-on answers once they have
        (:func:`settle_drain`, with the current state's memory-on answers)."""
        return settle_drain(verified, lambda drain: self.memory_on(ns, memories, drained=drain),
                            self.cfg.verify_share)


def gate_refusal(cfg: ConsolidationConfig, verified: set[str], general: GeneralCheck,
                 on_before: Said | None, on_after: Said | None, lost: Sequence[str]) -> str | None:
    """Why the gate refuses the new state, or None: it may be promoted."""
    n_before = None if on_before is None else sum(map(sum, on_before.values()))
    n_after = None if on_after is None else sum(map(sum, on_after.values()))
    base_right, new_right = general.base_right, general.new_right
    if not verified:
        return "the new weights say none of the memories' check questions"
    if new_right < math.floor(cfg.min_general_share * base_right):  # whole answers
        return (f"general answers kept {new_right} of the {base_right} the base "
                f"model gets right (needs {cfg.min_general_share:.0%})")
    if general.leaked:
        return f"user answers leaked into general answers: {', '.join(general.leaked)}"
    if n_before is not None and n_after is not None and n_after < n_before:
        return f"memory-on answers would fall ({n_before} -> {n_after})"
    if lost:
        return (f"{len(lost)} memories answered with memory on now would be said by "
                f"nothing after: {', '.join(sorted(lost))}")
    return None


def drained_by(said_now: Said, share: float) -> set[str]:
    """The drain rule: a memory leaves retrieval only when the weights say enough of its
    check questions (``share`` of them; 1.0: all). No check question, no drain."""
    return {m for m, flags in said_now.items() if flags and mean(flags) >= share}


def settle_drain(verified: set[str], memory_on: Callable[[set[str]], Said | None],
                 share: float, rounds: int = 3) -> tuple[set[str], Said | None]:
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


def largest_passing_scale(passes: Callable[[float], bool], low: float, tries: int
                          ) -> float | None:
    """Bisection on (``low``, 1) for the largest scale that ``passes`` (1 itself failed),
    ``tries`` steps, the midpoint first; None when no scale tried passed."""
    high, best = 1.0, None
    for _ in range(tries):
        scale = round((low + high) / 2, 4)
        if passes(scale):
            best = low = scale
        else:
            high = scale
    return best


def lost_memories(on_before: Said | None, on_after: Said | None, weights: Said) -> list[str]:
    """Memories answered with memory on before that nothing says after: neither the
    new weights alone nor memory on (the adapter and what stays retrievable)."""
    if on_before is None or on_after is None:
        return []
    return sorted(m for m, flags in on_before.items()
                  if any(flags) and not any(on_after.get(m, ())) and not any(weights.get(m, ())))


def held_for_leaks(memories: Sequence[BatchMemory], leaked: Sequence[str]) -> list[str]:
    """The memories to train without when their answers leaked into general answers:
    each memory that holds a leaked key. None (empty) when no memory holds one, or
    when no new memory would be left to train."""
    keys = set(leaked)
    held = sorted(m.id for m in memories if keys & {p.key for p in m.stored.check})
    if not held or not any(m.new and m.id not in held for m in memories):
        return []
    return held
