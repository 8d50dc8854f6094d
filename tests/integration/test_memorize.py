"""Consolidation by behaviour (the default, memorize.py), with the real model:
the weights must *say* what they were taught, to questions never trained on,
and no memory the user could get back before may be lost.

Seeded: the same facts, probes and training give the same adapter each run;
nothing here skips when training does not take.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from seal_agent import MemoryStatus
from seal_agent.cli import app
from seal_agent.facts import said
from seal_agent.facts_store import FactStore, RecallState

pytestmark = pytest.mark.slow

FACTS = [
    "Hi! I'm Maya. Last month I adopted a beagle called Biscuit.",
    "I work as a glassblower in Tacoma.",
    "I'm allergic to peanuts, so never suggest satay to me.",
    "My favourite instrument is the bassoon.",
    "My sister Ines lives in Reykjavik.",
]
# Asked in words that no train question uses (the templates never say these).
UNSEEN = [
    ("Could you remind me what my beagle's name is?", "Biscuit"),
    ("What kind of work do I do?", "glassblower"),
    ("Which food gives me an allergic reaction?", "peanuts"),
    ("What instrument do I enjoy the most?", "bassoon"),
    ("In what city does my sister Ines live?", "Reykjavik"),
]


@pytest.fixture(scope="module")
def taught(tmp_path_factory, lm, embedder):
    """One consolidation of the five facts, shared by the tests below (it costs ~2 min)."""
    from seal_agent.agent import SealAgent
    from seal_agent.config import load_config

    home = tmp_path_factory.mktemp("memorize")
    config = load_config(home=home, agent={"derive": "inline"},
                         selfedit={"samples_per_format": 0, "probes_per_interaction": 0},
                         consolidation={"recall_k": 1})
    agent = SealAgent(config, lm=lm, embedder=embedder, user_id="maya")
    for fact in FACTS:
        agent.remember(fact)
    agent.remember("Honestly, the weather has been strange lately.")  # nothing to check
    questions = [q for q, _ in UNSEEN]
    before = {
        "memory_on": agent.answers(questions, retrieval=True),
        "general": agent.answers(["How many legs does a spider have?"], retrieval=False),
    }
    report = agent.consolidate()
    yield agent, report, before
    agent.close()


def test_the_weights_say_what_they_were_taught(taught):
    agent, report, _ = taught
    assert report.status == "promoted", report.reason
    answers = agent.answers([q for q, _ in UNSEEN], retrieval=False)
    hits = [said(a, key) for a, (_, key) in zip(answers, UNSEEN, strict=True)]
    assert sum(hits) >= 3, list(zip(answers, hits, strict=True))
    # the bare base model says fewer of them (it may guess "peanuts"): the adapter did this
    base = agent.answers([q for q, _ in UNSEEN], retrieval=False, weights=False)
    assert sum(said(a, key) for a, (_, key) in zip(base, UNSEEN, strict=True)) < sum(hits)


GENERAL = [("How many legs does a spider have?", "8"), ("What is the capital of France?", "Paris"),
           ("What is the opposite of hot?", "cold"), ("Which day comes after Monday?", "Tuesday"),
           ("How many days are in a week?", "7"), ("What color is grass?", "green")]


def test_memory_on_answers_did_not_fall_and_the_gate_held(taught):
    agent, report, before = taught
    questions = [q for q, _ in UNSEEN]
    after = agent.answers(questions, retrieval=True)
    right_before = sum(said(a, k) for a, (_, k) in zip(before["memory_on"], UNSEEN, strict=True))
    right_after = sum(said(a, k) for a, (_, k) in zip(after, UNSEEN, strict=True))
    assert right_after >= right_before
    r = report.recall
    assert r["general_after"] >= int(agent.config.consolidation.min_general_share * r["general_base"])
    assert not r["leaked"]


@pytest.mark.xfail(strict=True, reason=(
    "known gap (issue 9): on general questions the gate never saw, the adapter kept 2 of the 5 "
    "the base answers right (2026-12-03); the target is 90%. Strict: this turns red once fixed."))
def test_general_questions_the_gate_never_saw_stay_answered(taught):
    agent, _, _ = taught
    # most of what the base gets right stays right, and no user fact enters an answer
    qs = [q for q, _ in GENERAL]
    base = agent.answers(qs, retrieval=False, weights=False)
    mine = agent.answers(qs, retrieval=False)
    base_right = [i for i, (a, (_, k)) in enumerate(zip(base, GENERAL, strict=True)) if said(a, k)]
    kept = [i for i in base_right if said(mine[i], GENERAL[i][1])]
    assert len(base_right) >= 3 and len(kept) >= len(base_right) - 2, (base, mine)
    assert not any(said(a, key) for a in mine for _, key in UNSEEN), mine


def test_only_verified_memories_leave_retrieval_and_none_is_lost(taught):
    agent, report, _ = taught
    facts = FactStore(agent.journal)
    states = facts.states("maya", "default")
    for interaction in [agent.journal.get_interaction(i) for i in states]:
        record = states[interaction.id]
        statuses = {e.status for e in agent.journal.self_edits(interaction_id=interaction.id)
                    if e.retrievable}
        if record.state is RecallState.SAID:
            assert record.said == record.checks > 0
            assert statuses == {MemoryStatus.CONSOLIDATED}  # drained: the weights say it
        else:
            assert statuses == {MemoryStatus.BUFFERED}  # still retrievable
    said_ones = [r for r in states.values() if r.state is RecallState.SAID]
    assert len(said_ones) == report.recall["verified_new"] >= 3
    # the opinion had nothing to check: marked, never trained, still retrievable
    uncheckable = [r for r in states.values() if r.state is RecallState.UNCHECKABLE]
    assert len(uncheckable) == 1
    hits = agent.recall("what's the weather been like", top_k=3)
    assert any("weather" in h.text for h in hits)


def test_status_adapters_show_and_memories_list_say_what_the_weights_hold(taught):
    agent, report, _ = taught
    home = ["--home", str(agent.config.home)]
    cli = CliRunner()
    out = cli.invoke(app, ["status", *home])
    assert out.exit_code == 0, out.output
    said_line = next(line for line in out.output.splitlines() if "said from the weights" in line)
    recall = report.recall
    assert f"{recall['weights_said_after']}/{recall['check_questions']}" in said_line
    out = cli.invoke(app, ["memories", "list", "--user", "maya", *home])
    assert out.exit_code == 0 and "said 2/2" in out.output and "uncheckable" in out.output
    out = cli.invoke(app, ["adapters", "show", report.version_id, *home])
    assert out.exit_code == 0, out.output
    assert f"memories said from these weights: {recall['verified_new']}/" in out.output
    manifest = json.loads((agent.adapters.active("maya", "default").path / "manifest.json").read_text())
    assert manifest["metrics"]["weights_said_after"] == recall["weights_said_after"]


def test_a_second_consolidation_keeps_the_first_and_a_contradiction_wins(taught):
    agent, first, _ = taught
    agent.remember("My sister Ines lives in Bergen.")  # moved: the newer city wins
    agent.remember("My brother Tomas works as a pilot.")
    report = agent.consolidate()
    assert report.status == "promoted", report.reason
    assert report.recall["superseded"] == 1
    answers = agent.answers(["Where does my sister live?", "What does my brother do for a living?",
                             "What is my job?"], retrieval=True)
    assert said(answers[0], "Bergen") and not said(answers[0], "Reykjavik"), answers[0]
    assert said(answers[1], "pilot"), answers[1]
    assert said(answers[2], "glassblower"), answers[2]  # the first batch is still there
    old = [i for i, r in FactStore(agent.journal).states("maya", "default").items()
           if r.state is RecallState.SUPERSEDED]
    assert len(old) == 1
    assert all(e.status is MemoryStatus.REJECTED for e in agent.journal.self_edits(interaction_id=old[0]))
