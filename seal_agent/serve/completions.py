"""A chat-completions request read into a turn, and the turn written back as OpenAI answers.

The last user message of a request is the turn; earlier user and assistant
messages are its history, and system (or developer) messages its system
prompt, as OpenAI clients send a whole conversation on each call. A request
with an ``X-Seal-Session`` header and no earlier messages lets the journal
supply that session's history instead. What this server cannot honour
(tools, n > 1, logprobs, penalties) is refused with a 400 that names the
parameter, rather than silently ignored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from seal_agent.agent import ChatResult
from seal_agent.models.base import GenerationParams
from seal_agent.serve.errors import ApiError
from seal_agent.serve.schemas import ChatCompletionRequest, ChatMessageIn
from seal_agent.serve.server import memory_json
from seal_agent.types import Message

__all__ = [
    "Conversation", "completion", "conversation", "finish_reason", "generation_params",
    "seal_extension", "usage",
]


@dataclass
class Conversation:
    message: str
    system: str | None
    history: list[Message] | None  # None: the journal's session history


# -- the request -------------------------------------------------------------------------
def conversation(body: ChatCompletionRequest, *, journal_history: bool) -> Conversation:
    """The turn, its system prompt and its history; ``journal_history`` lets the journal
    supply the history when the request sends none."""
    _refuse_unsupported(body)
    system: list[str] = []
    turns: list[Message] = []
    for i, m in enumerate(body.messages):
        where = f"messages[{i}]"
        if m.role in ("tool", "function") or m.tool_calls:
            raise ApiError(400, f"{where}: tool calls and tool messages are not supported",
                           param=f"{where}.role")
        text = _text(m, where)
        if m.role in ("system", "developer"):
            system.append(text)
        else:
            turns.append(Message(role=m.role, content=text))
    if not turns or turns[-1].role != "user":
        raise ApiError(400, "the last message (after system messages) must come from the user: "
                       "it is the turn to answer", param="messages")
    history: list[Message] | None = turns[:-1]
    if journal_history and not history:
        history = None
    return Conversation(turns[-1].content, "\n\n".join(system) if system else None, history)


def _text(m: ChatMessageIn, where: str) -> str:
    if m.content is None:
        raise ApiError(400, f"{where}: content is missing", param=f"{where}.content")
    if isinstance(m.content, str):
        return m.content
    parts = []
    for part in m.content:
        if part.type != "text" or part.text is None:
            raise ApiError(400, f"{where}: only text content is supported, not {part.type!r}",
                           param=f"{where}.content")
        parts.append(part.text)
    return "\n".join(parts)


def _refuse_unsupported(body: ChatCompletionRequest) -> None:
    def no(param: str, what: str) -> ApiError:
        return ApiError(400, f"{what} is not supported by this server", param=param,
                        code="unsupported_parameter")

    if body.n is not None and body.n != 1:
        raise no("n", "more than one choice (n > 1)")
    if body.tools or body.functions:
        raise no("tools" if body.tools else "functions", "tool calling")
    if body.logprobs or body.top_logprobs:
        raise no("logprobs", "logprobs")
    if body.response_format and body.response_format.get("type", "text") != "text":
        raise no("response_format", f"response_format {body.response_format.get('type')!r}")
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(body, name):
            raise no(name, name)
    if body.logit_bias:
        raise no("logit_bias", "logit_bias")


def generation_params(body: ChatCompletionRequest, default_tokens: int) -> GenerationParams:
    """The request's sampling settings; greedy decoding unless it asks otherwise."""
    if (body.max_tokens is not None and body.max_completion_tokens is not None
            and body.max_tokens != body.max_completion_tokens):
        raise ApiError(400, "max_tokens and max_completion_tokens differ: send one",
                       param="max_completion_tokens")
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stops) > 4 or not all(stops):
        raise ApiError(400, "stop takes up to 4 non-empty strings", param="stop")
    return GenerationParams(
        max_new_tokens=body.max_completion_tokens or body.max_tokens or default_tokens,
        temperature=body.temperature if body.temperature is not None else 0.0,
        top_p=body.top_p if body.top_p is not None else 1.0,
        stop=tuple(stops),
        seed=body.seed,
    )


# -- the answer ----------------------------------------------------------------------------
def finish_reason(completion_tokens: int, params: GenerationParams) -> str:
    # The logged answer is trimmed and re-tokenized, so this is the best reading of it.
    return "length" if completion_tokens >= params.max_new_tokens else "stop"


def seal_extension(result: ChatResult) -> dict[str, Any]:
    """What the turn did with memory (an extension field; OpenAI clients keep it)."""
    ns = result.namespace
    return {"interaction_id": result.interaction_id, "user": ns.user_id, "agent": ns.agent_id,
            "session": ns.session_id, "memories": [memory_json(m) for m in result.memories],
            "adapter": result.adapter, "history_turns": result.history_turns,
            "dropped_turns": result.dropped_turns, "seconds": result.seconds}


def usage(result: ChatResult, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": result.prompt_tokens + completion_tokens}


def completion(model: str, result: ChatResult, used: int,
               params: GenerationParams) -> dict[str, Any]:
    """The whole answer of a non-streamed turn."""
    return {
        "id": f"chatcmpl-{result.interaction_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": result.answer, "refusal": None},
            "finish_reason": finish_reason(used, params),
            "logprobs": None,
        }],
        "usage": usage(result, used),
        "system_fingerprint": None,
        "seal": seal_extension(result),
    }
