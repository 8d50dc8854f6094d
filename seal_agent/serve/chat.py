"""The OpenAI endpoints: ``/v1/models`` and ``/v1/chat/completions``, plain or streamed.

A turn decodes on a worker thread under the turn lock (:meth:`Server.locked`).
A streamed turn is checked and started before its response begins, so a bad
request still gets its status code; the events themselves come from
:mod:`seal_agent.serve.stream`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from seal_agent.agent import ChatResult
from seal_agent.serve.completions import completion, conversation, generation_params
from seal_agent.serve.schemas import ChatCompletionRequest
from seal_agent.serve.server import Served, Who
from seal_agent.serve.stream import sse

__all__ = ["router"]

router = APIRouter(prefix="/v1")


@router.get("/models")
async def list_models(_: Who, server: Served) -> dict[str, Any]:
    return {"object": "list", "data": [server.model_entry()]}


@router.get("/models/{model:path}")
async def get_model(model: str, _: Who, server: Served) -> dict[str, Any]:
    server.check_model(model)
    return server.model_entry()


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    request: Request, body: ChatCompletionRequest, who: Who, server: Served
) -> JSONResponse | StreamingResponse:
    agent = server.agent
    server.check_model(body.model)
    scope = server.scope(request, who, body.user)
    convo = conversation(body, journal_history="x-seal-session" in request.headers)
    params = generation_params(body, agent.config.agent.max_new_tokens)
    kwargs: dict[str, Any] = {
        "user_id": scope.user_id, "agent_id": scope.agent_id, "session_id": scope.session_id,
        "history": convo.history, "system_prompt": convo.system, "params": params,
        "metadata": {"via": "serve"},
    }
    if not body.stream:
        def turn() -> tuple[ChatResult, int]:
            result = agent.chat(convo.message, **kwargs)
            return result, agent.lm.count_tokens(result.answer) if result.answer else 0

        result, used = await server.locked(turn)
        return JSONResponse(completion(server.model_id, result, used, params))
    # Every check of the turn runs here, before the response starts: a bad
    # request still gets its status code, and nothing is logged for it.
    stream = await server.locked(lambda: agent.stream(convo.message, **kwargs))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return StreamingResponse(
        sse(server, stream, params, include_usage),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
