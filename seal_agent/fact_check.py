"""One question/answer pair, and the check it must pass against the user's own words.

The user asks in the first person and the agent answers in the second
(:func:`second_person`, :func:`first_person`). A pair is trained on only
when :func:`check_pair` finds nothing wrong with it: its key stands in the
user's words and in the answer, the question does not give it away, and
neither says a name or number the user never did.

Pure functions on strings: no model, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from seal_agent.text import is_degenerate, normalize, unsupported_terms

__all__ = ["FIRST_PERSON", "SECOND_PERSON", "FactPair", "check_pair", "first_person", "second_person"]


@dataclass(frozen=True)
class FactPair:
    """One question the user may ask, the answer sentence, and its key (the span checked)."""

    question: str
    answer: str
    key: str
    origin: str = "template"  # template | model


# -- person: the user says "my", the agent answers "your" ---------------------------
_SECOND = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
    "am": "are", "i'm": "you're", "im": "you're", "i've": "you've", "i'd": "you'd",
    "i'll": "you'll", "was": "was", "we": "you", "our": "your", "us": "you",
}
_FIRST = {
    "you": "I", "your": "my", "yours": "mine", "yourself": "myself", "you're": "I'm",
    "you've": "I've", "you'd": "I'd", "you'll": "I'll",
}
_WORD_RE = re.compile(r"[A-Za-z']+|[^A-Za-z']+")


def _swap(text: str, table: dict[str, str]) -> str:
    out = []
    prev_you = False
    for tok in _WORD_RE.findall(text):
        low = tok.lower().replace("\u2019", "'")
        rep = table.get(low)
        if rep is None:
            out.append(tok)
            if tok.strip():
                prev_you = False
            continue
        if low == "was" and table is _SECOND:
            rep = "were" if prev_you else "was"
        if low == "am" and table is _SECOND and not prev_you:
            rep = "am"
        at_start = not "".join(out).strip() or "".join(out).rstrip()[-1] in ".!?"
        if at_start and tok[0].isupper():
            rep = rep[0].upper() + rep[1:]
        elif not at_start and rep != "I":
            rep = rep[0].lower() + rep[1:]
        out.append(rep)
        prev_you = rep.lower() == "you"
    return "".join(out)


def second_person(text: str) -> str:
    """The user's own words as the agent says them back: "I work in Tacoma" -> "You work in Tacoma"."""
    return _swap(text, _SECOND)


def first_person(text: str) -> str:
    """A question the model wrote about "you" as the user asks it: "What is your job?" -> "What is my job?"."""
    return _swap(text, _FIRST)


# -- checking one pair against the user's words -------------------------------------
FIRST_PERSON = {"i", "my", "me", "mine", "im", "myself", "we", "our", "us", "ours"}
SECOND_PERSON = {"you", "your", "yours", "youre", "yourself"}


def check_pair(question: str, answer: str, key: str, source: str) -> str | None:
    """Why a pair must not be trained on, or None when it is fine.

    The answer's key must stand in the user's own words and in the answer; the
    question must not give the key away; nothing either says may name a
    person, place or number that the user never did; the user asks in the
    first person, the agent answers in the second.
    """
    q_words = normalize(question).split()
    a_norm = f" {normalize(answer)} "
    key_norm = normalize(key)
    if not key_norm or not q_words or not a_norm.strip():
        return "empty"
    if not question.rstrip().endswith("?") or len(q_words) > 20 or len(a_norm.split()) > 30:
        return "shape"
    if is_degenerate(question) or is_degenerate(answer):
        return "degenerate"
    if f" {key_norm} " not in f" {normalize(source)} ":
        return "key_not_in_source"
    if f" {key_norm} " not in a_norm:
        return "key_not_in_answer"
    if f" {key_norm} " in f" {' '.join(q_words)} ":
        return "question_gives_key"
    if _invented(question, source) or _invented(answer, source):
        return "unsupported"
    if not FIRST_PERSON & set(q_words) or (SECOND_PERSON - {"you"}) & set(q_words):
        return "person"
    if FIRST_PERSON & set(a_norm.split()) or "user" in a_norm.split():
        return "person"
    return None


def _invented(text: str, source: str) -> list[str]:
    """Names and numbers the user never said (pronouns and question words are not names)."""
    words = normalize(source).split()
    return [t for t in unsupported_terms(text, source) if normalize(t) not in _PRONOUNS
            and not any(w.startswith(normalize(t)) for w in words)]  # "26" of "26th"


_PRONOUNS = FIRST_PERSON | SECOND_PERSON | {"ive", "id", "ill", "youve", "youd", "youll", "tell", "do", "whats", "wheres", "whos", "when", "in", "on", "last", "this", "next"}
