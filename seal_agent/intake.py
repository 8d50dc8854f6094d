"""What the agent is told outside a chat turn: documents, exchanges another model
answered, and the answers to turns left open.

Each is checked (typed errors, nothing logged for refused input), committed to
the journal, and handed to derivation like a chat turn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from seal_agent.errors import InputError, InputTooLongError
from seal_agent.text import clean_input
from seal_agent.types import DeriveStatus, FrozenModel, InteractionKind, Message, Namespace

if TYPE_CHECKING:
    from seal_agent.journal import Journal

__all__ = ["MAX_DOCUMENT_CHARS", "Intake", "RememberResult"]

MAX_DOCUMENT_CHARS = 200_000


class RememberResult(FrozenModel):
    interaction_id: str
    namespace: Namespace
    derive_status: DeriveStatus


class Intake:
    """Logs documents and external exchanges; ``after_logged`` starts their derivation."""

    def __init__(self, journal: Journal, after_logged: Callable[[str], None]) -> None:
        self._journal = journal
        self._after_logged = after_logged

    def remember(
        self,
        ns: Namespace,
        text: str,
        probes: Iterable[tuple[str, str] | dict[str, str]],
        metadata: dict[str, Any] | None,
    ) -> RememberResult:
        """A fact or document, with the caller's (question, answer) probes."""
        body = clean_input(text, "text")
        if len(body) > MAX_DOCUMENT_CHARS:
            raise InputTooLongError(
                f"text is {len(body)} characters; remember() takes at most {MAX_DOCUMENT_CHARS} "
                "at once: split the document"
            )
        pairs = [_probe_pair(p) for p in probes]
        interaction = self._journal.log_interaction(
            ns,
            InteractionKind.DOCUMENT,
            [Message(role="user", content=body)],
            metadata=metadata or {},
            probes=pairs,
        )
        return self._derived(interaction.id, ns)

    def log_exchange(
        self, ns: Namespace, message: str, answer: str | None, metadata: dict[str, Any] | None
    ) -> RememberResult:
        """Both messages in one transaction; without an answer, an open turn."""
        messages = [Message(role="user", content=_bounded(message, "message"))]
        if answer is not None:
            messages.append(Message(role="assistant", content=_bounded(answer, "answer")))
        interaction = self._journal.log_interaction(
            ns, InteractionKind.CHAT, messages, metadata={"source": "external", **(metadata or {})}
        )
        if answer is None:
            return self._result(interaction.id, ns)
        return self._derived(interaction.id, ns)

    def answer_turn(
        self, interaction_id: str, answer: str, metadata: dict[str, Any] | None
    ) -> RememberResult:
        """Complete an open chat turn and derive it."""
        reply = _bounded(answer, "answer")
        interaction = self._journal.get_interaction(interaction_id)
        if interaction.kind is not InteractionKind.CHAT or any(
            m.role == "assistant" for m in interaction.messages
        ):
            raise InputError(f"interaction {interaction_id} is not an open chat turn")
        self._journal.complete_turn(
            interaction_id, Message(role="assistant", content=reply), metadata or {}
        )
        return self._derived(interaction_id, interaction.namespace)

    def _derived(self, interaction_id: str, ns: Namespace) -> RememberResult:
        self._after_logged(interaction_id)
        return self._result(interaction_id, ns)

    def _result(self, interaction_id: str, ns: Namespace) -> RememberResult:
        return RememberResult(
            interaction_id=interaction_id,
            namespace=ns,
            derive_status=self._journal.get_interaction(interaction_id).derive_status,
        )


def _bounded(text: str, what: str) -> str:
    clean = clean_input(text, what)
    if len(clean) > MAX_DOCUMENT_CHARS:
        raise InputTooLongError(
            f"{what} is {len(clean)} characters; at most {MAX_DOCUMENT_CHARS} can be logged at once"
        )
    return clean


def _probe_pair(probe: tuple[str, str] | dict[str, str]) -> tuple[str, str]:
    if isinstance(probe, dict):
        try:
            question, answer = probe["question"], probe["answer"]
        except KeyError as exc:
            raise InputError(f"a probe needs 'question' and 'answer', missing {exc}") from exc
    else:
        question, answer = probe
    return clean_input(question, "probe question"), clean_input(answer, "probe answer")
