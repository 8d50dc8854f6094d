"""LoRA training for the inner loop: one base model, wrapped once, many candidates.

The data flows through the package in this order:

* :mod:`~seal_agent.training.settings`: what a run is told (adapter shape,
  run settings, examples) and what it reports;
* :mod:`~seal_agent.training.batches`: examples tokenized and *packed*, several
  short sequences to a row behind a block-diagonal causal mask;
* :mod:`~seal_agent.training.head_loss`: the loss through the frozen output
  head in chunks, its gradient computed on the spot, so the ``tokens x vocab``
  logits are never materialised whole;
* :mod:`~seal_agent.training.speed`: bf16 products only where they are faster,
  and the LoRA update in one ``addmm`` while training;
* :mod:`~seal_agent.training.trainer`: :class:`LoraTrainer`, which wraps the
  base with PEFT once, trains, and saves and loads adapters.

Together the four throughput choices ran 2.9x the naive batch-1 loop on 2 CPU
cores (``benchmarks/inner_loop.py``). Fewer, larger batches raise tokens/s but
take fewer optimizer steps: on ~40 self-edit lines, ``batch_tokens=256`` ran
14% slower than 2048 yet took 5x the steps and ended 3 epochs at a far lower
loss. Choose the budget for learning, not for the throughput number.
"""

from __future__ import annotations

from seal_agent.training.settings import (
    ADAPTER_CONFIG,
    ADAPTER_NAME,
    ADAPTER_WEIGHTS,
    LoraSettings,
    TrainExample,
    TrainSettings,
    TrainStats,
)
from seal_agent.training.speed import bf16_is_faster
from seal_agent.training.trainer import LoraTrainer

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_NAME",
    "ADAPTER_WEIGHTS",
    "LoraSettings",
    "LoraTrainer",
    "TrainExample",
    "TrainSettings",
    "TrainStats",
    "bf16_is_faster",
]
