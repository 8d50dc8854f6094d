"""Agent memory on long conversations (``seal-agent eval locomo|longmemeval``).

Each conversation goes through the real agent, as a user's would: its turns
are handed to ``SealAgent.remember`` under one namespace per conversation
(session dates kept in the text), self-edits are derived, the questions are
asked, the namespace is consolidated, and the questions are asked again.

Modes:

=============  ===================================================================
none           no memory: no retrieval, no adapter
buffer         retrieval from the buffer, before consolidation
full-context   as much of the fed conversation as fits the context window
weights        after consolidation, retrieval off: only the adapter remembers
hybrid         after consolidation: the adapter plus whatever stayed buffered
=============  ===================================================================

Questions are asked in a fresh session each, so no question sees another's
answer.  Scores follow each data set's own conventions (scoring.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from seal_agent.eval.data import Conversation, MemoryQuestion, Turn
from seal_agent.eval.scoring import abstains, contains, f1, locomo_score
from seal_agent.models.base import GenerationParams
from seal_agent.types import Message

if TYPE_CHECKING:
    from seal_agent.agent import SealAgent

__all__ = ["MODES", "MemoryEval", "MemorySettings", "score_answer"]

MODES = ("none", "buffer", "full-context", "weights", "hybrid")
_BEFORE = ("none", "buffer", "full-context")


@dataclass(frozen=True)
class MemorySettings:
    dataset: Literal["locomo", "longmemeval"]
    modes: tuple[str, ...] = MODES
    turns: Literal["evidence", "sessions", "all"] = "evidence"
    speakers: Literal["all", "user"] = "all"  # longmemeval: the user's turns carry the facts
    k: int = 2
    max_new_tokens: int = 32
    consolidate: bool = True


def score_answer(dataset: str, q: MemoryQuestion, prediction: str) -> dict[str, float]:
    """The data set's own score for one answer, plus contains-answer and F1."""
    if q.abstention:
        said = float(abstains(prediction))
        return {"score": said, "f1": said, "contains": said, "abstained": said}
    gold = q.answer
    if dataset == "locomo":
        main = locomo_score(prediction, gold, q.category)
    else:
        main = f1(prediction, gold)
    return {"score": main, "f1": f1(prediction, gold), "contains": contains(prediction, gold),
            "abstained": float(abstains(prediction))}


def turn_text(turn: Turn, dataset: str) -> str:
    """A turn as the agent is told it: who said it and when."""
    text = " ".join(turn.text.split())
    if dataset == "locomo":
        return f"({turn.date}) {turn.speaker}: {text}"
    return f"({turn.date}) {text}"


class MemoryEval:
    """Runs one conversation through an agent and asks its questions in every mode."""

    def __init__(
        self, agent: SealAgent, settings: MemorySettings,
        stage: Callable[[str], None] | None = None,
    ) -> None:
        unknown = [m for m in settings.modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown modes {unknown}; known: {', '.join(MODES)}")
        self.agent = agent
        self.settings = settings
        self.stage = stage or (lambda name: None)

    def feed(self, conv: Conversation, user_id: str) -> list[Turn]:
        """Hand the selected turns to the agent, oldest first; derivation inline."""
        turns = conv.turns(self.settings.turns)
        if not turns:  # nothing cited (abstention questions): the sessions themselves
            turns = conv.turns("sessions") or conv.turns("all")
        if self.settings.speakers == "user":  # and whatever the assistant said that is evidence
            turns = [t for t in turns if t.speaker == "user" or t.evidence]
        for i, turn in enumerate(turns):
            self.stage(f"remember {i + 1}/{len(turns)}")
            session = re.sub(r"[^A-Za-z0-9._@:+-]", "-", turn.id.split(":")[0])[:100] or "s"
            self.agent.remember(
                turn_text(turn, self.settings.dataset), user_id=user_id, session_id=session,
                metadata={"turn": turn.id, "speaker": turn.speaker, "date": turn.date},
            )
        self.agent.flush()
        return turns

    def ask(self, q: MemoryQuestion, user_id: str, mode: str, transcript: Sequence[str]) -> dict[str, Any]:
        question = f"(Today is {q.date}.) {q.question}" if q.date else q.question
        t0 = time.perf_counter()
        if mode == "full-context":
            answer, tokens = self._full_context(question, transcript)
            memories: list[str] = []
        else:
            res = self.agent.chat(
                question, user_id=user_id, session_id=f"q-{mode}-{abs(hash(q.id)) % 10**8}",
                retrieval=mode in ("buffer", "hybrid"), weights=mode in ("weights", "hybrid"),
            )
            answer, tokens = res.answer, res.prompt_tokens
            memories = [m.text for m in res.memories]
        return {
            "answer": answer, "prompt_tokens": tokens, "memories": memories,
            "seconds": round(time.perf_counter() - t0, 2),
            **score_answer(self.settings.dataset, q, answer),
        }

    def _full_context(self, question: str, transcript: Sequence[str]) -> tuple[str, int]:
        """The most recent part of the conversation that fits, then the question."""
        lm = self.agent.lm
        max_new = self.settings.max_new_tokens
        room = lm.context_length - max_new
        system = self.agent.config.agent.system_prompt

        def messages(lines: Sequence[str]) -> list[Message]:
            body = "Conversation:\n" + "\n".join(lines) + f"\n\nQuestion: {question}"
            return [Message(role="system", content=system), Message(role="user", content=body)]

        lines = list(transcript)
        while lines and lm.count_chat_tokens(messages(lines)) > room:
            lines = lines[max(1, len(lines) // 10):]  # drop the oldest tenth
        prompt = messages(lines)
        answer = lm.chat(prompt, GenerationParams(max_new_tokens=max_new, stop=("\n",)))
        return answer.strip(), lm.count_chat_tokens(prompt)

    def run(self, conv: Conversation, user_id: str) -> dict[str, Any]:
        started = time.perf_counter()
        turns = self.feed(conv, user_id)
        transcript = [turn_text(t, self.settings.dataset) for t in turns]
        answers: dict[str, dict[str, Any]] = {q.id: {} for q in conv.questions}
        for mode in [m for m in self.settings.modes if m in _BEFORE]:
            for j, q in enumerate(conv.questions):
                self.stage(f"{mode} {j + 1}/{len(conv.questions)}")
                answers[q.id][mode] = self.ask(q, user_id, mode, transcript)
        report: dict[str, Any] = {}
        after = [m for m in self.settings.modes if m not in _BEFORE]
        if after and self.settings.consolidate:
            self.stage("consolidate")
            rep = self.agent.consolidate(user_id=user_id, k=self.settings.k)
            report = {
                "status": rep.status, "reason": rep.reason, "chosen": rep.chosen,
                "candidates_tried": rep.candidates_tried, "version": rep.version,
                "recall_before": rep.recall_before, "recall_after": rep.recall_after,
                "tokens_trained": rep.tokens_trained, "seconds": rep.seconds,
            }
            for mode in after:
                for j, q in enumerate(conv.questions):
                    self.stage(f"{mode} {j + 1}/{len(conv.questions)}")
                    answers[q.id][mode] = self.ask(q, user_id, mode, transcript)
        return {
            "conversation": conv.id,
            "namespace": user_id,
            "turns_fed": len(turns),
            "consolidation": report,
            "seconds": round(time.perf_counter() - started, 1),
            "questions": [
                {"id": q.id, "question": q.question, "gold": q.answer, "category": q.category,
                 "abstention": q.abstention, "modes": answers[q.id]}
                for q in conv.questions
            ],
        }
