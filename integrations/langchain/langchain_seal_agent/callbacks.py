"""SealAgentCallbackHandler: any chat model's conversations, logged as seal-agent memory.

Attach it to the model an app already uses (a hosted one, say).  Each
successful answer becomes a journal turn, then self-edits and probes on the
agent's derivation path, and, after ``seal-agent consolidate``, LoRA weights
of the local model: what the big model learned about a user is distilled into
a small private one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from seal_agent import SealAgent

from langchain_seal_agent._common import NAMESPACE_KEYS, open_home, resolve_namespace, text_of
from langchain_seal_agent.chat_models import LLM_TYPE

__all__ = ["SealAgentCallbackHandler"]

log = logging.getLogger("langchain_seal_agent")


class SealAgentCallbackHandler(BaseCallbackHandler):
    """Logs each chat-model answer with the user message it answers.

    What is logged, per chat-model run: the text of the last human message
    and the text of the answer, as one turn (one transaction), through
    :meth:`SealAgent.log_exchange`.  Runs whose answer is a tool call, or
    empty, or that have no human message, are skipped: they carry nothing to
    remember.  A run that fails (``on_llm_error``) logs nothing.  Runs of
    ChatSealAgent itself are skipped (it logs its own turns).  Plain
    (non-chat) LLM runs are not logged.

    The namespace: the handler's ``user_id`` / ``agent_id`` / ``session_id``,
    overridden per call by the same keys in the run's ``metadata``
    (``config={"metadata": {"user_id": "maya"}}``).

    Errors: by default a run that cannot be logged (no user_id, bad text)
    is a warning in the ``langchain_seal_agent`` logger and never breaks the
    app's call; ``raise_error=True`` makes it raise instead.  ``failures``
    keeps the last errors.
    """

    def __init__(
        self,
        agent: SealAgent | None = None,
        *,
        home: str | None = None,
        user_id: str | None = None,
        agent_id: str = "default",
        session_id: str = "default",
        raise_error: bool = False,
    ) -> None:
        self.agent = agent or open_home(home)
        self.defaults = {"user_id": user_id, "agent_id": agent_id, "session_id": session_id}
        self.raise_error = raise_error
        self.logged: list[str] = []  # interaction ids, newest last
        self.failures: list[BaseException] = []
        self._runs: dict[UUID, tuple[dict[str, str], list[str | None], str | None]] = {}
        self._lock = threading.Lock()

    # -- the run's start: remember the question ----------------------------------------
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        params = kwargs.get("invocation_params") or {}
        if params.get("_type") == LLM_TYPE:
            return  # ChatSealAgent logs its own turns
        try:
            ns = resolve_namespace(
                self.defaults,
                {k: v for k, v in (metadata or {}).items() if k in NAMESPACE_KEYS},
                "SealAgentCallbackHandler",
            )
            questions = [_last_human_text(prompt) for prompt in messages]
        except Exception as exc:
            self._fail(exc)
            return
        model = (
            params.get("model") or params.get("model_name")
            or (metadata or {}).get("ls_model_name") or params.get("_type")
        )
        with self._lock:
            self._runs[run_id] = (ns, questions, model)

    # -- its end: log the exchange, or nothing ----------------------------------------------
    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is None:
            return
        ns, questions, model = run
        for question, generations in zip(questions, response.generations, strict=False):
            answer = _answer_text(generations)
            if question is None or answer is None:
                continue
            try:
                logged = self.agent.log_exchange(
                    question, answer, **ns,
                    metadata={"source": "callback", "model": model, "run_id": str(run_id)},
                )
            except Exception as exc:
                self._fail(exc)
                continue
            self.logged.append(logged.interaction_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self._runs.pop(run_id, None)  # a failed generation logs nothing

    def _fail(self, exc: BaseException) -> None:
        self.failures = [*self.failures[-19:], exc]
        if self.raise_error:
            raise exc
        log.warning("seal-agent could not log a run: %s", exc)


def _last_human_text(messages: Sequence[BaseMessage]) -> str | None:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            text = text_of(message, strict=False)  # an image beside it: keep the text
            return text if text.strip() else None
    return None


def _answer_text(generations: Sequence[Any]) -> str | None:
    if not generations:
        return None
    generation = generations[0]
    message = generation.message if isinstance(generation, ChatGeneration) else None
    if isinstance(message, AIMessage) and message.tool_calls:
        return None  # a step of an agent loop, not an answer
    text = generation.text
    return text if text and text.strip() else None
