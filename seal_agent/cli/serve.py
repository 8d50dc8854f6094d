"""`seal-agent serve`: the OpenAI-compatible server with memory (docs/serving.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from seal_agent.cli._common import (
    ConfigOpt,
    HomeOpt,
    cli_config,
    console,
    friendly_errors,
    quiet_libraries,
)


@friendly_errors
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default serve.host, 127.0.0.1). "
                     "Anything but loopback needs serve.api_keys.", show_default=False),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port (default serve.port, 8080).", show_default=False),
    ] = None,
    derive: Annotated[
        str | None,
        typer.Option(help="inline | background | off: when self-edits are written "
                     "(default: agent.derive)."),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="uvicorn's log level: critical | error | warning | info | debug.")
    ] = "info",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the agent as an OpenAI-compatible API (chat completions), with memory endpoints."""
    from seal_agent.serve.auth import check_bind

    cfg = cli_config(home, config, derive)
    serve_cfg = cfg.serve.model_copy(
        update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
    )
    check_bind(serve_cfg.host, serve_cfg.api_keys)  # before anything loads

    import uvicorn  # heavy imports only once the command runs

    from seal_agent.agent import SealAgent
    from seal_agent.serve.app import create_app

    quiet_libraries()
    agent = SealAgent(cfg)
    app = create_app(agent, warm=True, close_agent=True)
    tenants = sorted(set(serve_cfg.api_keys.values()))
    console.print(
        f"serving {cfg.serve.model_id or cfg.model.name} from {cfg.home} on "
        f"http://{serve_cfg.host}:{serve_cfg.port}/v1 "
        + (f"({len(serve_cfg.api_keys)} API keys, tenants {', '.join(tenants)})" if tenants
           else "(no API keys: loopback only, no key needed)"),
        highlight=False,
    )
    # uvicorn handles SIGINT/SIGTERM: it stops accepting, lets requests in flight
    # finish, then the app's shutdown closes the agent (queued derivations finish).
    uvicorn.run(app, host=serve_cfg.host, port=serve_cfg.port, log_level=log_level.lower())
