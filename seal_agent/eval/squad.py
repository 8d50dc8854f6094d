"""SEAL's knowledge-incorporation protocol on SQuAD passages (``seal-agent eval squad``).

For every passage, each condition starts from the same base state (no
adapter) and is then asked the passage's gold questions *without the passage
in context* (``context`` is the exception: the reference with the passage in
the prompt).  Gold questions are used for scoring only, never for selection:
the ``seal`` condition picks its candidate by reward on probe questions the
model wrote itself.

Conditions (SEAL's table, plus two of ours):

=============  ===================================================================
base           no passage, no training
passage        LoRA on the passage alone
selfedit       LoRA on the passage + one self-edit sampled from the base policy
seal           k candidates, best by inner-loop reward on model-written probes
seal+policy    the same with a trained self-edit policy (``--policy``)
teacher        LoRA on the passage + SEAL's own self-edit for that passage
               (Qwen2.5-7B or GPT-4.1, ``seal_selfedits_*_val.json``)
context        the passage in the prompt, no training (reference)
=============  ===================================================================

``--sequential N`` is SEAL's continual protocol instead: N passages trained
one after another into one adapter, with the recall of every passage after
every update (a retention matrix).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from seal_agent.errors import ConfigError
from seal_agent.eval.data import Passage
from seal_agent.eval.scoring import squad_scores
from seal_agent.innerloop import mean
from seal_agent.types import Interaction, InteractionKind, Message, Namespace, SelfEditFormat

if TYPE_CHECKING:
    from seal_agent.config import SealAgentConfig
    from seal_agent.innerloop import InnerLoop
    from seal_agent.models.base import LanguageModel
    from seal_agent.selfedit import Candidate, SelfEditWriter

__all__ = ["CONDITIONS", "SquadEval", "SquadSettings", "parse_teacher_edit"]

CONDITIONS = ("base", "passage", "selfedit", "seal", "seal+policy", "teacher", "context")
TRAINED = {"passage", "selfedit", "seal", "seal+policy", "teacher"}
QA = tuple[str, str]


@dataclass(frozen=True)
class SquadSettings:
    conditions: tuple[str, ...] = ("base", "passage", "selfedit", "seal", "teacher", "context")
    k: int = 3
    repeats: int = 1  # inner loops per trained condition (their mean is the passage's score)
    teacher: str = "gpt41"
    policy: str | None = None  # a policy version for ``seal+policy``
    max_new_tokens: int = 24  # greedy answers
    seed: int = 0


@dataclass
class _State:
    """One condition's outcome on one passage."""

    scores: dict[str, float]
    tokens: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def parse_teacher_edit(completion: str) -> list[str]:
    """SEAL's self-edits are free text, one implication per line (some numbered or dashed)."""
    lines = []
    for line in completion.splitlines():
        line = line.strip().lstrip("-*•").strip()
        if line[:3].rstrip(".) ").isdigit():  # "1. ..." / "12) ..."
            line = line.split(maxsplit=1)[1] if " " in line else ""
        if len(line.split()) >= 3:
            lines.append(line)
    return lines


class SquadEval:
    """Runs the conditions on passages with one loaded model and one trainer."""

    def __init__(
        self,
        config: SealAgentConfig,
        lm: LanguageModel,
        inner: InnerLoop,
        writer: SelfEditWriter,
        settings: SquadSettings,
        *,
        policy_writer: SelfEditWriter | None = None,
        teacher_edits: dict[str, list[str]] | None = None,
        stage: Callable[[str], None] | None = None,
    ) -> None:
        from seal_agent.reward import QualityScorer

        self.config = config
        self.lm = lm
        self.inner = inner
        self.writer = writer
        self.settings = settings
        self.policy_writer = policy_writer
        self.teacher_edits = teacher_edits or {}
        self.answerer = QualityScorer(
            inner.trainer.tokenizer, config.agent.system_prompt, max_new_tokens=settings.max_new_tokens
        )
        self.stage = stage or (lambda name: None)

    # -- scoring a model state ------------------------------------------------------------
    @staticmethod
    def questions(passage: Passage, *, with_passage: bool = False) -> list[QA]:
        """SEAL's question shape (topic, then question), optionally with the passage first."""
        head = f"Passage: {passage.context}\n\n" if with_passage else ""
        return [(f"{head}Topic: {passage.title}\n{q}", a) for q, a in passage.questions]

    def measure(self, qa: Sequence[QA]) -> dict[str, float]:
        """Gold log-likelihood and greedy-answer metrics of the trainer's current state."""
        model = self.inner.trainer.model
        loglik = self.inner.scorer.score(model, qa)
        answers = self.answerer.answers(model, [q for q, _ in qa])
        per = [squad_scores(p, [gold]) for p, (_, gold) in zip(answers, qa, strict=True)]
        return {
            "loglik": mean(loglik),
            "em": mean([s["em"] for s in per]),
            "f1": mean([s["f1"] for s in per]),
            "contains": mean([s["contains"] for s in per]),
            "_answers": answers,  # type: ignore[dict-item]
        }

    def _train_and_measure(self, sequences: list[str], qa: Sequence[QA], **extra: Any) -> _State:
        """``repeats`` inner loops from the base on ``sequences``; metrics averaged."""
        runs: list[dict[str, float]] = []
        tokens, t0 = 0, time.perf_counter()
        base_settings = self.inner.settings()
        for r in range(self.settings.repeats):
            self.inner.trainer.reset(None)
            settings = base_settings.model_copy(update={"seed": self.settings.seed + r})
            tokens += self.inner.trainer.train(sequences, settings).tokens
            runs.append(self.measure(qa))
        return _State(
            scores=_average(runs), tokens=tokens,
            seconds=round(time.perf_counter() - t0, 2), extra=extra,
        )

    # -- one passage ------------------------------------------------------------------------
    def run_passage(self, passage: Passage) -> dict[str, Any]:
        gold = self.questions(passage)
        source = f"{passage.title}\n{passage.context}"
        out: dict[str, _State] = {}
        for cond in self.settings.conditions:
            self.stage(cond)
            t0 = time.perf_counter()
            if cond == "base":
                self.inner.trainer.reset(None)
                out[cond] = _State(self.measure(gold))
            elif cond == "context":
                self.inner.trainer.reset(None)
                out[cond] = _State(self.measure(self.questions(passage, with_passage=True)))
            elif cond == "passage":
                out[cond] = self._train_and_measure([source], gold)
            elif cond == "selfedit":
                cand = self.writer.candidates(
                    _interaction(passage), k=1, formats=[SelfEditFormat.IMPLICATION],
                    temperature=self.config.consolidation.temperature,
                )[0]
                seqs = self.inner.sequences(cand, [source])
                out[cond] = self._train_and_measure(
                    seqs, gold, lines=len(cand.items), dropped=cand.dropped,
                    self_edit=cand.items,
                )
            elif cond == "teacher":
                edits = self.teacher_edits.get(passage.context)
                if not edits:
                    continue  # no SEAL self-edit for this passage (recorded as missing)
                lines = parse_teacher_edit(edits[0])
                out[cond] = self._train_and_measure(
                    [*lines, source], gold, lines=len(lines), teacher=self.settings.teacher
                )
            elif cond in ("seal", "seal+policy"):
                writer = self.policy_writer if cond == "seal+policy" else self.writer
                if writer is None:
                    raise ConfigError("the seal+policy condition needs a policy (--policy VERSION)")
                out[cond] = self._seal(passage, source, gold, writer)
            else:
                raise ConfigError(f"unknown condition {cond!r}; known: {', '.join(CONDITIONS)}")
            out[cond].seconds = round(time.perf_counter() - t0, 2)
        return {
            "passage": passage.id,
            "title": passage.title,
            "questions": len(gold),
            "conditions": {
                name: {
                    **{k: v for k, v in st.scores.items() if not k.startswith("_")},
                    "answers": st.scores.get("_answers"),
                    "tokens": st.tokens,
                    "seconds": st.seconds,
                    **st.extra,
                }
                for name, st in out.items()
            },
        }

    def _seal(self, passage: Passage, source: str, gold: Sequence[QA], writer: SelfEditWriter) -> _State:
        """The reward loop on one passage: k candidates, best by reward on model-written probes."""
        inter = _interaction(passage)
        probes = [(f"Topic: {passage.title}\n{p.question}", p.answer) for p in writer.probes_for(inter)]
        cands = writer.candidates(
            inter, k=self.settings.k, formats=self.config.consolidation.formats,
            temperature=self.config.consolidation.temperature,
        )
        rewards: list[float | None] = []
        best: tuple[float, Candidate] | None = None
        tokens = 0
        if probes:
            before = self.inner.score(probes, None)
            for cand in cands:
                res = self.inner.reward(cand, [source], probes, start=None, before=before)
                tokens += res.tokens
                rewards.append(res.reward)
                if res.reward is not None and (best is None or res.reward > best[0]):
                    best = (res.reward, cand)
        usable = [c for c in cands if c.items]
        if best is not None:
            chosen, selection = best[1], "reward"
        elif usable:
            chosen, selection = usable[0], "no_probes"  # nothing to select by: the first usable
        else:
            chosen, selection = None, "no_candidates"  # every line dropped: passage alone
        seqs = self.inner.sequences(chosen, [source]) if chosen is not None else [source]
        settings_note = chosen.directive.as_dict() if chosen and chosen.directive else None
        state = self._train_and_measure(
            seqs, gold, probes=len(probes), candidates=len(cands), rewards=rewards,
            selection=selection, chosen_format=chosen.format.value if chosen else None,
            directive=settings_note, self_edit=chosen.items if chosen else [],
        )
        state.tokens += tokens
        return state

    # -- SEAL's continual protocol -----------------------------------------------------------
    def sequential(
        self, passages: Sequence[Passage], condition: str = "passage",
        step: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Train passages one after another into one adapter; recall of each after each.

        ``matrix[j][i]``: mean gold log-likelihood of passage ``i`` after ``j``
        updates (row 0: the base).  Each update trains from the previous
        state on the passage (``passage``) or the passage plus one self-edit
        (``selfedit``).
        """
        if condition not in ("passage", "selfedit"):
            raise ConfigError("--sequential trains 'passage' or 'selfedit' updates")
        qas = [self.questions(p) for p in passages]
        self.inner.trainer.reset(None)
        model = self.inner.trainer.model

        def row() -> list[float]:
            return [mean(self.inner.scorer.score(model, qa)) for qa in qas]

        matrix = [row()]
        tokens = 0
        state = None
        for j, passage in enumerate(passages):
            source = f"{passage.title}\n{passage.context}"
            seqs = [source]
            if condition == "selfedit":
                cand = self.writer.candidates(
                    _interaction(passage), k=1, formats=[SelfEditFormat.IMPLICATION],
                    temperature=self.config.consolidation.temperature,
                )[0]
                seqs = self.inner.sequences(cand, [source])
            self.inner.trainer.reset(state)
            tokens += self.inner.trainer.train(seqs, self.inner.settings()).tokens
            state = self.inner.trainer.state()
            matrix.append(row())
            if step:
                step(j + 1)
        return {"condition": condition, "passages": [p.id for p in passages],
                "matrix": matrix, "tokens": tokens}


def _interaction(passage: Passage) -> Interaction:
    return Interaction(
        id=f"squad-{abs(hash(passage.id)) % 10**8}",
        namespace=Namespace(user_id="eval"),
        kind=InteractionKind.DOCUMENT,
        messages=(Message(role="user", content=passage.context),),
        created_at=datetime.now(UTC),
    )


def _average(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k in runs[0] if not k.startswith("_")]
    out: dict[str, Any] = {k: mean([r[k] for r in runs]) for k in keys}
    out["_answers"] = runs[0]["_answers"]  # the first repeat's answers, for reading
    if len(runs) > 1:
        out["loglik_repeat_spread"] = max(r["loglik"] for r in runs) - min(r["loglik"] for r in runs)
    return out
