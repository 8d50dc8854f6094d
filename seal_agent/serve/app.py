"""The FastAPI application: OpenAI chat completions through one :class:`SealAgent`.

One agent, so one model in memory, serves every request. Decoding is not
safe to run twice at once on one model, so every call that decodes (a chat
turn, a streamed turn, ``remember`` with inline derivation) holds one lock,
``_Server.turns``, on a worker thread; the event loop only moves bytes and
stays responsive. Consolidation runs on its own single worker, so turns are
served while it trains; the model backend's own generation lock keeps its
decoding and the turns' apart.

The last user message of a request is the turn; earlier user and assistant
messages are its history, and system (or developer) messages its system
prompt, as OpenAI clients send a whole conversation on each call. A request
with an ``X-Seal-Session`` header and no earlier messages lets the journal
supply that session's history instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from seal_agent.agent import ChatResult, ChatStream, SealAgent
from seal_agent.errors import InvalidNamespaceError, SealAgentError
from seal_agent.models.base import GenerationParams
from seal_agent.serve.auth import Keyring, Tenant
from seal_agent.serve.errors import ApiError, describe
from seal_agent.serve.schemas import (
    ChatCompletionRequest,
    ChatMessageIn,
    ConsolidateRequest,
    ForgetRequest,
    RememberRequest,
    SearchRequest,
    error_body,
)
from seal_agent.types import Memory, Message, check_id

__all__ = ["create_app"]

log = logging.getLogger("seal_agent.serve")

T = TypeVar("T")


@dataclass(frozen=True)
class _Scope:
    """The namespace one request acts in."""

    user_id: str
    agent_id: str
    session_id: str


@dataclass
class _Conversation:
    message: str
    system: str | None
    history: list[Message] | None  # None: the journal's session history


class _Server:
    """What the endpoints share: the agent, the keys, the locks and workers."""

    def __init__(self, agent: SealAgent) -> None:
        self.agent = agent
        self.config = agent.config
        self.keyring = Keyring(self.config.serve.api_keys)
        self.model_id = self.config.serve.model_id or self.config.model.name
        self.created = int(time.time())
        self.turns = threading.Lock()  # one decoding at a time on the shared model
        self.consolidator = ThreadPoolExecutor(1, thread_name_prefix="seal-agent-consolidate")

    # -- who and where -------------------------------------------------------------
    def tenant(self, request: Request) -> Tenant:
        tenant = self.keyring.tenant(request.headers.get("authorization"))
        if tenant is None:
            given = "authorization" in request.headers
            raise ApiError(
                401,
                "incorrect API key provided" if given else
                "this server needs an API key: send 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )
        return tenant

    def scope(self, request: Request, tenant: Tenant, user: str | None) -> _Scope:
        header = request.headers.get("x-seal-user")
        if user is not None and header is not None and user != header:
            raise ApiError(400, f"the body's user {user!r} and X-Seal-User {header!r} differ",
                           param="user")
        user_id = _checked(user if user is not None else header or "default", "user_id", "user")
        wanted = request.headers.get("x-seal-agent")
        if tenant.agent_id is not None:
            if wanted is not None and wanted != tenant.agent_id:
                raise ApiError(403, f"this API key cannot reach agent {wanted!r}",
                               type_="permission_error", code="wrong_tenant")
            agent_id = tenant.agent_id
        else:
            agent_id = _checked(wanted or "default", "agent_id", None)
        session = request.headers.get("x-seal-session") or self.config.serve.session_id
        return _Scope(user_id, agent_id, _checked(session, "session_id", None))

    def check_model(self, model: str) -> None:
        if model not in (self.model_id, self.config.model.name):
            raise ApiError(404, f"the model {model!r} does not exist; this server serves "
                           f"{self.model_id!r}", param="model", code="model_not_found")

    # -- running blocking work ---------------------------------------------------------
    async def locked(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on a worker thread, holding the turn lock."""

        def run() -> T:
            with self.turns:
                return fn()

        return await run_in_threadpool(run)

    def model_entry(self) -> dict[str, Any]:
        # max_model_len as vLLM lists it: a remote seal-agent backend sizes its prompts by it
        return {"id": self.model_id, "object": "model", "created": self.created,
                "owned_by": "seal-agent", "max_model_len": self.agent.context_length}


def _tenant(request: Request) -> Tenant:
    server: _Server = request.app.state.seal
    return server.tenant(request)


# Every /v1 endpoint takes one: the tenant of the request's API key (401 without one).
Who = Annotated[Tenant, Depends(_tenant)]


def create_app(agent: SealAgent, *, warm: bool = True, close_agent: bool = False) -> FastAPI:
    """The server around ``agent``.

    ``warm`` loads the model, the embedder and the buffer at start-up, so the
    first request does not pay for it. ``close_agent`` closes the agent at
    shutdown (finishing queued derivations); the CLI passes True, a caller
    that owns the agent keeps it open.
    """
    server = _Server(agent)

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

    @app.get("/v1/models")
    async def list_models(_: Who) -> dict[str, Any]:
        return {"object": "list", "data": [server.model_entry()]}

    @app.get("/v1/models/{model:path}")
    async def get_model(model: str, _: Who) -> dict[str, Any]:
        server.check_model(model)
        return server.model_entry()

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(
        request: Request, body: ChatCompletionRequest, who: Who
    ) -> JSONResponse | StreamingResponse:
        server.check_model(body.model)
        scope = server.scope(request, who, body.user)
        convo = _conversation(body, journal_history="x-seal-session" in request.headers)
        params = _params(body, agent.config.agent.max_new_tokens)
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
            return JSONResponse(_completion(server.model_id, result, used, params))
        # Every check of the turn runs here, before the response starts: a bad
        # request still gets its status code, and nothing is logged for it.
        stream = await server.locked(lambda: agent.stream(convo.message, **kwargs))
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _sse(server, stream, params, include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- memory ---------------------------------------------------------------------------
    @app.post("/v1/memory/search")
    async def search(request: Request, body: SearchRequest,
                     who: Who) -> dict[str, Any]:
        scope = server.scope(request, who, body.user)
        hits = await run_in_threadpool(lambda: agent.recall(
            body.query, user_id=scope.user_id, agent_id=scope.agent_id, top_k=body.top_k,
            min_similarity=body.min_similarity, include_consolidated=body.include_consolidated,
        ))
        return {"object": "list", "user": scope.user_id, "agent": scope.agent_id,
                "data": [_memory(m) for m in hits]}

    @app.post("/v1/memory/remember")
    async def remember(request: Request, body: RememberRequest,
                       who: Who) -> dict[str, Any]:
        scope = server.scope(request, who, body.user)
        session = _checked(body.session, "session_id", "session") if body.session else None
        probes = [(p.question, p.answer) for p in body.probes]
        # Derivation may decode (agent.derive = "inline"): under the turn lock.
        result = await server.locked(lambda: agent.remember(
            body.text, probes=probes, user_id=scope.user_id, agent_id=scope.agent_id,
            session_id=session or scope.session_id, metadata={"via": "serve"},
        ))
        return {"object": "memory.remembered", "interaction_id": result.interaction_id,
                "derive_status": result.derive_status.value, "user": scope.user_id,
                "agent": scope.agent_id}

    @app.post("/v1/memory/forget")
    async def forget(request: Request, body: ForgetRequest,
                     who: Who) -> dict[str, Any]:
        scope = server.scope(request, who, body.user)
        if sum([body.memory_id is not None, body.interaction_id is not None, body.all]) != 1:
            raise ApiError(400, "give exactly one of memory_id, interaction_id or all: true")

        def run() -> int:
            if body.memory_id is not None:
                owner = agent.journal.get_self_edit(body.memory_id).namespace
                _owned(owner.user_id, owner.agent_id, scope, "memory", body.memory_id)
                return agent.forget(memory_id=body.memory_id)
            if body.interaction_id is not None:
                owner = agent.journal.get_interaction(body.interaction_id).namespace
                _owned(owner.user_id, owner.agent_id, scope, "interaction", body.interaction_id)
                return agent.forget(interaction_id=body.interaction_id)
            # Always with the agent id: "every agent of this user" would cross tenants.
            return agent.forget(user_id=scope.user_id, agent_id=scope.agent_id)

        n = await run_in_threadpool(run)
        return {"object": "memory.forgotten", "forgotten": n, "user": scope.user_id,
                "agent": scope.agent_id}

    @app.post("/v1/memory/consolidate")
    async def consolidate(request: Request, body: ConsolidateRequest,
                          who: Who) -> dict[str, Any]:
        scope = server.scope(request, who, body.user)
        future = server.consolidator.submit(
            agent.consolidate, user_id=scope.user_id, agent_id=scope.agent_id,
            dry_run=body.dry_run, max_interactions=body.max_interactions,
        )
        report = await asyncio.wrap_future(future)  # runs on even if the client leaves
        return {"object": "memory.consolidation", **report.model_dump(mode="json")}

    @app.get("/v1/memory/adapters")
    async def adapters(request: Request, who: Who,
                       user: Annotated[str | None, Query()] = None) -> dict[str, Any]:
        scope = server.scope(request, who, user)
        versions = await run_in_threadpool(agent.adapters.list, scope.user_id, scope.agent_id)
        data = [{"id": v.id, "version": v.version, "name": v.name, "active": v.active,
                 "created_at": v.created_at, "metrics": v.metrics} for v in versions]
        return jsonable_encoder({"object": "list", "user": scope.user_id,
                                 "agent": scope.agent_id, "data": data})

    return app


# -- the chat request ------------------------------------------------------------------------
def _conversation(body: ChatCompletionRequest, *, journal_history: bool) -> _Conversation:
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
    return _Conversation(turns[-1].content, "\n\n".join(system) if system else None, history)


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


def _params(body: ChatCompletionRequest, default_tokens: int) -> GenerationParams:
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


# -- the answers -----------------------------------------------------------------------------
def _finish_reason(completion_tokens: int, params: GenerationParams) -> str:
    # The logged answer is trimmed and re-tokenized, so this is the best reading of it.
    return "length" if completion_tokens >= params.max_new_tokens else "stop"


def _seal(result: ChatResult) -> dict[str, Any]:
    """What the turn did with memory (an extension field; OpenAI clients keep it)."""
    ns = result.namespace
    return {"interaction_id": result.interaction_id, "user": ns.user_id, "agent": ns.agent_id,
            "session": ns.session_id, "memories": [_memory(m) for m in result.memories],
            "adapter": result.adapter, "history_turns": result.history_turns,
            "dropped_turns": result.dropped_turns, "seconds": result.seconds}


def _memory(m: Memory) -> dict[str, Any]:
    return {"id": m.id, "text": m.text, "score": round(m.score, 4), "format": m.format.value,
            "interaction_id": m.interaction_id, "status": m.status.value}


def _usage(result: ChatResult, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": result.prompt_tokens + completion_tokens}


def _completion(model: str, result: ChatResult, used: int, params: GenerationParams) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{result.interaction_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": result.answer, "refusal": None},
            "finish_reason": _finish_reason(used, params),
            "logprobs": None,
        }],
        "usage": _usage(result, used),
        "system_fingerprint": None,
        "seal": _seal(result),
    }


async def _sse(
    server: _Server, stream: ChatStream, params: GenerationParams, include_usage: bool
) -> AsyncIterator[str]:
    """The streamed turn as server-sent events, as OpenAI clients read them.

    Decoding runs on a worker thread that holds the turn lock and hands each
    piece to this coroutine. When the client goes away, Starlette cancels this
    coroutine; ``cancel`` then tells the worker to close the stream, which
    stops decoding and logs what was shown (``closed_early``).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancel = threading.Event()

    def put(kind: str, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # RuntimeError: the loop closed (server stopped)
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def pump() -> None:
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

    loop.run_in_executor(None, pump)
    cid = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk = {"id": cid, "object": "chat.completion.chunk", "created": created,
                 "model": server.model_id, "choices": choices, "system_fingerprint": None, **extra}
        return f"data: {json.dumps(chunk)}\n\n"

    def delta(content: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": content, "finish_reason": finish, "logprobs": None}]

    try:
        yield event(delta({"role": "assistant", "content": ""}))
        while True:
            kind, value = await queue.get()
            if kind == "text":
                yield event(delta({"content": value}))
            elif kind == "error":
                status, body = describe(value)
                if status >= 500:
                    log.error("streamed turn failed", exc_info=value)
                yield f"data: {json.dumps(body)}\n\n"
                break
            else:
                result, used = value
                yield event(delta({}, _finish_reason(used, params)),
                            seal=_seal(result) if result else None)
                if include_usage and result is not None:
                    yield event([], usage=_usage(result, used))
                break
        yield "data: [DONE]\n\n"
    finally:
        cancel.set()


# -- helpers -------------------------------------------------------------------------------
def _checked(value: str, what: str, param: str | None) -> str:
    try:
        return check_id(value, what)
    except InvalidNamespaceError as exc:
        raise ApiError(400, str(exc), param=param) from exc


def _owned(user_id: str, agent_id: str, scope: _Scope, what: str, ident: str) -> None:
    """Another namespace's ids answer as if they did not exist: nothing leaks about them."""
    if (user_id, agent_id) != (scope.user_id, scope.agent_id):
        raise ApiError(404, f"no {what} with id {ident!r} for user {scope.user_id!r} and "
                       f"agent {scope.agent_id!r}", type_="not_found_error")


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
