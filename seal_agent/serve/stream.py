"""A streamed turn as server-sent events, as OpenAI clients read them.

Decoding runs on a worker thread that holds the turn lock and hands each
piece to the event coroutine through a queue. When the client goes away,
Starlette cancels the coroutine; a ``cancel`` event then tells the worker to
close the stream, which stops decoding and logs what was shown
(``closed_early``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from seal_agent.agent import ChatStream
from seal_agent.models.base import GenerationParams
from seal_agent.serve.completions import finish_reason, seal_extension, usage
from seal_agent.serve.errors import describe
from seal_agent.serve.server import Server

__all__ = ["sse"]

log = logging.getLogger("seal_agent.serve")

_Put = Callable[[str, Any], None]


def _pump(server: Server, stream: ChatStream, put: _Put, cancel: threading.Event) -> None:
    """The worker: decode under the turn lock, ``put`` each piece, then the end or the error."""
    try:
        with server.turns:
            if cancel.is_set():  # the client left before its turn began: nothing logged
                stream.close()
                return
            for piece in stream:
                if cancel.is_set():
                    break
                put("text", piece)
            stream.close()  # after a break: cancels decoding, logs what was shown
            result = stream.result
            used = server.agent.lm.count_tokens(result.answer) if result and result.answer else 0
        put("end", (result, used))
    except BaseException as exc:
        stream.close()
        put("error", exc)


class _Chunks:
    """The ``chat.completion.chunk`` events of one streamed answer (one id, one time)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def event(self, choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model, "choices": choices, "system_fingerprint": None, **extra}
        return f"data: {json.dumps(chunk)}\n\n"

    def delta(self, content: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return self.event([{"index": 0, "delta": content, "finish_reason": finish,
                            "logprobs": None}], **extra)


def _error_event(exc: BaseException) -> str:
    status, body = describe(exc)
    if status >= 500:
        log.error("streamed turn failed", exc_info=exc)
    return f"data: {json.dumps(body)}\n\n"


async def sse(
    server: Server, stream: ChatStream, params: GenerationParams, include_usage: bool
) -> AsyncIterator[str]:
    """The events of ``stream``: a role chunk, the text chunks, a finish chunk, [DONE]."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancel = threading.Event()

    def put(kind: str, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # RuntimeError: the loop closed (server stopped)
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    loop.run_in_executor(None, _pump, server, stream, put, cancel)
    chunks = _Chunks(server.model_id)
    try:
        yield chunks.delta({"role": "assistant", "content": ""})
        while True:
            kind, value = await queue.get()
            if kind == "text":
                yield chunks.delta({"content": value})
                continue
            if kind == "error":
                yield _error_event(value)
                break
            result, used = value
            yield chunks.delta({}, finish_reason(used, params),
                               seal=seal_extension(result) if result else None)
            if include_usage and result is not None:
                yield chunks.event([], usage=usage(result, used))
            break
        yield "data: [DONE]\n\n"
    finally:
        cancel.set()
