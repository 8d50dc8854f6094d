"""What every component shares: finding the SealAgent, resolving the namespace,
and turning LangChain messages into seal-agent ones."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.runnables import RunnableConfig, ensure_config
from seal_agent import Message, SealAgent
from seal_agent.types import check_id

from langchain_seal_agent.errors import MissingNamespaceError, UnsupportedMessageError

NAMESPACE_KEYS = ("user_id", "agent_id", "session_id")

# One SealAgent per memory home and process: components built with ``home=``
# share it (one loaded model, one journal connection, one derivation worker).
_OPEN: dict[Path, SealAgent] = {}
_OPEN_LOCK = threading.Lock()


def open_home(home: str | Path | None) -> SealAgent:
    """The process's SealAgent for ``home`` (opened on first use, closed at exit).

    At exit it is closed without waiting: derivations still queued stay
    ``pending`` in the journal and resume when the home is next opened.
    """
    key = Path(home or SealAgent.open().config.home).expanduser().resolve()
    with _OPEN_LOCK:
        agent = _OPEN.get(key)
        if agent is None:
            agent = SealAgent.open(key)
            _OPEN[key] = agent
            atexit.register(agent.close, wait=False)
        return agent


def with_namespace(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Per-call namespace: explicit keyword arguments win over ``configurable``."""
    configurable = ensure_config(config).get("configurable") or {}
    out = dict(kwargs)
    for key in NAMESPACE_KEYS:
        if out.get(key) is None and configurable.get(key) is not None:
            out[key] = configurable[key]
    return out


def resolve_namespace(
    defaults: Mapping[str, str | None], given: Mapping[str, Any], what: str
) -> dict[str, str]:
    """user_id / agent_id / session_id from the call, else the object's defaults.

    ``user_id`` has no fallback: memory written to a guessed user is worse
    than an error.
    """
    out: dict[str, str] = {}
    for key in NAMESPACE_KEYS:
        value = given.get(key)
        if value is None:
            value = defaults.get(key)
        if value is None and key == "user_id":
            raise MissingNamespaceError(
                f"{what} needs a user_id: set it on the object, pass user_id=... to the call, "
                "or put it in the config: config={'configurable': {'user_id': ...}}"
            )
        if value is not None:
            out[key] = check_id(value, key)
    return out


def text_of(message: BaseMessage, *, strict: bool = True) -> str:
    """The text of a message; a non-text content block is refused (``strict``) or skipped."""
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif strict:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise UnsupportedMessageError(
                f"{type(message).__name__} holds a {kind!r} content block; the local model "
                "reads text only"
            )
    return "".join(parts)


def role_of(message: BaseMessage) -> str:
    """'system', 'user' or 'assistant'; tool and function messages are refused."""
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        if message.tool_calls or message.invalid_tool_calls:
            raise UnsupportedMessageError(
                "an AIMessage with tool calls: the local model does not call tools, and its "
                "memory keeps text turns only"
            )
        return "assistant"
    if isinstance(message, ChatMessage):
        role = {"human": "user", "ai": "assistant"}.get(message.role, message.role)
        if role in ("system", "user", "assistant"):
            return role
    raise UnsupportedMessageError(
        f"{type(message).__name__} (role {getattr(message, 'type', '?')!r}) is not supported: "
        "use system, human and AI messages with text content"
    )


def split_conversation(
    messages: Sequence[BaseMessage],
) -> tuple[str | None, list[Message], str]:
    """A LangChain conversation as (system prompt, earlier turns, the user's message).

    System messages, wherever they are, make up the system prompt (memories
    are added to it).  The last message must be the user's.
    """
    if not messages:
        raise UnsupportedMessageError("no messages: the conversation must end with a user message")
    system: list[str] = []
    history: list[Message] = []
    converted = [(role_of(m), text_of(m)) for m in messages]  # everything checked first
    *earlier, (last_role, last_text) = converted
    if last_role != "user":
        raise UnsupportedMessageError(
            f"the conversation ends with a {last_role} message; the last message must be "
            "the user's (a HumanMessage)"
        )
    for role, text in earlier:
        if role == "system":
            system.append(text)
        elif text.strip():
            history.append(Message(role=role, content=text))  # type: ignore[arg-type]
    prompt = "\n\n".join(s for s in system if s.strip()) or None
    return prompt, history, last_text
