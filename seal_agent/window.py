"""What fits the model's context window: system prompt, memories, history, message.

A turn's prompt is assembled here under a token budget (the window less the
answer's tokens).  The order of sacrifice is the point: the oldest turns of
the session go first, then, only when the message and the memories alone do
not fit, the weakest memories.  Memories hold what the agent was told, so
they outrank what was merely said.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from seal_agent.errors import InputError
from seal_agent.prompts import memory_system_prompt
from seal_agent.types import Memory, Message

if TYPE_CHECKING:
    from seal_agent.config import AgentConfig
    from seal_agent.models.base import LanguageModel

__all__ = ["context_length", "fit_prompt", "group_turns"]


def context_length(lm: LanguageModel, cap: int | None) -> int:
    """The model's window, capped by ``model.max_context`` when set."""
    return min(lm.context_length, cap) if cap else lm.context_length


def fit_prompt(
    lm: LanguageModel,
    agent_cfg: AgentConfig,
    user_msg: Message,
    memories: Sequence[Memory],
    history: Sequence[Sequence[Message]],
    room: int,
    system_prompt: str | None = None,
) -> tuple[list[Message], list[Memory], int]:
    """Fit system + memories + history + message into ``room`` tokens.

    ``history`` is the earlier turns, each a list of messages, oldest first.
    Oldest turns drop first; memories stay unless the message and the
    memories alone overflow, then the weakest memories go.  Returns the
    messages, the memories kept and how many earlier turns were kept.
    """
    base = agent_cfg.system_prompt if system_prompt is None else system_prompt

    def system(mems: list[Memory]) -> Message:
        content = memory_system_prompt(
            base, agent_cfg.memory_header, agent_cfg.memory_footer, [m.text for m in mems]
        )
        return Message(role="system", content=content)

    mems = list(memories)
    while mems and lm.count_chat_tokens([system(mems), user_msg]) > room:
        mems.pop()  # the weakest memory (hits come best first)
    turns = [list(t) for t in history]
    while True:
        messages = [system(mems), *(m for turn in turns for m in turn), user_msg]
        if not turns or lm.count_chat_tokens(messages) <= room:
            return messages, mems, len(turns)
        turns.pop(0)


def group_turns(history: Sequence[Message]) -> list[list[Message]]:
    """A caller's conversation as turns: each user message opens one."""
    turns: list[list[Message]] = []
    for message in history:
        if not isinstance(message, Message) or message.role == "system":
            raise InputError(
                "history holds user and assistant Messages only (pass system_prompt= "
                f"for the system message), got {message!r:.80}"
            )
        if message.role == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    return turns
