"""What every command shares: the memory-home and namespace options, opening
an agent, and turning SealAgentError into one clear line and exit code 1.

Nothing here imports torch, transformers or chromadb: ``seal-agent --help``
must start in well under a second (a test holds this).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from seal_agent.errors import SealAgentError

if TYPE_CHECKING:
    from seal_agent.agent import SealAgent
    from seal_agent.config import SealAgentConfig

console = Console()
err_console = Console(stderr=True)

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Memory home directory (default: $SEAL_AGENT_HOME or ./.seal-agent).", show_default=False),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="TOML config file (default: <home>/config.toml if present).", show_default=False),
]
UserOpt = Annotated[str, typer.Option("--user", "-u", help="User id: whose memories.")]
AgentOpt = Annotated[str, typer.Option("--agent", "-a", help="Agent id: memories are per (user, agent).")]
SessionOpt = Annotated[str, typer.Option("--session", "-s", help="Session id: scopes the chat history.")]

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Print a SealAgentError as one line on stderr and exit 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SealAgentError as exc:
            err_console.print(
                f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=1) from None

    return wrapper  # type: ignore[return-value]


def open_agent(
    home: Path | None,
    config: Path | None,
    *,
    user: str = "default",
    agent: str = "default",
    session: str = "default",
    derive: str | None = None,
    read_only: bool = False,
) -> SealAgent:
    """Open the memory home; ``derive`` overrides the configured derive mode.

    Commands that only read or delete pass ``read_only=True`` so that opening
    the home never starts a worker on old pending interactions.
    """
    from seal_agent.agent import SealAgent

    cfg = cli_config(home, config, derive)
    return SealAgent(
        cfg, user_id=user, agent_id=agent, session_id=session, resume_pending=not read_only
    )


def cli_config(home: Path | None, config: Path | None, derive: str | None = None) -> SealAgentConfig:
    """The configuration with the command line's --home and --derive on top."""
    from seal_agent.config import load_config

    overrides: dict[str, Any] = {}
    if home is not None:
        overrides["home"] = home
    if derive is not None:
        overrides["agent"] = {"derive": derive}
    return load_config(config, **overrides)


def fmt_metric(value: float | None) -> str:
    """A recall or retention number as the tables show it ("-" when not measured)."""
    return "-" if value is None else f"{value:.3f}"


def quiet_libraries() -> None:
    """Keep model-loading chatter out of the terminal (imports transformers lazily)."""
    from seal_agent.models import quiet_model_loading

    quiet_model_loading()
