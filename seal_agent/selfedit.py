"""Interaction → self-edits and probes.

From each interaction the model writes self-edits in SEAL's formats
(implications, rewrites, self-QA), parsed into one training sequence per
item; the user's own statement and the raw exchange are always kept too.
Probe questions are written separately (greedy) and held apart: the
consolidation step scores itself on them.

A 135M model's output is often poor, so every item passes the same gate:
empty, degenerate (repetition loops), duplicate, unsupported by the source
(names and numbers the user never said), or over the per-sample cap — each
dropped item is counted by reason in the interaction's derive report.
How each format's completion is parsed lives in :mod:`seal_agent.selfedit_formats`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from seal_agent.config import SelfEditConfig
from seal_agent.errors import ConfigError
from seal_agent.journal import new_id
from seal_agent.models.base import GenerationParams, LanguageModel
from seal_agent.prompts import (
    DIRECTIVE_PROMPT,
    PASSAGE_PROBE_PROMPT,
    PASSAGE_PROMPTS,
    PROBE_PROMPT,
    PROMPTS,
)
from seal_agent.selfedit_formats import (
    Directive,
    parse_directive,
    parse_implications,
    parse_qa,
    parse_rewrite,
)
from seal_agent.text import (
    content_words,
    drop_questions,
    is_degenerate,
    negation_mismatch,
    normalize,
    split_chunks,
    support,
    unsupported_terms,
)
from seal_agent.types import (
    DeriveReport,
    Interaction,
    InteractionKind,
    Probe,
    SelfEdit,
    SelfEditFormat,
)

__all__ = ["Candidate", "Derivation", "SelfEditWriter"]

_VAGUE_ANSWERS = ("not specified", "not mentioned", "unknown", "i don't know", "not stated")

@dataclass
class Candidate:
    """One sampled self-edit for consolidation: its training items and settings."""

    format: SelfEditFormat
    prompt: str
    completion: str
    items: list[str]  # gated training sequences (faithful lines only)
    directive: Directive | None
    dropped: dict[str, int]


@dataclass
class Derivation:
    self_edits: list[SelfEdit]
    probes: list[Probe]
    report: DeriveReport


@dataclass
class _Gate:
    """Counts what was kept and what was dropped, by reason."""

    source: str
    check_support: bool
    min_support: float
    kept: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    seen: set[str] = field(default_factory=set)

    def admit(self, fmt: str, text: str, *, grounded_in: str | None = None) -> bool:
        if not text.strip():
            self.dropped["empty"] += 1
            return False
        if is_degenerate(text):
            self.dropped["degenerate"] += 1
            return False
        key = normalize(text)
        if key in self.seen:
            self.dropped["duplicate"] += 1
            return False
        if self.check_support:
            claim = grounded_in or text
            if unsupported_terms(claim, self.source) or support(claim, self.source) < self.min_support:
                self.dropped["unsupported"] += 1
                return False
            if negation_mismatch(text, self.source):
                self.dropped["contradiction"] += 1
                return False
        self.seen.add(key)
        self.kept[fmt] += 1
        return True


class SelfEditWriter:
    """Writes self-edits and probes with a language model (the self-edit policy)."""

    def __init__(
        self,
        lm: LanguageModel,
        config: SelfEditConfig,
        *,
        author: str | None = None,
        style: Literal["user", "passage"] | None = None,
    ):
        """``style``: prompts about what a user said (the agent's default), or
        about a passage of text (documents; SEAL's knowledge-incorporation
        setting, used by ``seal-agent eval squad`` and policy training); None:
        ``config.style``."""
        style = style or config.style
        if style not in ("user", "passage"):
            raise ConfigError(f"style must be 'user' or 'passage', not {style!r}")
        self.lm = lm
        self.config = config
        self.author = author or lm.name
        self.style = style
        label = "Passage:" if style == "passage" else "Statement:"
        self._stops = (f"\n\n{label}", f"\n{label}")

    def prompt(self, fmt: SelfEditFormat, source: str) -> str:
        """The completion prompt that asks for one ``fmt`` self-edit of ``source``."""
        if self.style == "passage":
            table = PASSAGE_PROMPTS
        else:
            table = {**PROMPTS, SelfEditFormat.DIRECTIVE: DIRECTIVE_PROMPT}
        if fmt not in table:
            raise ConfigError(f"no {self.style} prompt for the {fmt.value} format")
        return table[fmt].format(source=_one_line(source))

    def derive(
        self,
        interaction: Interaction,
        *,
        write_probes: bool = True,
        held_out: Sequence[Probe] = (),
    ) -> Derivation:
        """Self-edits and probes for one interaction.

        ``held_out`` are probes that already exist (the caller's): self-QA
        items that repeat their questions are dropped like those repeating a
        model-written probe, so consolidation never trains on its own test.
        """
        started = time.perf_counter()
        cfg = self.config
        now = datetime.now(UTC)
        # Facts come from what the user stated: questions state nothing, and
        # the assistant's half is the small model's own (possibly wrong) words.
        source = drop_questions(interaction.user_text)
        chunks = split_chunks(source, cfg.max_source_chars) if source else []
        gate = _Gate(source=source, check_support=cfg.check_support, min_support=cfg.min_support)
        edits = self._kept(interaction, source, chunks, gate, now)

        # Probes first, greedy, so self-QA items that repeat a probe can be dropped.
        probes: list[Probe] = []
        if write_probes and cfg.probes_per_interaction > 0 and chunks:
            probes = self._write_probes(interaction, chunks, gate)
        probe_questions = {normalize(p.question) for p in [*probes, *held_out]}
        edits += self._sampled(interaction, chunks, probe_questions, gate, now)

        report = DeriveReport(
            kept={"statement": len(chunks), "exchange": int(bool(chunks)), **dict(gate.kept)},
            dropped_source_questions=" ".join(source.split()) != " ".join(interaction.user_text.split()),
            dropped=dict(gate.dropped),
            probes=len(probes),
            seconds=round(time.perf_counter() - started, 3),
            author=self.author,
        )
        return Derivation(self_edits=edits, probes=probes, report=report)

    def _self_edit(
        self, interaction: Interaction, fmt: SelfEditFormat, text: str, now: datetime,
        *, retrievable: bool = True, sample: str | None = None,
    ) -> SelfEdit:
        return SelfEdit(
            id=new_id("mem"),
            interaction_id=interaction.id,
            namespace=interaction.namespace,
            format=fmt,
            text=text,
            author=self.author if fmt not in _KEPT else "source",
            sample_id=sample,
            retrievable=retrievable,
            created_at=now,
        )

    def _kept(
        self, interaction: Interaction, source: str, chunks: list[str], gate: _Gate, now: datetime
    ) -> list[SelfEdit]:
        """What is always kept: the user's own words (retrievable) and the raw exchange
        (one training sequence, not retrieved: the answer half is the model's)."""
        edits = []
        for chunk in chunks:
            edits.append(self._self_edit(interaction, SelfEditFormat.STATEMENT, chunk, now))
            gate.seen.add(normalize(chunk))
        # A turn that only asked questions states nothing: nothing to keep.
        if chunks and interaction.kind is InteractionKind.CHAT:
            exchange = "\n".join(f"{m.role.capitalize()}: {m.content}" for m in interaction.messages)
            edits.append(self._self_edit(interaction, SelfEditFormat.EXCHANGE, exchange, now,
                                         retrievable=False))
        elif chunks:
            edits.append(self._self_edit(interaction, SelfEditFormat.EXCHANGE, source, now,
                                         retrievable=False))
        return edits

    def _sampled(
        self, interaction: Interaction, chunks: list[str], probe_questions: set[str],
        gate: _Gate, now: datetime,
    ) -> list[SelfEdit]:
        """Sampled self-edits: every chunk x format x sample in one batched call, gated."""
        cfg = self.config
        jobs = [
            (fmt, chunk)
            for chunk in chunks
            for fmt in cfg.formats
            for _ in range(cfg.samples_per_format)
        ]
        if not jobs:
            return []
        params = GenerationParams(
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            stop=(self._stops[0], "\n\n"),
            stop_on_repeated_line=True,
        )
        outputs = self._complete([self.prompt(fmt, chunk) for fmt, chunk in jobs], params)
        edits = []
        for (fmt, _chunk), output in zip(jobs, outputs, strict=True):
            sample = new_id("smp")
            for text, grounded in self._items(fmt, output, probe_questions, gate):
                if gate.admit(fmt.value, text, grounded_in=grounded):
                    edits.append(self._self_edit(interaction, fmt, text, now, sample=sample))
        return edits

    def _complete(self, prompts: list[str], params: GenerationParams) -> list[str]:
        """Completions of ``prompts``, ``batch_size`` at a time."""
        size = self.config.batch_size
        outputs: list[str] = []
        for start in range(0, len(prompts), size):
            outputs += self.lm.complete(prompts[start : start + size], params)
        return outputs

    def candidates(
        self,
        interaction: Interaction,
        *,
        k: int,
        formats: Sequence[SelfEditFormat],
        temperature: float,
        held_out: Sequence[Probe] = (),
        seed: int | None = None,
    ) -> list[Candidate]:
        """Sample ``k`` self-edits for the reward loop, formats taken in turn.

        ``seed`` makes the samples reproducible (None: unseeded).

        Every line passes the same quality gate as derivation (faithfulness
        to the user's own words first): a hallucinated fact is dropped and
        counted before anything is trained on it.
        """
        cfg = self.config
        source = drop_questions(interaction.user_text)
        if not source:
            return []
        chunk = _one_line(split_chunks(source, cfg.max_source_chars)[0])
        jobs = [formats[i % len(formats)] for i in range(k)]
        prompts = [self.prompt(fmt, chunk) for fmt in jobs]
        params = GenerationParams(
            max_new_tokens=cfg.max_new_tokens + 24,
            temperature=temperature,
            top_p=cfg.top_p,
            stop=self._stops,
            stop_on_repeated_line=True,
            seed=seed,
        )
        outputs = self._complete(prompts, params)
        probe_questions = {normalize(p.question) for p in held_out}
        result = []
        for fmt, prompt, output in zip(jobs, prompts, outputs, strict=True):
            gate = _Gate(source=source, check_support=cfg.check_support, min_support=cfg.min_support)
            directive = None
            body = output
            if fmt is SelfEditFormat.DIRECTIVE:
                body, directive = parse_directive(output)
            else:
                body = body.split("\n\n")[0]
            parse_as = SelfEditFormat.IMPLICATION if fmt is SelfEditFormat.DIRECTIVE else fmt
            items = [
                text
                for text, grounded in self._items(parse_as, body, probe_questions, gate)
                if gate.admit(fmt.value, text, grounded_in=grounded)
            ]
            result.append(
                Candidate(
                    format=fmt,
                    prompt=prompt,
                    completion=output,
                    items=items,
                    directive=directive,
                    dropped=dict(gate.dropped),
                )
            )
        return result

    def probes_for(self, interaction: Interaction) -> list[Probe]:
        """Model-written probes for an interaction that has none (greedy, gated)."""
        source = drop_questions(interaction.user_text)
        if not source or self.config.probes_per_interaction == 0:
            return []
        chunks = split_chunks(source, self.config.max_source_chars)
        gate = _Gate(source=source, check_support=True, min_support=self.config.min_support)
        return self._write_probes(interaction, chunks, gate)

    def _items(
        self, fmt: SelfEditFormat, output: str, probe_questions: set[str], gate: _Gate
    ) -> list[tuple[str, str | None]]:
        """Parse one sample into (item text, text to check for support)."""
        cap = self.config.max_items_per_sample
        if fmt is SelfEditFormat.IMPLICATION:
            items: list[tuple[str, str | None]] = [(x, None) for x in parse_implications(output)]
        elif fmt is SelfEditFormat.REWRITE:
            items = [(x, None) for x in parse_rewrite(output)]
        else:
            items = []
            for question, answer in parse_qa(output):
                if normalize(question) in probe_questions:
                    gate.dropped["overlaps_probe"] += 1  # probes must stay held apart
                    continue
                if not content_words(answer) or any(v in answer.lower() for v in _VAGUE_ANSWERS):
                    gate.dropped["vague"] += 1
                    continue
                items.append((f"Q: {question}\nA: {answer}", answer))
        if not items and output.strip():
            gate.dropped["unparsed"] += 1
        if len(items) > cap:
            gate.dropped["over_cap"] += len(items) - cap
            items = items[:cap]
        return items

    def _write_probes(self, interaction: Interaction, chunks: list[str], gate: _Gate) -> list[Probe]:
        """Greedy question-answer pairs whose answers the source states."""
        params = GenerationParams(
            max_new_tokens=48 * self.config.probes_per_interaction,
            stop=(self._stops[0], "\n\n"),
            stop_on_repeated_line=True,
        )
        probe_prompt = PASSAGE_PROBE_PROMPT if self.style == "passage" else PROBE_PROMPT
        prompts = [probe_prompt.format(source=_one_line(c)) for c in chunks]
        outputs = self._complete(prompts, params)
        source_words = content_words(" ".join(chunks))
        probes: list[Probe] = []
        questions: set[str] = set()
        now = datetime.now(UTC)
        for output in outputs:
            for question, answer in parse_qa(output):
                key = normalize(question)
                answer_words = content_words(answer)
                if (
                    key in questions
                    or not answer_words
                    or not answer_words <= source_words  # the answer must be stated
                    or is_degenerate(question)
                ):
                    gate.dropped["probe"] += 1
                    continue
                questions.add(key)
                probes.append(
                    Probe(
                        id=new_id("prb"),
                        interaction_id=interaction.id,
                        namespace=interaction.namespace,
                        question=question,
                        answer=answer,
                        source="model",
                        created_at=now,
                    )
                )
                if len(probes) >= self.config.probes_per_interaction:
                    return probes
        return probes


_KEPT = {SelfEditFormat.STATEMENT, SelfEditFormat.EXCHANGE}


def _one_line(text: str) -> str:
    return " ".join(text.split())
