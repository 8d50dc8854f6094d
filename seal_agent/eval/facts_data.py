"""The personal-facts benchmark: does the agent remember what a user told it, from its weights?

``personal_facts.json`` (packaged next to this module) holds hand-written facts that
users tell a chat agent about themselves ("My dog is called Marzipan."), each with three
question/answer pairs that consolidation may train on and two paraphrased *check*
questions that are never trained on. Asking the check questions after LoRA training
measures recall from the weights rather than memorisation of the training prompts.
Distractors ask a user about a kind of fact only *other* users stated (cross-user
leakage), and the general questions watch for damage to what the base model knew.

Split rule: each user's ``split`` field in the file decides; at present u01-u06,
u13-u16 and u21-u24 are ``dev`` (84 facts), u07-u12 and u17-u20 are ``heldout`` (60);
6 facts per user. Users u13-u24 state only kinds of facts no other user states, so each
split has a large pool of facts that one person could all have said. u21-u24 were added
later, worded unlike the first dev users, so that the relation templates (facts.py) are
built on more than one way of saying a thing; the held-out users were not read for them. Tune prompts, ranks and learning
rates on dev only; the held-out users are for the final numbers.

:func:`load_facts` checks the file's invariants and raises
:class:`~seal_agent.errors.ConfigError` naming the offending fact.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from seal_agent.errors import ConfigError
from seal_agent.types import FrozenModel

__all__ = [
    "FACTS_FILE",
    "Category",
    "Distractor",
    "Fact",
    "FactsDataset",
    "GeneralQuestion",
    "QAPair",
    "Split",
    "load_facts",
]

FACTS_FILE: Path = Path(__file__).with_name("personal_facts.json")

Category = Literal["name", "place", "preference", "number", "date", "relation", "job"]
Split = Literal["dev", "heldout"]

_N_TRAIN = 3
_N_CHECK = 2


class QAPair(FrozenModel):
    q: str
    a: str


class Fact(FrozenModel):
    id: str
    user_id: str
    category: Category
    statement: str
    answer: str
    aliases: tuple[str, ...] = ()
    train: tuple[QAPair, ...]
    check: tuple[str, ...]
    split: Split


class Distractor(FrozenModel):
    user_id: str
    question: str
    forbidden: tuple[str, ...]
    split: Split


class GeneralQuestion(FrozenModel):
    question: str
    answer: str
    aliases: tuple[str, ...] = ()


class FactsDataset(FrozenModel):
    facts: tuple[Fact, ...]
    distractors: tuple[Distractor, ...]
    general: tuple[GeneralQuestion, ...]


# -- the file's own shape ------------------------------------------------------------------
class _RawFact(FrozenModel):
    id: str
    category: Category
    statement: str
    answer: str
    aliases: tuple[str, ...] = ()
    train: tuple[QAPair, ...]
    check: tuple[str, ...]


class _RawUser(FrozenModel):
    user_id: str
    split: Split
    facts: tuple[_RawFact, ...]


class _RawDistractor(FrozenModel):
    user_id: str
    question: str
    forbidden: tuple[str, ...]


class _RawFile(FrozenModel):
    version: int
    description: str
    users: tuple[_RawUser, ...]
    distractors: tuple[_RawDistractor, ...]
    general: tuple[GeneralQuestion, ...]


def _norm(text: str) -> str:
    """Lower-cased, punctuation dropped, whitespace collapsed: for comparing questions."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _check_fact(fact: _RawFact, user_id: str) -> None:
    where = f"fact {fact.id}"
    if not fact.id.startswith(f"{user_id}-"):
        raise ConfigError(f"{where}: id does not start with its user id {user_id!r}")
    answer = fact.answer.strip().lower()
    if not answer:
        raise ConfigError(f"{where}: empty answer")
    if answer not in fact.statement.lower():
        raise ConfigError(f"{where}: answer {fact.answer!r} does not occur in its statement")
    if len(fact.train) != _N_TRAIN:
        raise ConfigError(f"{where}: {len(fact.train)} train pairs, expected {_N_TRAIN}")
    if len(fact.check) != _N_CHECK:
        raise ConfigError(f"{where}: {len(fact.check)} check questions, expected {_N_CHECK}")
    for pair in fact.train:
        if answer not in pair.a.lower():
            raise ConfigError(f"{where}: train answer {pair.a!r} does not contain {fact.answer!r}")
    trained = {_norm(pair.q) for pair in fact.train}
    for question in fact.check:
        if _norm(question) in trained:
            raise ConfigError(f"{where}: check question {question!r} is also a train question")


def _parse(path: Path) -> _RawFile:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid UTF-8 JSON: {exc}") from exc
    try:
        return _RawFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path} does not match the personal-facts schema: {exc}") from exc


def load_facts(
    path: Path | None = None, split: Literal["dev", "heldout", "all"] = "dev"
) -> FactsDataset:
    """The facts and distractors of ``split`` (``"all"``: both) plus every general question.

    The whole file is validated whichever split is asked for.
    """
    if split not in ("dev", "heldout", "all"):
        raise ConfigError(f"split must be 'dev', 'heldout' or 'all', not {split!r}")
    path = FACTS_FILE if path is None else Path(path)
    raw = _parse(path)

    users: dict[str, Split] = {}
    fact_ids: set[str] = set()
    facts: list[Fact] = []
    for user in raw.users:
        if user.user_id in users:
            raise ConfigError(f"{path}: user id {user.user_id!r} appears twice")
        users[user.user_id] = user.split
        for fact in user.facts:
            if fact.id in fact_ids:
                raise ConfigError(f"{path}: fact id {fact.id!r} appears twice")
            fact_ids.add(fact.id)
            _check_fact(fact, user.user_id)
            facts.append(Fact(**fact.model_dump(), user_id=user.user_id, split=user.split))

    distractors: list[Distractor] = []
    for item in raw.distractors:
        if item.user_id not in users:
            raise ConfigError(f"{path}: distractor for unknown user {item.user_id!r}")
        distractors.append(Distractor(**item.model_dump(), split=users[item.user_id]))

    def keep(s: Split) -> bool:
        return split == "all" or s == split

    return FactsDataset(
        facts=tuple(f for f in facts if keep(f.split)),
        distractors=tuple(d for d in distractors if keep(d.split)),
        general=raw.general,
    )
