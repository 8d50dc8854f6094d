"""The pure rules of consolidation by behaviour: what drains, what a newer fact supersedes,
and which facts one benchmark user can hold at once."""

from __future__ import annotations

from datetime import UTC, datetime

from seal_agent.eval.facts import pool
from seal_agent.eval.facts_data import load_facts
from seal_agent.facts import build_probes, question_key
from seal_agent.facts_store import StoredFact
from seal_agent.memorize import BatchMemory, _superseded
from seal_agent.memorize_gate import drained_by, held_for_leaks, lost_memories, settle_drain
from seal_agent.prompts import GENERAL_CHECKS, REPLAY_PROMPTS
from seal_agent.types import Interaction, InteractionKind, Message, Namespace


def test_a_memory_drains_only_when_the_weights_say_its_checks() -> None:
    said = {"all": [True, True], "half": [True, False], "none": [False, False], "unchecked": []}
    assert drained_by(said, 1.0) == {"all"}
    assert drained_by(said, 0.5) == {"all", "half"}
    assert "unchecked" not in drained_by(said, 0.0)  # nothing to check: never drained


def test_a_memory_the_others_pull_away_with_memory_on_stays_retrievable() -> None:
    # "home" is said from the weights, but once drained, what stays retrievable
    # ("grew up in Kalamazoo") pulls its memory-on answer away; keeping it back fixes that
    asked: list[set[str]] = []

    def memory_on(drain: set[str]) -> dict[str, list[bool]]:
        asked.append(set(drain))
        return {"home": [("home" not in drain)] * 2, "dog": [True, True], "job": [False, True]}

    drain, on_after = settle_drain({"home", "dog"}, memory_on, 1.0)
    assert drain == {"dog"}
    assert asked == [{"home", "dog"}, {"dog"}]  # asked again once "home" stayed
    assert on_after is not None and on_after["home"] == [True, True]
    # no buffer: nothing to ask, the weights decide
    assert settle_drain({"dog"}, lambda d: None, 1.0) == ({"dog"}, None)


def test_memory_on_answers_that_never_settle_drain_nothing_they_miss() -> None:
    flip = iter(range(100))

    def memory_on(drain: set[str]) -> dict[str, list[bool]]:  # each round misses the other one
        n = next(flip)
        return {"a": [n % 2 == 0], "b": [n % 2 == 1]}

    drain, _ = settle_drain({"a", "b"}, memory_on, 1.0, rounds=3)
    assert drain <= {"a", "b"} and len(drain) <= 1


def test_a_memory_is_lost_only_when_nothing_says_it_after() -> None:
    before = {"kept": [True, False], "weights": [True, True], "gone": [False, True], "never": [False]}
    after = {"kept": [False, True], "weights": [False, False], "gone": [False, False], "never": [False]}
    weights = {"kept": [False, False], "weights": [True, False], "gone": [False, False], "never": [False]}
    assert lost_memories(before, after, weights) == ["gone"]
    assert lost_memories(None, after, weights) == []


def _memory(iid: str, text: str, new: bool) -> BatchMemory:
    facts, _ = build_probes(text)
    interaction = Interaction(
        id=iid, namespace=Namespace(user_id="u"), kind=InteractionKind.DOCUMENT,
        messages=(Message(role="user", content=text),), created_at=datetime.now(UTC))
    return BatchMemory(interaction, StoredFact(iid, tuple(facts)), new=new)


def test_the_newer_answer_to_the_same_question_supersedes_the_older() -> None:
    old = _memory("old", "My sister Ines lives in Reykjavik.", new=False)
    other = _memory("other", "I work as a glassblower in Tacoma.", new=False)
    moved = _memory("moved", "My sister Ines lives in Bergen.", new=True)
    assert _superseded([moved], [old, other]) == {"old"}
    same = _memory("same", "My sister Ines lives in Reykjavik.", new=True)
    assert _superseded([same], [old]) == set()  # the same answer again contradicts nothing


def test_only_the_memories_holding_a_leaked_answer_are_trained_without() -> None:
    marathons = _memory("marathons", "I have run 12 marathons.", new=True)
    dog = _memory("dog", "My dog is called Marzipan.", new=True)
    earlier = _memory("earlier", "I work as a glassblower in Tacoma.", new=False)
    assert held_for_leaks([earlier, marathons, dog], ["12"]) == ["marathons"]
    assert held_for_leaks([earlier, marathons, dog], ["glassblower", "12"]) == ["earlier", "marathons"]
    assert held_for_leaks([earlier, marathons, dog], []) == []
    assert held_for_leaks([earlier, marathons, dog], ["Oslo"]) == []  # no memory holds it
    # nothing new would be left to train: no retry, the gate decides on what it has
    assert held_for_leaks([earlier, marathons], ["12"]) == []


def test_pool_holds_no_two_facts_asked_the_same_question() -> None:
    for split in ("dev", "heldout"):
        facts = pool(load_facts(split=split).facts)  # type: ignore[arg-type]
        assert len(facts) >= 34
        seen: set[str] = set()
        for f in facts:
            keys = {question_key(q) for q in [*(p.q for p in f.train), *f.check]}
            assert not keys & seen
            seen |= keys


def test_no_fact_of_a_pool_supersedes_another() -> None:
    # one person said them all: consolidation must not read any two as a contradiction
    # (two cats, one "What is my cat's name?"), or the eval counts a superseded one as lost
    for split in ("dev", "heldout"):
        facts = pool(load_facts(split=split).facts)  # type: ignore[arg-type]
        memories = [_memory(f.id, f.statement, new=True) for f in facts]
        assert _superseded(memories, []) == set(), split


def test_the_gate_and_replay_never_see_the_benchmark_general_questions() -> None:
    bench = {g.question for g in load_facts(split="all").general}
    assert not bench & {q for q, _ in GENERAL_CHECKS}
    assert not bench & set(REPLAY_PROMPTS)
    assert not set(REPLAY_PROMPTS) & {q for q, _ in GENERAL_CHECKS}


def test_the_backstop_answers_again_only_for_a_drained_match_the_answer_misses() -> None:
    from seal_agent.backstop import Drained, missed
    from seal_agent.types import Memory, MemoryStatus, SelfEditFormat

    def drained(iid: str, *keys: str) -> Drained:
        memory = Memory(id=f"e-{iid}", text="...", score=0.5, format=SelfEditFormat.STATEMENT,
                        interaction_id=iid, status=MemoryStatus.CONSOLIDATED)
        return Drained(memory, keys)

    dog, city, height = drained("dog", "Biscuit", "beagle"), drained("city", "Lisbon"), drained("h", "193")
    # any one of a memory's keys said is enough
    assert missed("You have a beagle.", [dog]) == []
    assert missed("Your parents live in Tbilisi.", [dog, city]) == [dog, city]
    assert missed("You are 193 cm tall.", [height, city]) == [city]
    assert missed("anything", []) == []


def test_softening_finds_the_largest_scale_that_keeps_the_general_answers() -> None:
    from seal_agent.memorize_gate import largest_passing_scale

    asked: list[float] = []

    def up_to(limit: float):
        def passes(scale: float) -> bool:
            asked.append(scale)
            return scale <= limit
        return passes

    assert largest_passing_scale(up_to(0.8), 0.5, 3) == 0.75 and asked == [0.75, 0.875, 0.8125]
    asked.clear()
    assert largest_passing_scale(up_to(0.6), 0.5, 3) == 0.5625 and asked == [0.75, 0.625, 0.5625]
    assert largest_passing_scale(up_to(0.4), 0.5, 3) is None  # nothing above the floor passes
    assert largest_passing_scale(up_to(0.99), 0.5, 0) is None  # softening off
