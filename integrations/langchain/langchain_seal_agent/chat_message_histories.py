"""SealAgentChatMessageHistory: a session's turns, kept in the seal-agent journal."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from seal_agent import InteractionKind, Namespace, SealAgent
from seal_agent.text import clean_input

from langchain_seal_agent._common import open_home, resolve_namespace, role_of, text_of
from langchain_seal_agent.errors import UnsupportedMessageError

__all__ = ["SealAgentChatMessageHistory"]


class SealAgentChatMessageHistory(BaseChatMessageHistory):
    """The chat turns of one (user, agent, session), read from and written to the journal.

    Because the journal is also seal-agent's memory log, every exchange added
    here becomes self-edits and, after consolidation, weights: the history an
    app keeps with ``RunnableWithMessageHistory`` is what its memory learns from.

    - ``messages``: the session's chat turns, oldest first (human, then AI).
    - ``add_messages``: a human message followed by an AI message is one turn,
      committed in one transaction; a lone human message opens a turn that the
      next AI message answers.  All messages are checked first: one bad
      message (a tool message, an image, empty text) raises and nothing is
      logged.  An AI message that ChatSealAgent already logged for this
      session (its ``response_metadata["seal_agent"]["interaction_id"]``) is
      not logged twice.
    - ``clear``: forgets the session's turns *and the memories derived from
      them* (an adapter already trained on them keeps what it learned).
    """

    def __init__(
        self,
        session_id: str,
        *,
        user_id: str,
        agent_id: str = "default",
        agent: SealAgent | None = None,
        home: str | None = None,
    ) -> None:
        ns = resolve_namespace(
            {}, {"user_id": user_id, "agent_id": agent_id, "session_id": session_id},
            "SealAgentChatMessageHistory",
        )
        self.namespace = Namespace(**ns)
        self.agent = agent or open_home(home)

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        ns = self.namespace
        out: list[BaseMessage] = []
        for turn in self.agent.journal.interactions(
            user_id=ns.user_id, agent_id=ns.agent_id, session_id=ns.session_id,
            kind=InteractionKind.CHAT,
        ):
            for m in turn.messages:
                if m.role == "user":
                    out.append(HumanMessage(content=m.content))
                elif m.role == "assistant":
                    out.append(AIMessage(
                        content=m.content,
                        response_metadata={"seal_agent": {"interaction_id": turn.id}},
                    ))
        return out

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        plan = self._plan(messages)  # every check before the first write
        agent, ns = self.agent, self.namespace
        for kind, user, answer in plan:
            if kind == "turn":
                agent.log_exchange(
                    user, answer, user_id=ns.user_id, agent_id=ns.agent_id,
                    session_id=ns.session_id, metadata={"source": "langchain-history"},
                )
            else:  # "answer": the session's open turn
                agent.answer_turn(user, answer or "")

    def _plan(self, messages: Sequence[BaseMessage]) -> list[tuple[str, str, str | None]]:
        items: list[tuple[str, str, BaseMessage]] = []
        for message in messages:
            role = role_of(message)
            if role == "system":
                raise UnsupportedMessageError(
                    "the journal keeps user and assistant turns; a SystemMessage belongs in "
                    "the prompt, not the history"
                )
            what = "human message" if role == "user" else "AI message"
            items.append((role, clean_input(text_of(message), what), message))
        plan: list[tuple[str, str, str | None]] = []
        open_turn = self._open_turn_id()
        i = 0
        while i < len(items):
            role, text, message = items[i]
            if role == "user":
                nxt = items[i + 1] if i + 1 < len(items) else None
                if nxt is not None and nxt[0] == "assistant":
                    if not self._already_logged(nxt[2]):
                        plan.append(("turn", text, nxt[1]))
                    i += 2
                    continue
                plan.append(("turn", text, None))
                open_turn = "pending"  # answered by a later AI message of this call
            elif self._already_logged(message):
                pass
            elif open_turn is None:
                raise UnsupportedMessageError(
                    "an AI message with no human message before it: the journal logs a turn "
                    "as the user's message and its answer"
                )
            elif open_turn == "pending":
                # answers the lone human message just planned
                kind, user, _ = plan.pop()
                plan.append((kind, user, text))
                open_turn = None
            else:
                plan.append(("answer", open_turn, text))
                open_turn = None
            i += 1
        return plan

    def _open_turn_id(self) -> str | None:
        ns = self.namespace
        last = self.agent.journal.interactions(
            user_id=ns.user_id, agent_id=ns.agent_id, session_id=ns.session_id,
            kind=InteractionKind.CHAT, limit=1, newest_first=True,
        )
        if last and not any(m.role == "assistant" for m in last[0].messages):
            return last[0].id
        return None

    def _already_logged(self, message: BaseMessage) -> bool:
        """ChatSealAgent logged this answer in this session already."""
        meta = (getattr(message, "response_metadata", None) or {}).get("seal_agent") or {}
        iid = meta.get("interaction_id")
        if not iid:
            return False
        from seal_agent import MemoryNotFoundError

        try:
            turn = self.agent.journal.get_interaction(iid)
        except MemoryNotFoundError:
            return False
        return turn.namespace == self.namespace and any(
            m.role == "assistant" for m in turn.messages
        )

    def clear(self) -> None:
        ns = self.namespace
        for turn in self.agent.journal.interactions(
            user_id=ns.user_id, agent_id=ns.agent_id, session_id=ns.session_id,
            kind=InteractionKind.CHAT,
        ):
            self.agent.forget(interaction_id=turn.id)
