"""Memory tools for tool-calling agents: search, remember, forget."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool, ToolException
from seal_agent import MemoryNotFoundError, SealAgent, SealAgentError

from langchain_seal_agent._common import open_home, resolve_namespace

__all__ = ["create_memory_tools"]


def create_memory_tools(
    agent: SealAgent | None = None,
    *,
    home: str | None = None,
    user_id: str | None = None,
    agent_id: str = "default",
    k: int = 5,
    handle_errors: bool = True,
) -> list[StructuredTool]:
    """``search_memory``, ``remember_fact`` and ``forget_memory`` for one (user, agent) pair.

    The namespace is fixed here, or comes per call from the run's
    ``configurable`` (``user_id``, ``agent_id``): the model calling the tools
    never chooses whose memory it touches.  ``forget_memory`` deletes only a
    memory of that namespace.

    A seal-agent error (empty text, an unknown id, no user_id) becomes a
    ``ToolException``; with ``handle_errors`` (default) its message is returned
    to the calling model as the tool's answer, so it can correct itself.
    """
    sa = agent or open_home(home)
    defaults = {"user_id": user_id, "agent_id": agent_id}

    def namespace(config: RunnableConfig | None) -> dict[str, str]:
        configurable = (config or {}).get("configurable") or {}
        given = {key: configurable.get(key) for key in ("user_id", "agent_id")}
        return resolve_namespace(defaults, given, "memory tools")

    def search_memory(query: str, config: RunnableConfig) -> str:
        """Search what you remember about the user. Returns one memory per line, best first."""
        ns = namespace(config)
        hits = sa.recall(query, user_id=ns["user_id"], agent_id=ns["agent_id"], top_k=k)
        if not hits:
            return "No memories match."
        return "\n".join(f"[{m.id}] ({m.score:.2f}) {m.text}" for m in hits)

    def remember_fact(fact: str, config: RunnableConfig) -> str:
        """Remember a fact about the user for later conversations (one short statement)."""
        ns = namespace(config)
        result = sa.remember(fact, user_id=ns["user_id"], agent_id=ns["agent_id"],
                             metadata={"source": "tool"})
        return f"Remembered (interaction {result.interaction_id})."

    def forget_memory(memory_id: str, config: RunnableConfig) -> str:
        """Forget one memory, by the id shown in brackets by search_memory."""
        ns = namespace(config)
        try:
            memory = sa.journal.get_self_edit(memory_id)
        except MemoryNotFoundError:
            memory = None
        if memory is None or (memory.namespace.user_id, memory.namespace.agent_id) != (
            ns["user_id"], ns["agent_id"],
        ):
            raise MemoryNotFoundError(f"no memory {memory_id!r} for this user")
        sa.forget(memory_id=memory_id)
        return f"Forgot {memory_id}."

    return [
        _tool(fn, handle_errors) for fn in (search_memory, remember_fact, forget_memory)
    ]


def _tool(fn: Callable[..., str], handle_errors: bool) -> StructuredTool:
    @functools.wraps(fn)  # keeps the signature: LangChain injects ``config``, infers the rest
    def run(*args: Any, **kwargs: Any) -> str:
        try:
            return fn(*args, **kwargs)
        except SealAgentError as exc:
            raise ToolException(f"{type(exc).__name__}: {exc}") from exc

    return StructuredTool.from_function(
        func=run, name=fn.__name__, description=fn.__doc__ or "", handle_tool_error=handle_errors
    )
