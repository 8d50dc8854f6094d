"""Request and response bodies of the server.

The chat bodies follow OpenAI's chat-completions API: requests accept (and
ignore) fields this server has no use for, as OpenAI clients send such
fields freely, but refuse the ones whose meaning it cannot honour (tools,
``n > 1``, logprobs, JSON modes): an answer that silently ignored them would
be wrong. The memory endpoints are this project's own, so they refuse unknown
fields: a typo there should not pass unnoticed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatCompletionRequest",
    "ChatMessageIn",
    "ConsolidateRequest",
    "ContentPart",
    "ForgetRequest",
    "ProbeIn",
    "RememberRequest",
    "SearchRequest",
    "StreamOptions",
    "error_body",
]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class ChatMessageIn(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[Any] | None = None


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatCompletionRequest(_Lenient):
    model: str
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    user: str | None = None
    n: int | None = Field(None, ge=1)
    # Refused when set to anything that asks for behaviour this server lacks.
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    tool_choice: Any = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, Any] | None = None


class SearchRequest(_Strict):
    query: str
    user: str | None = None
    top_k: int | None = Field(None, ge=1, le=100)
    min_similarity: float | None = Field(None, ge=-1.0, le=1.0)
    include_consolidated: bool | None = None


class ProbeIn(_Strict):
    question: str
    answer: str


class RememberRequest(_Strict):
    text: str
    user: str | None = None
    session: str | None = None
    probes: list[ProbeIn] = Field(default_factory=list)


class ForgetRequest(_Strict):
    user: str | None = None
    memory_id: str | None = None
    interaction_id: str | None = None
    all: bool = False


class ConsolidateRequest(_Strict):
    user: str | None = None
    dry_run: bool = False
    max_interactions: int | None = Field(None, ge=1)


def error_body(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape, which its clients parse into their exceptions."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
