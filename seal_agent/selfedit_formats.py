"""How a self-edit completion is read, format by format: implications, rewrites, self-QA, directives.

A small model's completions are loose, so each parser is lenient about layout
and strict about content: bullets are stripped, a rewrite ends at its first
paragraph, a QA pair needs both halves, and a directive's settings must come
from a bounded menu (what is off it falls back to the caller's default and is
named). What the parsed items are then checked against lives in
:mod:`seal_agent.selfedit` (the quality gate).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from seal_agent.text import trim_repetition

__all__ = [
    "DATA_CHOICES",
    "EPOCH_RANGE",
    "LR_RANGE",
    "Directive",
    "parse_directive",
    "parse_implications",
    "parse_qa",
    "parse_rewrite",
]

_QA_RE = re.compile(r"Q:\s*(?P<q>.+?)\s*\n\s*A:\s*(?P<a>[^\n]+)")


def parse_implications(text: str) -> list[str]:
    """One fact per bullet line (the prompt ends with the first bullet)."""
    lines = [re.sub(r"^\s*[-*•]\s*", "", line).strip() for line in text.split("\n")]
    return [line for line in lines if line]


def parse_rewrite(text: str) -> list[str]:
    """The rewrite is the first paragraph; a small model trails off after it."""
    first = text.strip().split("\n\n")[0].strip()
    return [trim_repetition(first)] if first else []


def parse_qa(text: str) -> list[tuple[str, str]]:
    """Question-answer pairs from a completion that starts right after ``Q:``."""
    pairs = []
    for m in _QA_RE.finditer("Q: " + text.strip()):
        question, answer = m.group("q").strip(), m.group("a").strip()
        if question and answer:
            pairs.append((question, answer))
    return pairs


# -- directives: the update settings a self-edit may choose ---------------------
_DIRECTIVE_RE = re.compile(r"^\s*Training:\s*(?P<body>.*)$", re.MULTILINE)
EPOCH_RANGE = (1, 10)
LR_RANGE = (1e-5, 3e-3)
DATA_CHOICES = frozenset({"facts", "statement"})


@dataclass(frozen=True)
class Directive:
    """Update settings from a bounded menu; what the model got wrong is defaulted."""

    epochs: int | None = None
    lr: float | None = None
    data: frozenset[str] = frozenset({"facts", "statement"})
    fallbacks: tuple[str, ...] = ()  # fields that were missing or off the menu

    def as_dict(self) -> dict[str, object]:
        return {
            "epochs": self.epochs,
            "lr": self.lr,
            "data": sorted(self.data),
            "fallbacks": list(self.fallbacks),
        }


def parse_directive(text: str) -> tuple[str, Directive]:
    """Split a directive completion into (facts text, directive).

    ``epochs`` must be an integer in EPOCH_RANGE, ``lr`` a number in LR_RANGE,
    ``data`` a comma list from DATA_CHOICES; each field that is missing or off
    the menu is left to the caller's default and named in ``fallbacks``.
    """
    match = _DIRECTIVE_RE.search(text)
    facts = text[: match.start()] if match else text
    fields: dict[str, str] = {}
    if match:
        for part in match.group("body").split():
            key, _, value = part.partition("=")
            fields[key.strip().lower()] = value.strip()
    fallbacks: list[str] = []
    epochs = _on_menu(fields, "epochs", int, EPOCH_RANGE, fallbacks)
    lr = _on_menu(fields, "lr", float, LR_RANGE, fallbacks)
    data = frozenset(x for x in fields.get("data", "").split(",") if x)
    if not data or not data <= DATA_CHOICES:
        data = DATA_CHOICES
        fallbacks.append("data")
    return facts, Directive(epochs=epochs, lr=lr, data=data, fallbacks=tuple(fallbacks))


_N = TypeVar("_N", int, float)


def _on_menu(
    fields: dict[str, str], key: str, cast: Callable[[str], _N], bounds: tuple[_N, _N],
    fallbacks: list[str],
) -> _N | None:
    """``fields[key]`` as a number within ``bounds``; None (and ``key`` in ``fallbacks``)
    when it is missing, not a number, or off the menu."""
    try:
        value = cast(fields[key])
    except (KeyError, ValueError):
        fallbacks.append(key)
        return None
    if not bounds[0] <= value <= bounds[1]:
        fallbacks.append(key)
        return None
    return value
