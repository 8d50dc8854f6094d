"""A memory in the form the agent is asked about it: question/answer pairs per answer key.

The weights say a fact back only when they were trained on it *in the form
in which it is asked*: the user's question in the agent's own chat turn,
answered by a short sentence, with the loss on the answer alone (FINDINGS,
"Saying facts from the weights": 0/16 unseen paraphrases from the bare
statements, 14/16 with chat-format question/answer pairs).

This module builds the train and check sets of one statement, and holds the
one definition of "the weights said it":

* pairs come from the relation templates (:mod:`seal_agent.fact_templates`,
  always safe) and from :func:`model_pairs`, pairs the model wrote itself
  (few-shot completion), person-corrected and kept only when they pass
  :func:`~seal_agent.fact_check.check_pair`;
* :func:`build_probes`: per answer key, *train* pairs (trained on) and
  *check* questions (never trained on; they decide what the weights hold);
* :func:`said`: a greedy answer holds the key (normalised, numbers and their
  words alike).

Pure functions on strings: no model, no I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from seal_agent.fact_check import (
    FIRST_PERSON,
    SECOND_PERSON,
    FactPair,
    check_pair,
    first_person,
    second_person,
)
from seal_agent.fact_templates import AnswerForm, relation_pairs
from seal_agent.text import content_words, normalize

__all__ = [
    "FactProbes",
    "build_probes",
    "key_aliases",
    "model_pairs",
    "parse_model_pairs",
    "question_key",
    "said",
]


@dataclass(frozen=True)
class FactProbes:
    """What one answer key of a statement trains on, and what checks it."""

    key: str
    train: tuple[FactPair, ...]
    check: tuple[FactPair, ...]

    @property
    def checkable(self) -> bool:
        return bool(self.check)


# -- keys: the answer span that a greedy answer must hold ---------------------------
_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
_ORDINAL = re.compile(r"^(\d+)(?:st|nd|rd|th)$")


def key_aliases(key: str, extra: Iterable[str] = ()) -> list[str]:
    """The key and its other spellings: digits and number words, ordinals, extra aliases."""
    out = [key, *extra]
    norm = normalize(key)
    for word in norm.split():
        m = _ORDINAL.match(word)
        if m:
            out.append(norm.replace(word, m.group(1)))
    if norm.isdigit() and int(norm) < len(_NUMBER_WORDS):
        out.append(_NUMBER_WORDS[int(norm)])
    elif norm in _NUMBER_WORDS:
        out.append(str(_NUMBER_WORDS.index(norm)))
    seen: dict[str, None] = {}
    for alias in out:
        if normalize(alias):
            seen.setdefault(normalize(alias), None)
    return list(seen)


def said(answer: str, key: str, aliases: Iterable[str] = ()) -> bool:
    """Whether a greedy answer holds the key (normalised, whole words; any alias counts)."""
    text = f" {_ORDINAL_SUB(normalize(answer.replace('-', ' ')))} "
    for alias in key_aliases(key, aliases):
        words = _ORDINAL_SUB(alias)
        if f" {words} " in text or f" {alias} " in text:
            return True
    return False


def _ORDINAL_SUB(norm: str) -> str:  # "9th" in an answer says "9"
    return " ".join(_ORDINAL.sub(r"\1", w) for w in norm.replace("-", " ").split())


# -- pairs the model wrote -----------------------------------------------------------
_PAIR_RE = re.compile(r"^\s*(?:\d+[.)]\s*)?(?:Q:\s*)?(?P<q>[^|\n]+\?)\s*\|\s*(?:A:\s*)?(?P<a>[^|\n]+)$")


def parse_model_pairs(text: str) -> list[tuple[str, str]]:
    """``1. question? | answer sentence`` lines from a completion."""
    pairs = []
    for line in text.splitlines():
        m = _PAIR_RE.match(line)
        if m:
            pairs.append((m.group("q").strip(), m.group("a").strip()))
    return pairs


def model_pairs(text: str, source: str) -> tuple[list[FactPair], Counter[str]]:
    """The model's pairs, person-corrected, keyed, and checked; dropped ones counted by reason.

    The key is what the answer adds to the question: its words that the
    question lacks, as one contiguous run of the user's own words.
    """
    kept: list[FactPair] = []
    dropped: Counter[str] = Counter()
    for question, answer in parse_model_pairs(text):
        q_words = set(normalize(question).split())
        if SECOND_PERSON & q_words and not FIRST_PERSON & q_words:
            question = first_person(question)  # "What is your job?" asked as the user would
        if FIRST_PERSON & set(normalize(answer).split()):
            answer = second_person(answer)
        key = _new_span(question, answer, source)
        if key is None:
            dropped["no_key"] += 1
            continue
        reason = check_pair(question, answer, key, source)
        if reason:
            dropped[reason] += 1
            continue
        kept.append(FactPair(question, answer, key, origin="model"))
    return kept, dropped


_POSSESSIVE = re.compile(r"(?<=\w)['\u2019]s\b")


def _new_span(question: str, answer: str, source: str) -> str | None:
    """The run of the source's words that the answer adds to the question."""
    question, answer = _POSSESSIVE.sub("", question), _POSSESSIVE.sub("", answer)
    q_content = content_words(question)
    new = [w for w in normalize(answer).split() if w in content_words(answer) and w not in q_content]
    if not new:
        return None
    src = normalize(source).split()
    # the longest run of source words, all of them new in the answer, in source order
    best: list[str] = []
    i = 0
    while i < len(src):
        if src[i] in new:
            j = i
            while j < len(src) and src[j] in new:
                j += 1
            if j - i > len(best):
                best = src[i:j]
            i = j
        else:
            i += 1
    return " ".join(best) if best else None


# -- train and check sets per key --------------------------------------------------------
def build_probes(
    source: str,
    model_output: str = "",
    *,
    n_train: int = 3,
    n_check: int = 2,
    max_keys: int = 3,
    answers: AnswerForm = "clause",
) -> tuple[list[FactProbes], Counter[str]]:
    """Per answer key of the statement: ``n_train`` pairs to train on, ``n_check`` held apart.

    Check questions come first from the model's own pairs (its wording is
    the least like the templates), then from the templates' last ones; the
    train pairs are the rest. A key with no check question is still trained
    on but can never be verified, so its memory stays retrievable.
    """
    written, dropped = model_pairs(model_output, source) if model_output else ([], Counter())
    templated = relation_pairs(source, answers)
    by_key: dict[str, list[FactPair]] = {}
    for pair in [*templated, *written]:
        by_key.setdefault(normalize(pair.key), []).append(pair)
    result = []
    for pairs in list(by_key.values())[:max_keys]:
        unique: dict[str, FactPair] = {}
        for p in pairs:
            unique.setdefault(question_key(p.question), p)
        ordered = list(unique.values())
        templates = [p for p in ordered if p.origin != "model"]
        models = [p for p in ordered if p.origin == "model"]
        # the templates' last questions are worded least like their first ones
        pool = templates[::-1] + models
        check = pool[:n_check] if len(ordered) > n_check else []
        train = [p for p in ordered if p not in check][:n_train]
        if not train:
            continue
        train += _framed(train, n_train - len(train))
        result.append(FactProbes(key=train[0].key, train=tuple(train), check=tuple(check)))
    return result, dropped


_FRAMES = ("Remind me, {q}", "Quick question: {q}", "Can you tell me: {q}", "Do you recall: {q}")


def _framed(train: Sequence[FactPair], n: int) -> list[FactPair]:
    """``n`` more train pairs: the train questions again in other frames ("Remind me,
    what is my dog called?"), the same answers. Never a check question's: those stay unseen."""
    out: list[FactPair] = []
    for k in range(min(n, len(train) * len(_FRAMES))):
        p, frame = train[k % len(train)], _FRAMES[k % len(_FRAMES)]
        q = p.question if p.question.startswith("I ") else p.question[0].lower() + p.question[1:]
        out.append(FactPair(frame.format(q=q), p.answer, p.key, p.origin))
    return out


_CONTRACTIONS = (("what's", "what is"), ("where's", "where is"), ("who's", "who is"),
                 ("how's", "how is"), ("i'm", "i am"), ("'ve", " have"), ("don't", "do not"))


def question_key(question: str) -> str:
    """A question's identity for de-duplication: contractions spelled out, then normalised."""
    text = question.lower().replace("\u2019", "'")
    for short, long in _CONTRACTIONS:
        text = text.replace(short, long)
    return normalize(text)
