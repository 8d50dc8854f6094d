"""Scoring as the data sets' own evaluation code does it, plus bootstrap intervals.

* SQuAD: normalised exact match and token F1 (lower case, no punctuation, no
  articles, one space), max over gold answers; and "gold contained in the
  normalised prediction", since SEAL graded with an LLM judge.
* LoCoMo: token F1 after normalisation; category 1 (multi-hop) golds are
  comma-separated lists scored with partial credit (mean over gold parts of
  the best F1 against the prediction's parts); category 3 golds are cut at the
  first ``;``; category 5 (adversarial) scores 1 only when the answer says the
  information is not available.
* LongMemEval: the official grader is an LLM judge; offline we report
  contains-answer and token F1, and abstention accuracy on ``_abs`` questions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from seal_agent.errors import ConfigError
from seal_agent.reward import contains_answer, token_f1
from seal_agent.text import normalize

__all__ = [
    "abstains",
    "bootstrap_ci",
    "contains",
    "exact_match",
    "f1",
    "locomo_score",
    "paired_bootstrap_ci",
    "squad_scores",
]


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize(prediction) == normalize(gold))


# Token F1 and contains-answer are the reward's own scorers: one definition.
f1 = token_f1
contains = contains_answer


def squad_scores(prediction: str, golds: Sequence[str]) -> dict[str, float]:
    """Exact match, F1 and contains, each the max over the gold answers."""
    return {
        "em": max(exact_match(prediction, g) for g in golds),
        "f1": max(f1(prediction, g) for g in golds),
        "contains": max(contains(prediction, g) for g in golds),
    }


# LoCoMo's adversarial category: credit for saying the answer is not there.
_NOT_AVAILABLE = re.compile(
    r"not (?:been )?mention|no information|not available|not (?:been )?(?:stated|specified|provided|said)"
    r"|(?:do not|don't|cannot|can't) know|unknown|no mention|not sure|unanswerable",
    re.IGNORECASE,
)


def abstains(prediction: str) -> bool:
    """The answer says the information is not available."""
    return bool(_NOT_AVAILABLE.search(prediction))


def locomo_score(prediction: str, gold: str, category: str) -> float:
    if category == "5":
        return float(abstains(prediction))
    if category == "3":
        gold = gold.split(";")[0].strip()
    if category == "1":
        parts = [g.strip() for g in gold.split(",") if g.strip()]
        preds = [p.strip() for p in prediction.split(",") if p.strip()] or [prediction]
        if not parts:
            return 0.0
        return sum(max(f1(p, g) for p in preds) for g in parts) / len(parts)
    return f1(prediction, gold)


# -- intervals ---------------------------------------------------------------------------
def bootstrap_ci(
    values: Sequence[float], *, resamples: int = 2000, seed: int = 0, level: float = 0.95,
    stat: Callable[[Sequence[float]], float] | None = None,
) -> tuple[float, float, float]:
    """(mean, low, high): the percentile bootstrap over items (passages, questions).

    ``scipy.stats.bootstrap`` does the resampling (vectorised for the mean); the
    same seed gives the same interval.  One item, or items all alike, resample
    to themselves, so the interval is the point (scipy would warn and say nan).
    """
    if not values:
        return (float("nan"), float("nan"), float("nan"))
    point = stat(values) if stat is not None else sum(values) / len(values)
    data = np.asarray(values, dtype=float)
    if len(data) < 2 or bool(np.all(data == data[0])):
        return (point, point, point)
    from scipy.stats import bootstrap  # the eval's own dependency; not at import time

    result = bootstrap(
        (data,),
        np.mean if stat is None else (lambda sample: stat(sample.tolist())),
        vectorized=stat is None,
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return (point, float(interval.low), float(interval.high))


def paired_bootstrap_ci(
    a: Sequence[float], b: Sequence[float], **kwargs: float
) -> tuple[float, float, float]:
    """Mean of ``b - a`` over paired items, with its bootstrap interval."""
    if len(a) != len(b):
        raise ConfigError(f"paired samples differ in length: {len(a)} and {len(b)}")
    return bootstrap_ci([y - x for x, y in zip(a, b, strict=True)], **kwargs)  # type: ignore[arg-type]
