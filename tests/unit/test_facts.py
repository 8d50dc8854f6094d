"""Pure logic of facts.py: person, keys, pair checks, templates, train/check split."""

from __future__ import annotations

import pytest

from seal_agent.fact_check import check_pair, second_person
from seal_agent.fact_templates import relation_pairs
from seal_agent.facts import build_probes, key_aliases, model_pairs, question_key, said


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I work as a glassblower in Tacoma.", "You work as a glassblower in Tacoma."),
        ("My sister lives in Oslo.", "Your sister lives in Oslo."),
        ("Hi! I am Maya and I was born in Oslo.", "Hi! You are Maya and you were born in Oslo."),
        ("I'm allergic to peanuts.", "You're allergic to peanuts."),
        ("Last month I adopted a beagle.", "Last month you adopted a beagle."),
    ],
)
def test_second_person(text: str, expected: str) -> None:
    assert second_person(text) == expected


def test_said_is_normalised_and_knows_numbers_and_ordinals() -> None:
    assert said("Your dog is called Biscuit.", "Biscuit")
    assert said("You have three cats.", "3")
    assert said("You have 3 cats.", "three")
    assert said("It is on June 9th.", "June 9")
    assert not said("Your dog is called Biscuits-and-gravy", "Biscuit")  # whole words only
    assert not said("I don't know.", "Biscuit")
    assert said("You live in Reykjavík", "Reykjavik", ["Reykjavík"])


def test_key_aliases() -> None:
    assert "seven" in key_aliases("7")
    assert "26" in key_aliases("26th")
    assert key_aliases("Oslo") == ["oslo"]


@pytest.mark.parametrize(
    ("question", "answer", "key", "reason"),
    [
        ("What is my job?", "You work as a glassblower.", "glassblower", None),
        ("What is my job?", "You work as a glassblower.", "potter", "key_not_in_source"),
        ("What is my job?", "You work with glass.", "glassblower", "key_not_in_answer"),
        ("Am I a glassblower?", "You work as a glassblower.", "glassblower", "question_gives_key"),
        ("What is my job in Seattle?", "You work as a glassblower.", "glassblower", "unsupported"),
        ("What is your job?", "You work as a glassblower.", "glassblower", "person"),
        ("What is my job?", "I work as a glassblower.", "glassblower", "person"),
        ("What is the most common job?", "Glassblower.", "glassblower", "person"),
        ("What is my job", "You work as a glassblower.", "glassblower", "shape"),
        ("Do you remember my job?", "You work as a glassblower.", "glassblower", None),
    ],
)
def test_check_pair(question: str, answer: str, key: str, reason: str | None) -> None:
    assert check_pair(question, answer, key, "I work as a glassblower in Tacoma.") == reason


def test_model_pairs_fix_person_find_the_key_and_drop_inventions() -> None:
    source = "I work as a glassblower. My brother Tomas works as a pilot."
    output = (
        "What's your job? | Your job is a glassblower.\n"
        "2. What is your brother's job? | My brother is a pilot.\n"
        "3. What's your cat's name? | Your cat's name is Luna.\n"
        "4. What's your favourite colour? | Your favourite colour is blue."
    )
    pairs, dropped = model_pairs(output, source)
    assert [(p.question, p.answer, p.key) for p in pairs] == [
        ("What's my job?", "Your job is a glassblower.", "glassblower"),
        ("What is my brother's job?", "Your brother is a pilot.", "pilot"),
    ]
    assert sum(dropped.values()) == 2  # Luna and blue: never said by the user


@pytest.mark.parametrize(
    ("statement", "key", "a_question"),
    [
        ("My sister Ines lives in Reykjavik.", "Reykjavik", "Where does my sister live?"),
        ("I work as a glassblower in Tacoma.", "glassblower", "What is my job?"),
        ("I'm allergic to peanuts, so never suggest satay to me.", "peanuts", "What am I allergic to?"),
        ("My favourite instrument is the bassoon.", "bassoon", "What is my favourite instrument?"),
        ("I have 3 cats at home.", "3", "How many cats do I have?"),
        ("My birthday is on June 9.", "June 9", "When is my birthday?"),
        ("My brother Tomas works as a pilot.", "pilot", "What does my brother do for a living?"),
        ("I have run 16 marathons so far.", "16", "How many marathons have I run?"),
        ("I live in Duluth now, right by the lake.", "Duluth", "Where do I live?"),
        ("Our house number is 418.", "418", "What is my house number?"),
        ("When I was nine I had a hamster named Pebble.", "Pebble", "What is my hamster called?"),
        ("My cousin, Eustace, lives by the sea.", "Eustace", "What is my cousin's name?"),
        ("My car registration expires on March 3.", "March 3", "When does my car registration expire?"),
        ("I passed my exam on June 21.", "June 21", "When did I pass my exam?"),
        ("I swim at Brightwater Pool every Sunday.", "Brightwater Pool", "Where do I swim?"),
        ("We got married in Valletta.", "Valletta", "Where did we get married?"),
        ("I wear a size 9 glove.", "9", "What size glove do I wear?"),
        ("I'd love to become a beekeeper one day.", "beekeeper", "What would I love to become?"),
        ("I live on the 12th floor.", "12th", "Which floor do I live on?"),
        # written with the dev set's second batch (u21-u24), not from held-out statements
        ("We named our hamster Biscuit.", "Biscuit", "What did I name my hamster?"),
        ("Everyone calls me Dodo at work.", "Dodo", "What is my nickname?"),
        ("I'm 41 years old.", "41", "How old am I?"),
        ("There are 7 rose bushes in my yard.", "7", "How many rose bushes are in my yard?"),
        ("My car has 5 doors.", "5", "How many doors does my car have?"),
        ("My son is training to be a pilot.", "pilot", "What is my son training to be?"),
        ("My son was born on May 2.", "May 2", "When was my son born?"),
        ("I was raised in Antwerp.", "Antwerp", "Where was I raised?"),
        ("We camp near Lake Geneva.", "Lake Geneva", "Where do we camp?"),
        ("I drive a rusty Volkswagen.", "Volkswagen", "What do I drive?"),
        ("I've owned a Leica camera for ages.", "Leica", "What have I owned?"),
        ("I met Priya at university.", "Priya", "Who did I meet?"),
        ("I teach pottery on weekends.", "pottery", "What do I teach?"),
        ("My favourite sandwich-filling is egg salad.", "egg salad", "What is my favourite sandwich-filling?"),
    ],
)
def test_relation_templates(statement: str, key: str, a_question: str) -> None:
    pairs = relation_pairs(statement)
    assert pairs, statement
    assert pairs[0].key == key
    assert a_question in [p.question for p in pairs]
    for p in pairs:  # every template pair passes the same check as the model's
        assert check_pair(p.question, p.answer, p.key, statement) is None


def test_a_capitalised_word_is_not_a_name_unless_it_is_capitalised() -> None:
    # "I'm training" must not make "training" the user's name
    keys = [p.key for p in relation_pairs("I have run 16 marathons and I'm training for another.")]
    assert "training" not in keys


def test_build_probes_splits_train_and_check_apart() -> None:
    facts, _ = build_probes("My sister Ines lives in Reykjavik.", n_train=3, n_check=2)
    (fact,) = facts
    assert fact.key == "Reykjavik"
    assert len(fact.train) == 3 and len(fact.check) == 2
    train_q = {question_key(p.question) for p in fact.train}
    assert not train_q & {question_key(p.question) for p in fact.check}


def test_two_facts_in_one_statement_get_their_own_keys() -> None:
    facts, _ = build_probes("My dog is called Biscuit and I live in Oslo.")
    assert [f.key for f in facts] == ["Biscuit", "Oslo"]


def test_an_opinion_has_no_checkable_answer() -> None:
    facts, _ = build_probes("Honestly, the weather has been strange lately.")
    assert facts == []
    # a thought about a named thing is no fact about the user
    assert build_probes("I think Paris is overrated.")[0] == []


def test_question_key_spells_out_contractions() -> None:
    assert question_key("What's my job?") == question_key("What is my job")


def test_an_initial_stays_inside_the_key_and_the_answer_ends_cleanly() -> None:
    pairs = relation_pairs("My favorite author is Ursula K. Le Guin; I reread her books every winter.")
    assert {p.key for p in pairs} == {"Ursula K. Le Guin"}
    assert pairs[0].answer == "Your favorite author is Ursula K. Le Guin."
    # a sentence's full stop still ends a clause and a key
    assert [p.key for p in relation_pairs("I live in Duluth. My dog is called Rex.")][::5] == ["Duluth", "Rex"]


def test_more_train_questions_than_templates_come_in_other_frames_never_from_checks() -> None:
    (fact,) = build_probes("My dog is called Marzipan, he's a terrier.", n_train=6, n_check=2)[0]
    assert len(fact.train) == 6
    questions = [question_key(p.question) for p in fact.train]
    assert len(set(questions)) == 6
    assert "Remind me, what is my dog called?" in [p.question for p in fact.train]
    checks = {question_key(p.question) for p in fact.check}
    # a framed question holds a train question, never a check question
    assert not any(c in q for q in questions for c in checks)
    assert all(p.answer == fact.train[0].answer for p in fact.train)
