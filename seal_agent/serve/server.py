"""What every endpoint shares: the agent, the keys, the turn lock and the request's namespace.

:class:`Server` is built once per application and kept on ``app.state.seal``;
the routes reach it through the :data:`Served` dependency and their tenant
through :data:`Who`. Resolving a request to its (user, agent, session)
namespace lives here too, so the chat and the memory routes agree on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from seal_agent.agent import SealAgent
from seal_agent.errors import InvalidNamespaceError
from seal_agent.serve.auth import Keyring, Tenant
from seal_agent.serve.errors import ApiError
from seal_agent.types import Memory, check_id

__all__ = ["Scope", "Served", "Server", "Who", "checked", "memory_json", "owned"]

T = TypeVar("T")


@dataclass(frozen=True)
class Scope:
    """The namespace one request acts in."""

    user_id: str
    agent_id: str
    session_id: str


class Server:
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

    def scope(self, request: Request, tenant: Tenant, user: str | None) -> Scope:
        header = request.headers.get("x-seal-user")
        if user is not None and header is not None and user != header:
            raise ApiError(400, f"the body's user {user!r} and X-Seal-User {header!r} differ",
                           param="user")
        user_id = checked(user if user is not None else header or "default", "user_id", "user")
        wanted = request.headers.get("x-seal-agent")
        if tenant.agent_id is not None:
            if wanted is not None and wanted != tenant.agent_id:
                raise ApiError(403, f"this API key cannot reach agent {wanted!r}",
                               type_="permission_error", code="wrong_tenant")
            agent_id = tenant.agent_id
        else:
            agent_id = checked(wanted or "default", "agent_id", None)
        session = request.headers.get("x-seal-session") or self.config.serve.session_id
        return Scope(user_id, agent_id, checked(session, "session_id", None))

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


def _server(request: Request) -> Server:
    server: Server = request.app.state.seal
    return server


def _tenant(request: Request) -> Tenant:
    return _server(request).tenant(request)


# The application's one Server, for the routes that live outside create_app.
Served = Annotated[Server, Depends(_server)]
# Every /v1 endpoint takes one: the tenant of the request's API key (401 without one).
Who = Annotated[Tenant, Depends(_tenant)]


def checked(value: str, what: str, param: str | None) -> str:
    """``value`` as a valid namespace id, or a 400 that names ``param``."""
    try:
        return check_id(value, what)
    except InvalidNamespaceError as exc:
        raise ApiError(400, str(exc), param=param) from exc


def owned(user_id: str, agent_id: str, scope: Scope, what: str, ident: str) -> None:
    """Another namespace's ids answer as if they did not exist: nothing leaks about them."""
    if (user_id, agent_id) != (scope.user_id, scope.agent_id):
        raise ApiError(404, f"no {what} with id {ident!r} for user {scope.user_id!r} and "
                       f"agent {scope.agent_id!r}", type_="not_found_error")


def memory_json(m: Memory) -> dict[str, Any]:
    """A recalled memory as the chat and the memory endpoints both show it."""
    return {"id": m.id, "text": m.text, "score": round(m.score, 4), "format": m.format.value,
            "interaction_id": m.interaction_id, "status": m.status.value}
