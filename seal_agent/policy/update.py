"""What a policy round learns from: the update examples, and the candidate adapter written safely.

ReST-EM keeps each context's best sample (optionally only if its reward is
positive) and fine-tunes on (prompt -> that self-edit), loss on the
completion tokens only. GRPO weights every sample's completion tokens by
its group-relative advantage ``(r - mean) / std`` over the context's ``k``
samples. The candidate adapter is written beside its final place and
renamed there, so a kill never leaves half an adapter behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seal_agent.types import SelfEditFormat

if TYPE_CHECKING:
    from seal_agent.config import PolicyConfig
    from seal_agent.training import TrainExample

__all__ = ["completion_for_training", "group_advantages", "update_examples", "write_candidate"]


def group_advantages(rewards: Sequence[float], eps: float = 1e-4) -> list[float] | None:
    """GRPO's group-relative advantages ``(r - mean) / (std + eps)``; None when all tie.

    ``std`` is the sample standard deviation, as TRL computes it.
    """
    if len(rewards) < 2:
        return None
    std = statistics.stdev(rewards)
    if std < 1e-9:
        return None  # no signal: every sample earned the same
    mu = statistics.fmean(rewards)
    return [(r - mu) / (std + eps) for r in rewards]


def completion_for_training(fmt: SelfEditFormat, items: Sequence[str], raw: str) -> str:
    """The gated self-edit as the prompt's continuation (the prompt ends after ``-``,
    ``Rewritten:`` or ``Q:``): the policy learns the lines that passed the gate, not
    the hallucinated ones it also wrote."""
    if not items:
        return " " + raw.strip()
    if fmt is SelfEditFormat.REWRITE:
        return " " + items[0]
    if fmt is SelfEditFormat.QA:
        text = "\n".join(items)
        return " " + text.removeprefix("Q:").lstrip()
    body = " " + "\n- ".join(items)
    if fmt is SelfEditFormat.DIRECTIVE:  # keep the settings line the model chose
        training = next((ln for ln in raw.splitlines() if ln.strip().startswith("Training:")), None)
        if training:
            body += "\n" + training.strip()
    return body


def update_examples(groups: list[dict[str, Any]], pc: PolicyConfig) -> list[TrainExample]:
    """The policy-update examples of a round's sampled groups (one group per context)."""
    from seal_agent.training import TrainExample

    examples = []
    for g in groups:
        samples = g["samples"]
        if pc.method == "rest-em":
            usable = [s for s in samples if s["items"]]
            if not usable:
                continue
            best = max(usable, key=lambda s: s["reward"])
            if pc.positive_only and best["reward"] <= 0:
                continue
            fmt = SelfEditFormat(best["format"])
            examples.append(TrainExample(best["prompt"],
                                         completion_for_training(fmt, best["items"], best["completion"])))
        else:  # grpo: every sample, on the tokens it actually sampled
            advantages = group_advantages([s["reward"] for s in samples])
            if advantages is None:
                continue
            for s, a in zip(samples, advantages, strict=True):
                if abs(a) > 1e-6 and s["completion"].strip():
                    examples.append(TrainExample(s["prompt"], " " + s["completion"].strip(), a))
    return examples


def write_candidate(save: Callable[[Path], None], round_dir: Path) -> None:
    """``round_dir/candidate``, written by ``save`` to a temporary folder, fsynced, renamed."""
    round_dir.mkdir(exist_ok=True)
    final = round_dir / "candidate"
    tmp = round_dir / ".candidate.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save(tmp)
    for f in tmp.iterdir():
        with f.open("rb") as fh:
            os.fsync(fh.fileno())
    shutil.rmtree(final, ignore_errors=True)  # a candidate without its update event: redo
    os.rename(tmp, final)
    with contextlib.suppress(OSError):
        fd = os.open(round_dir, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
