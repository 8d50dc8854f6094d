"""The FastAPI application: OpenAI chat completions through one :class:`SealAgent`.

One agent, so one model in memory, serves every request. Decoding is not
safe to run twice at once on one model, so every call that decodes (a chat
turn, a streamed turn, ``remember`` with inline derivation) holds one lock,
``Server.turns``, on a worker thread; the event loop only moves bytes and
stays responsive. Consolidation runs on its own single worker, so turns are
served while it trains; the model backend's own generation lock keeps its
decoding and the turns' apart.

This module assembles the application: the shared :class:`Server`, the
routers (:mod:`.chat` for the OpenAI endpoints, :mod:`.memory` for
``/v1/memory``), start-up and shutdown, and the error handlers that give
every failure an OpenAI-shaped body.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from seal_agent.agent import SealAgent
from seal_agent.errors import SealAgentError
from seal_agent.serve import chat, memory
from seal_agent.serve.errors import describe
from seal_agent.serve.schemas import error_body
from seal_agent.serve.server import Server

__all__ = ["create_app"]

log = logging.getLogger("seal_agent.serve")


def create_app(agent: SealAgent, *, warm: bool = True, close_agent: bool = False) -> FastAPI:
    """The server around ``agent``.

    ``warm`` loads the model, the embedder and the buffer at start-up, so the
    first request does not pay for it. ``close_agent`` closes the agent at
    shutdown (finishing queued derivations); the CLI passes True, a caller
    that owns the agent keeps it open.
    """
    server = Server(agent)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None, None]:
        if warm:
            await run_in_threadpool(lambda: (agent.lm, agent.buffer))
        yield
        # A running consolidation finishes first: it holds the journal.
        await run_in_threadpool(server.consolidator.shutdown, True, cancel_futures=True)
        if close_agent:
            await run_in_threadpool(agent.close)

    app = FastAPI(title="seal-agent", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.seal = server
    _install_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": server.model_id, "loaded": "lm" in agent.__dict__}

    app.include_router(chat.router)
    app.include_router(memory.router)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    def answer(exc: BaseException) -> JSONResponse:
        status, body = describe(exc)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(SealAgentError)
    async def seal_error(request: Request, exc: SealAgentError) -> JSONResponse:
        if describe(exc)[0] >= 500:
            log.error("request failed: %s %s", request.method, request.url.path, exc_info=exc)
        return answer(exc)

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [p for p in first.get("loc", ()) if p not in ("body", "query")]
        param = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        if first.get("type") == "json_invalid":
            message, param = "the request body is not valid JSON", ""
        else:
            message = f"{param or 'body'}: {first.get('msg', 'invalid request')}"
        return JSONResponse(error_body(message, "invalid_request_error", param=param or None),
                            status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_ = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), type_), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed: %s %s", request.method, request.url.path, exc_info=exc)
        return answer(exc)
