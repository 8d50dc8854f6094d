"""The inner loop: what one self-edit is worth.

One implementation, used by consolidation (reward of each candidate), by the
evaluation harness (``seal`` condition) and by policy training (the reward of
each sampled self-edit):

1. start the LoRA trainer from a given adapter state (the namespace's current
   memory adapter, or none);
2. train on the self-edit's sequences (its lines, rendered as the agent would
   read them, plus the source text if the self-edit asks for it);
3. score the probe questions with nothing in context; the reward is the mean
   score after minus the mean score before.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seal_agent.types import SelfEditFormat

if TYPE_CHECKING:
    from seal_agent.config import ConsolidationConfig, SealAgentConfig
    from seal_agent.models.base import LanguageModel, TrainableBase
    from seal_agent.reward import Scorer
    from seal_agent.selfedit import Candidate
    from seal_agent.selfedit_formats import Directive
    from seal_agent.training import LoraTrainer, TrainSettings

__all__ = ["InnerLoop", "InnerResult", "build_inner_loop", "build_trainer", "mean"]

QA = tuple[str, str]


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@dataclass(frozen=True)
class InnerResult:
    """One inner loop: probe score before and after, and what training cost."""

    before: float
    after: float | None  # None: nothing to train on (every line was dropped)
    tokens: int
    seconds: float

    @property
    def reward(self) -> float | None:
        return None if self.after is None else self.after - self.before


class InnerLoop:
    """Trains a temporary adapter on a self-edit and scores probes without context."""

    def __init__(
        self,
        trainer: LoraTrainer,
        scorer: Scorer,
        cfg: ConsolidationConfig,
        *,
        system_prompt: str,
    ) -> None:
        self.trainer = trainer
        self.scorer = scorer
        self.cfg = cfg
        self.system_prompt = system_prompt

    # -- settings and data ------------------------------------------------------------
    def settings(self, directive: Directive | None = None, *, update: bool = False) -> TrainSettings:
        """The inner loop's settings (or the adapter update's); a directive overrides them."""
        from seal_agent.training import TrainSettings

        cfg = self.cfg
        epochs = cfg.update_epochs if update else cfg.inner_epochs
        lr = cfg.update_lr if update else cfg.inner_lr
        if directive is not None:
            epochs = directive.epochs or epochs
            lr = directive.lr or lr
        return TrainSettings(epochs=epochs, lr=lr, batch_tokens=cfg.batch_tokens, seed=cfg.seed)

    def sequences(self, cand: Candidate, sources: Sequence[str]) -> list[str]:
        """The candidate's lines plus the source text (the user's statement, a passage).

        A directive may leave either out.
        """
        data = cand.directive.data if cand.directive else frozenset({"facts", "statement"})
        seqs = [self.render(cand.format, x) for x in cand.items] if "facts" in data else []
        if "statement" in data:
            seqs += list(sources)
        return seqs

    def render(self, fmt: SelfEditFormat, text: str) -> str:
        """A self-QA pair trains as a chat exchange, in the format the agent answers in.

        Measured on the quickstart's five facts (docs/consolidation.md): plain
        facts alone taught 1 of 5 answers, facts plus chat-formatted QA 2 of 5.
        """
        if fmt is not SelfEditFormat.QA or "\nA:" not in text:
            return text
        question, _, answer = text.partition("\nA:")
        messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": question.removeprefix("Q:").strip()},
            {"role": "assistant", "content": answer.strip()},
        ]
        return str(self.trainer.tokenizer.apply_chat_template(messages, tokenize=False))

    # -- the loop -----------------------------------------------------------------------
    def score(self, qa: Sequence[QA], state: dict[str, Any] | None = None) -> float:
        """Mean probe score of ``state`` (None: the bare base)."""
        self.trainer.reset(state)
        return mean(self.scorer.score(self.trainer.model, qa))

    def run(
        self,
        sequences: Sequence[str],
        qa: Sequence[QA],
        *,
        start: dict[str, Any] | None,
        before: float,
        settings: TrainSettings | None = None,
    ) -> InnerResult:
        """Train from ``start`` on ``sequences``; score ``qa``.  Leaves the trained state loaded."""
        t0 = time.perf_counter()
        if not sequences:
            return InnerResult(before=before, after=None, tokens=0, seconds=0.0)
        self.trainer.reset(start)
        stats = self.trainer.train(sequences, settings or self.settings())
        after = mean(self.scorer.score(self.trainer.model, qa))
        return InnerResult(
            before=before, after=after, tokens=stats.tokens,
            seconds=round(time.perf_counter() - t0, 3),
        )

    def reward(
        self,
        cand: Candidate,
        sources: Sequence[str],
        qa: Sequence[QA],
        *,
        start: dict[str, Any] | None,
        before: float,
    ) -> InnerResult:
        """A candidate's reward: its sequences, its directive's settings (if any)."""
        if not cand.items:  # a candidate whose every line was dropped earns nothing
            return InnerResult(before=before, after=None, tokens=0, seconds=0.0)
        return self.run(
            self.sequences(cand, sources), qa, start=start, before=before,
            settings=self.settings(cand.directive),
        )


def build_trainer(config: SealAgentConfig, lm: LanguageModel | TrainableBase) -> LoraTrainer:
    """A second copy of the base (fast from the safetensors cache), LoRA-wrapped once,
    so the loaded model keeps serving while this one trains.

    ``lm`` is the agent's model or its trainable base (``models.trainable_base``);
    a remote model without ``model.trainer`` raises ``BackendCapabilityError``.
    """
    from seal_agent.models import trainable_base
    from seal_agent.training import LoraSettings, LoraTrainer

    base = trainable_base(lm, "train adapters")
    cfg = config.consolidation
    return LoraTrainer(base.load_base(), base.tokenizer, LoraSettings(r=cfg.lora_r, alpha=cfg.lora_alpha))


def build_inner_loop(
    config: SealAgentConfig, lm: LanguageModel | TrainableBase, trainer: LoraTrainer | None = None
) -> InnerLoop:
    """The inner loop with the configured scorer, on ``trainer`` or a new one."""
    from seal_agent.models import trainable_base
    from seal_agent.reward import make_scorer

    base = trainable_base(lm, "run the inner loop")
    scorer = make_scorer(config.consolidation.scorer, base.tokenizer, config.agent.system_prompt)
    return InnerLoop(
        trainer or build_trainer(config, base), scorer, config.consolidation,
        system_prompt=config.agent.system_prompt,
    )
