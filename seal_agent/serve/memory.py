"""The ``/v1/memory`` endpoints: search, remember, forget, consolidate, list adapters.

Each acts in the request's namespace (:meth:`Server.scope`); ids of another
namespace answer 404, as if they did not exist. ``remember`` may decode
(inline derivation), so it holds the turn lock; consolidation runs on the
server's single consolidation worker.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from starlette.concurrency import run_in_threadpool

from seal_agent.serve.errors import ApiError
from seal_agent.serve.schemas import (
    ConsolidateRequest,
    ForgetRequest,
    RememberRequest,
    SearchRequest,
)
from seal_agent.serve.server import Scope, Served, Server, Who, checked, memory_json, owned

__all__ = ["router"]

router = APIRouter(prefix="/v1/memory")


@router.post("/search")
async def search(request: Request, body: SearchRequest, who: Who,
                 server: Served) -> dict[str, Any]:
    scope = server.scope(request, who, body.user)
    hits = await run_in_threadpool(lambda: server.agent.recall(
        body.query, user_id=scope.user_id, agent_id=scope.agent_id, top_k=body.top_k,
        min_similarity=body.min_similarity, include_consolidated=body.include_consolidated,
    ))
    return {"object": "list", "user": scope.user_id, "agent": scope.agent_id,
            "data": [memory_json(m) for m in hits]}


@router.post("/remember")
async def remember(request: Request, body: RememberRequest, who: Who,
                   server: Served) -> dict[str, Any]:
    scope = server.scope(request, who, body.user)
    session = checked(body.session, "session_id", "session") if body.session else None
    probes = [(p.question, p.answer) for p in body.probes]
    # Derivation may decode (agent.derive = "inline"): under the turn lock.
    result = await server.locked(lambda: server.agent.remember(
        body.text, probes=probes, user_id=scope.user_id, agent_id=scope.agent_id,
        session_id=session or scope.session_id, metadata={"via": "serve"},
    ))
    return {"object": "memory.remembered", "interaction_id": result.interaction_id,
            "derive_status": result.derive_status.value, "user": scope.user_id,
            "agent": scope.agent_id}


@router.post("/forget")
async def forget(request: Request, body: ForgetRequest, who: Who,
                 server: Served) -> dict[str, Any]:
    scope = server.scope(request, who, body.user)
    if sum([body.memory_id is not None, body.interaction_id is not None, body.all]) != 1:
        raise ApiError(400, "give exactly one of memory_id, interaction_id or all: true")
    n = await run_in_threadpool(_forget, server, body, scope)
    return {"object": "memory.forgotten", "forgotten": n, "user": scope.user_id,
            "agent": scope.agent_id}


def _forget(server: Server, body: ForgetRequest, scope: Scope) -> int:
    agent = server.agent
    if body.memory_id is not None:
        owner = agent.journal.get_self_edit(body.memory_id).namespace
        owned(owner.user_id, owner.agent_id, scope, "memory", body.memory_id)
        return agent.forget(memory_id=body.memory_id)
    if body.interaction_id is not None:
        owner = agent.journal.get_interaction(body.interaction_id).namespace
        owned(owner.user_id, owner.agent_id, scope, "interaction", body.interaction_id)
        return agent.forget(interaction_id=body.interaction_id)
    # Always with the agent id: "every agent of this user" would cross tenants.
    return agent.forget(user_id=scope.user_id, agent_id=scope.agent_id)


@router.post("/consolidate")
async def consolidate(request: Request, body: ConsolidateRequest, who: Who,
                      server: Served) -> dict[str, Any]:
    scope = server.scope(request, who, body.user)
    future = server.consolidator.submit(
        server.agent.consolidate, user_id=scope.user_id, agent_id=scope.agent_id,
        dry_run=body.dry_run, max_interactions=body.max_interactions,
    )
    report = await asyncio.wrap_future(future)  # runs on even if the client leaves
    return {"object": "memory.consolidation", **report.model_dump(mode="json")}


@router.get("/adapters")
async def adapters(request: Request, who: Who, server: Served,
                   user: Annotated[str | None, Query()] = None) -> dict[str, Any]:
    scope = server.scope(request, who, user)
    versions = await run_in_threadpool(server.agent.adapters.list, scope.user_id, scope.agent_id)
    data = [{"id": v.id, "version": v.version, "name": v.name, "active": v.active,
             "created_at": v.created_at, "metrics": v.metrics} for v in versions]
    answer: dict[str, Any] = jsonable_encoder({"object": "list", "user": scope.user_id,
                                               "agent": scope.agent_id, "data": data})
    return answer
