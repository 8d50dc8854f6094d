"""`seal-agent serve`: the agent behind the OpenAI chat-completions API, with memory.

``app.create_app(agent)`` builds the FastAPI application (fastapi is imported
there, not here); ``server`` holds what the endpoints share; ``chat`` and
``memory`` are the routes, ``completions`` reads a request into a turn and
writes the answer, ``stream`` sends a streamed turn as server-sent events;
``auth`` turns API keys into tenants and decides where the server may listen;
``schemas`` holds the request and response bodies. The endpoints are
documented in docs/serving.md.
"""

from __future__ import annotations

from seal_agent.serve.auth import Keyring, Tenant, check_bind, is_loopback

__all__ = ["Keyring", "Tenant", "check_bind", "is_loopback"]
