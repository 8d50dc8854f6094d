"""What a training run is told and reports: adapter shape and names, settings, examples, stats.

Plain data, no torch: the settings validate themselves on construction, and
the learning-rate schedule lives beside them so that a run's settings alone
say how every step's rate is chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from seal_agent.errors import ConfigError
from seal_agent.types import FrozenModel

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_NAME",
    "ADAPTER_WEIGHTS",
    "ALL_PROJECTIONS",
    "LoraSettings",
    "TrainExample",
    "TrainSettings",
    "TrainStats",
]

ADAPTER_NAME = "scratch"  # the one PEFT adapter every candidate is trained in
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # PEFT's own file names, so PEFT can load ours
ADAPTER_CONFIG = "adapter_config.json"
ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraSettings(FrozenModel):
    """The adapter's shape: fixed for the trainer's lifetime (it is wrapped once)."""

    r: int = Field(16, ge=1, le=1024, description="LoRA rank.")
    alpha: float = Field(32, gt=0, description="LoRA scale numerator: updates are scaled alpha / r.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: tuple[str, ...] = Field(
        ALL_PROJECTIONS, min_length=1, description="Module names that get an adapter."
    )


class TrainSettings(FrozenModel):
    """One training run: a candidate's inner loop, or the adapter update."""

    epochs: int = Field(3, ge=1, le=1000)
    lr: float = Field(3e-4, gt=0.0, le=1.0, description="Peak learning rate.")
    batch_tokens: int = Field(
        2048, ge=16, description="Token budget of one batch (rows x row length, padding included)."
    )
    max_seq_len: int = Field(256, ge=2, description="Longer sequences are truncated (EOS included).")
    warmup_steps: int | None = Field(None, ge=0, description="Linear warm-up steps; excludes warmup_fraction.")
    warmup_fraction: float | None = Field(
        None, ge=0.0, le=1.0, description="Warm-up as a fraction of all steps; default 0.1."
    )
    schedule: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Decay after warm-up (towards zero at the end)."
    )
    grad_clip: float | None = Field(1.0, gt=0.0, description="Max global grad norm; None: no clipping.")
    weight_decay: float = Field(0.0, ge=0.0)
    bf16: bool | None = Field(
        None,
        description="bf16 autocast for the matrix products; None: on CPU only if it "
        "multiplies bf16 faster than fp32 (probed once per process), on CUDA if it supports bf16.",
    )
    seed: int | None = Field(0, description="Seeds batch order and dropout; None: not seeded.")

    @model_validator(mode="after")
    def _one_warmup(self) -> TrainSettings:
        if self.warmup_steps is not None and self.warmup_fraction is not None:
            raise ConfigError("give warmup_steps or warmup_fraction, not both")
        return self

    def warmup_for(self, total_steps: int) -> int:
        """Warm-up steps of a run of ``total_steps``."""
        if self.warmup_steps is not None:
            return min(self.warmup_steps, total_steps)
        fraction = 0.1 if self.warmup_fraction is None else self.warmup_fraction
        return int(fraction * total_steps)

    def lr_at(self, step: int, total_steps: int) -> float:
        """Linear warm-up, then cosine or linear decay; never exactly zero on a step taken."""
        warmup = self.warmup_for(total_steps)
        if step < warmup:
            return self.lr * (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)  # in [0, 1): the last step > 0
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.schedule == "linear":
            return self.lr * (1.0 - progress)
        return self.lr


@dataclass(frozen=True)
class TrainExample:
    """A (prompt, completion) pair: only the completion's tokens carry loss.

    Policy training teaches the self-edit writer *what to write after* a
    prompt; the few-shot prompt itself (hundreds of tokens, the same for every
    example) must not be learned. ``weight`` scales the example's token losses:
    1 for supervised fine-tuning, the group-relative advantage for GRPO
    (negative: make this completion less likely).
    """

    prompt: str
    completion: str
    weight: float = 1.0
    # Learn the *base* model's whole next-token distribution at each completion
    # token (self-distillation: the loss is the KL divergence from the base, so it
    # is zero until the adapter moves the base there), not the completion's tokens.
    # Replay uses it: it holds the base's behaviour without sharpening it.
    distill: bool = False


class TrainStats(FrozenModel):
    """What one :meth:`LoraTrainer.train` call did."""

    tokens: int = Field(description="Real (non-pad) tokens processed, summed over epochs.")
    padded_tokens: int = Field(description="Token slots processed, padding included.")
    steps: int
    seconds: float
    first_loss: float = Field(description="Mean token loss of the first step.")
    last_loss: float = Field(description="Mean token loss of the last step.")
    losses: list[float] = Field(description="Mean token loss of every step, in order.")
    epoch_losses: list[float] = Field(description="Token-weighted mean loss of each epoch.")
    bf16: bool = Field(description="Whether the matrix products ran in bf16.")

