"""The progress bar of every long job (consolidation, policy training, evaluations).

One shape everywhere: text columns, the bar, done/total, elapsed time, an
estimate of the time left. Callers pick the text columns around it. rich's
progress module is imported on the first bar, not with this module, so that
``seal-agent --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["progress_bar"]


def progress_bar(
    console: Console | None = None,
    *,
    lead: Sequence[str] = ("{task.description}",),
    after_count: Sequence[str] = (),
    tail: Sequence[str] = (),
) -> Progress:
    """A bar whose text columns are ``lead`` before it, ``after_count`` after done/total,
    and ``tail`` after the time left (each a rich format string of the task)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        *(TextColumn(text) for text in lead),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(text) for text in after_count),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        *(TextColumn(text) for text in tail),
        console=console,
    )
