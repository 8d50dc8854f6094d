"""The self-edit writer's parsing and quality gate, driven by a scripted
language model (pure logic: no model is loaded)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from seal_agent.config import SelfEditConfig
from seal_agent.models.base import GenerationParams
from seal_agent.selfedit import SelfEditWriter
from seal_agent.selfedit_formats import parse_implications, parse_qa, parse_rewrite
from seal_agent.types import Interaction, InteractionKind, Message, Namespace, SelfEditFormat

SOURCE = "My sister Ines lives in Reykjavik and teaches piano to 12 pupils."


class ScriptedLM:
    """Answers each prompt by the format its last line asks for."""

    name = "scripted"
    context_length = 2048

    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs
        self.calls: list[tuple[list[str], GenerationParams]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_chat_tokens(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m.content) for m in messages)

    def chat(self, messages, params=None) -> str:  # pragma: no cover - unused here
        return ""

    def complete(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        self.calls.append((list(prompts), params))
        out = []
        for prompt in prompts:
            tail = prompt.rstrip().splitlines()[-1]
            key = "probe" if params.greedy else tail
            out.append(self.outputs[key])
        return out


def _interaction(text: str = SOURCE) -> Interaction:
    return Interaction(
        id="int_1",
        namespace=Namespace(user_id="u"),
        kind=InteractionKind.CHAT,
        messages=(Message(role="user", content=text), Message(role="assistant", content="Nice.")),
        created_at=datetime.now(UTC),
    )


OUTPUTS = {
    "probe": " Where does the user's sister live?\nA: Reykjavik\nQ: Who is the user's brother?\nA: Sami",
    "-": (
        " The user has a sister named Ines.\n"
        "- Ines lives in Reykjavik.\n"
        "- Ines lives in Reykjavik.\n"  # duplicate
        "- The user's brother is called Sami.\n"  # invented name
        "- Ines does not teach piano.\n"  # contradiction
        "- la la la la la la la la la\n"  # degenerate
        "- Ines teaches 30 pupils."  # invented number
    ),
    "Rewritten:": " The user's sister Ines teaches piano in Reykjavik.",
    "Q:": (
        " Where does the user's sister live?\nA: Reykjavik\n"  # repeats a probe
        "Q: What does Ines teach?\nA: Piano\n"
        "Q: What is the user's favourite colour?\nA: Not specified"
    ),
}


def test_gate_counts_every_reason() -> None:
    lm = ScriptedLM(OUTPUTS)
    writer = SelfEditWriter(lm, SelfEditConfig(probes_per_interaction=2))
    d = writer.derive(_interaction())
    by_format: dict[SelfEditFormat, list[str]] = {}
    for e in d.self_edits:
        by_format.setdefault(e.format, []).append(e.text)
    assert by_format[SelfEditFormat.STATEMENT] == [SOURCE]
    assert by_format[SelfEditFormat.EXCHANGE] == [f"User: {SOURCE}\nAssistant: Nice."]
    assert by_format[SelfEditFormat.IMPLICATION] == [
        "The user has a sister named Ines.",
        "Ines lives in Reykjavik.",
    ]
    assert by_format[SelfEditFormat.REWRITE] == ["The user's sister Ines teaches piano in Reykjavik."]
    assert by_format[SelfEditFormat.QA] == ["Q: What does Ines teach?\nA: Piano"]
    assert [(p.question, p.answer) for p in d.probes] == [("Where does the user's sister live?", "Reykjavik")]
    assert d.report.dropped == {
        "probe": 1,  # "Sami" is not in the source
        "duplicate": 1,
        "unsupported": 2,  # Sami, 30
        "contradiction": 1,
        "degenerate": 1,
        "overlaps_probe": 1,
        "vague": 1,
    }
    assert d.report.kept["implication"] == 2
    # sampled self-edits, greedy probes, all in batched calls
    probe_call, sample_call = lm.calls
    assert probe_call[1].greedy and not sample_call[1].greedy
    assert len(sample_call[0]) == 3
    exchange = next(e for e in d.self_edits if e.format is SelfEditFormat.EXCHANGE)
    assert not exchange.retrievable


def test_questions_only_turn_derives_nothing() -> None:
    lm = ScriptedLM(OUTPUTS)
    d = SelfEditWriter(lm, SelfEditConfig()).derive(_interaction("What is the capital of Peru?"))
    assert d.self_edits == [] and d.probes == []
    assert lm.calls == []
    assert d.report.dropped_source_questions


def test_no_support_check_keeps_invented_lines() -> None:
    lm = ScriptedLM(OUTPUTS)
    d = SelfEditWriter(lm, SelfEditConfig(check_support=False)).derive(_interaction())
    texts = [e.text for e in d.self_edits]
    assert "The user's brother is called Sami." in texts


def test_parsers() -> None:
    assert parse_implications(" a fact\n- another\n\n* third") == ["a fact", "another", "third"]
    assert parse_rewrite(" One. One.\n\nTrailing") == ["One."]
    assert parse_qa(" Q1?\nA: a1\nQ: Q2?\nA: a2\nQ: dangling") == [("Q1?", "a1"), ("Q2?", "a2")]


def test_caller_probes_are_held_out_of_self_qa() -> None:
    from seal_agent.types import Probe

    caller = Probe(
        id="p1", interaction_id="int_1", namespace=Namespace(user_id="u"),
        question="What does Ines teach?", answer="Piano", source="caller",
        created_at=datetime.now(UTC),
    )
    lm = ScriptedLM(OUTPUTS)
    d = SelfEditWriter(lm, SelfEditConfig()).derive(_interaction(), write_probes=False, held_out=[caller])
    qa = [e.text for e in d.self_edits if e.format is SelfEditFormat.QA]
    assert not any("What does Ines teach?" in t for t in qa)
    assert d.report.dropped["overlaps_probe"] == 1
    assert d.probes == [] and len(lm.calls) == 1  # no probe call: the caller gave them


def test_generation_is_batched() -> None:
    lm = ScriptedLM(OUTPUTS)
    cfg = SelfEditConfig(samples_per_format=3, batch_size=4, probes_per_interaction=0)
    SelfEditWriter(lm, cfg).derive(_interaction())
    assert [len(prompts) for prompts, _ in lm.calls] == [4, 4, 1]  # 9 prompts, 4 at a time


def test_negation_is_judged_against_the_closest_sentence() -> None:
    from seal_agent.text import negation_mismatch

    source = "I have a dog named Rex. I don't eat meat."
    assert not negation_mismatch("The user has a dog named Rex.", source)
    assert negation_mismatch("The user eats meat.", source)
    assert negation_mismatch("The user has no dog named Rex.", source)
    assert not negation_mismatch("The user does not eat meat.", source)


def test_a_bad_style_or_format_is_a_config_error() -> None:
    from seal_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="style must be"):
        SelfEditWriter(None, SelfEditConfig(), style="poem")  # type: ignore[arg-type]
