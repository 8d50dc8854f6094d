"""The packaged personal-facts benchmark and its loader (no model involved)."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from seal_agent.errors import ConfigError
from seal_agent.eval.facts_data import FACTS_FILE, FactsDataset, load_facts

CATEGORIES = {"name", "place", "preference", "number", "date", "relation", "job"}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@pytest.fixture(scope="module")
def everything() -> FactsDataset:
    return load_facts(split="all")


@pytest.fixture
def raw() -> dict[str, Any]:
    return json.loads(FACTS_FILE.read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_packaged_file_loads_for_each_split(everything: FactsDataset) -> None:
    dev = load_facts()
    heldout = load_facts(split="heldout")
    assert FACTS_FILE.is_file()
    assert {f.split for f in dev.facts} == {"dev"}
    assert {f.split for f in heldout.facts} == {"heldout"}
    assert {d.split for d in dev.distractors} == {"dev"}
    assert {d.split for d in heldout.distractors} == {"heldout"}
    assert {f.user_id for f in dev.facts} == {
        f"u{i:02d}" for i in [*range(1, 7), *range(13, 17), *range(21, 25)]
    }
    assert {f.user_id for f in heldout.facts} == {
        f"u{i:02d}" for i in [*range(7, 13), *range(17, 21)]
    }
    assert len(dev.facts) + len(heldout.facts) == len(everything.facts)
    assert dev.general == heldout.general == everything.general


def test_counts(everything: FactsDataset) -> None:
    assert len(everything.facts) == 144
    assert Counter(f.split for f in everything.facts) == {"dev": 84, "heldout": 60}
    per_category = Counter(f.category for f in everything.facts)
    assert set(per_category) == CATEGORIES
    assert min(per_category.values()) >= 8
    assert len(everything.distractors) >= 40
    assert Counter(d.user_id for d in everything.distractors) == {
        f"u{i:02d}": 2 for i in range(1, 25)
    }
    assert len(everything.general) == 30


def test_each_user_states_six_facts_of_different_categories(everything: FactsDataset) -> None:
    by_user: dict[str, list[str]] = {}
    for fact in everything.facts:
        by_user.setdefault(fact.user_id, []).append(fact.category)
    assert len(by_user) == 24
    for user, categories in by_user.items():
        assert len(categories) == 6, user
        assert len(set(categories)) == 6, user


def test_answers_occur_in_statement_and_train_answers(everything: FactsDataset) -> None:
    for fact in everything.facts:
        answer = fact.answer.lower()
        assert answer in fact.statement.lower(), fact.id
        assert len(fact.train) == 3, fact.id
        for pair in fact.train:
            assert answer in pair.a.lower(), fact.id


def test_answers_do_not_appear_in_their_own_questions(everything: FactsDataset) -> None:
    for fact in everything.facts:
        words = set(_norm(fact.answer).split())
        for question in [p.q for p in fact.train] + list(fact.check):
            assert not words & set(_norm(question).split()), (fact.id, question)


def test_check_questions_are_paraphrases_never_trained(everything: FactsDataset) -> None:
    for fact in everything.facts:
        trained = {_norm(p.q) for p in fact.train}
        assert len(fact.check) == 2, fact.id
        assert len({_norm(q) for q in fact.check}) == 2, fact.id
        for question in fact.check:
            assert _norm(question) not in trained, (fact.id, question)


def test_no_answer_is_shared(everything: FactsDataset) -> None:
    owner: dict[str, str] = {}
    for fact in everything.facts:
        key = _norm(fact.answer)
        assert key not in owner, (fact.id, owner.get(key))
        owner[key] = fact.id
    by_user: dict[str, list[str]] = {}
    for fact in everything.facts:
        by_user.setdefault(fact.user_id, []).append(fact.answer)
    for user, answers in by_user.items():
        for answer in answers:
            for other in answers:
                if other != answer:
                    assert not set(_norm(answer).split()) & set(_norm(other).split()), user


def test_distractors_forbid_only_other_users_answers_of_the_same_split(
    everything: FactsDataset,
) -> None:
    answer_of = {f.answer: f for f in everything.facts}
    for item in everything.distractors:
        assert item.forbidden, item
        for answer in item.forbidden:
            fact = answer_of[answer]
            assert fact.user_id != item.user_id, item
            assert fact.split == item.split, item


def test_ids_are_unique(everything: FactsDataset) -> None:
    ids = [f.id for f in everything.facts]
    assert len(ids) == len(set(ids))
    for fact in everything.facts:
        assert fact.id.startswith(f"{fact.user_id}-f"), fact.id


def test_general_questions_have_answers(everything: FactsDataset) -> None:
    for item in everything.general:
        assert item.question.endswith("?")
        assert item.answer.strip()


def test_models_are_frozen(everything: FactsDataset) -> None:
    fact = everything.facts[0]
    with pytest.raises(ValidationError):
        fact.answer = "changed"


def test_answer_missing_from_statement_names_the_fact(tmp_path: Path, raw: dict[str, Any]) -> None:
    broken = copy.deepcopy(raw)
    fact = broken["users"][0]["facts"][0]
    fact["statement"] = "I never said it."
    with pytest.raises(ConfigError, match=fact["id"]):
        load_facts(_write(tmp_path, broken))


def test_train_answer_without_answer_names_the_fact(tmp_path: Path, raw: dict[str, Any]) -> None:
    broken = copy.deepcopy(raw)
    fact = broken["users"][7]["facts"][2]
    fact["train"][1]["a"] = "I don't know."
    # validated even when only the other split is asked for
    with pytest.raises(ConfigError, match=fact["id"]):
        load_facts(_write(tmp_path, broken), split="dev")


def test_check_question_equal_to_train_question_names_the_fact(
    tmp_path: Path, raw: dict[str, Any]
) -> None:
    broken = copy.deepcopy(raw)
    fact = broken["users"][3]["facts"][4]
    fact["check"][0] = fact["train"][0]["q"].upper().rstrip("?") + " !"
    with pytest.raises(ConfigError, match=fact["id"]):
        load_facts(_write(tmp_path, broken), split="all")


def test_duplicate_fact_id_names_the_fact(tmp_path: Path, raw: dict[str, Any]) -> None:
    broken = copy.deepcopy(raw)
    facts = broken["users"][1]["facts"]
    facts[1]["id"] = facts[0]["id"]
    with pytest.raises(ConfigError, match=facts[0]["id"]):
        load_facts(_write(tmp_path, broken))


def test_schema_violation_and_bad_split_raise_config_error(
    tmp_path: Path, raw: dict[str, Any]
) -> None:
    broken = copy.deepcopy(raw)
    broken["users"][0]["facts"][0]["category"] = "hobby"
    with pytest.raises(ConfigError):
        load_facts(_write(tmp_path, broken))
    with pytest.raises(ConfigError):
        load_facts(tmp_path / "missing.json")
    with pytest.raises(ConfigError):
        load_facts(split="train")  # type: ignore[arg-type]
