"""`seal-agent memories search|list|forget`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from seal_agent.cli._common import (
    AgentOpt,
    ConfigOpt,
    HomeOpt,
    UserOpt,
    console,
    friendly_errors,
    open_agent,
    quiet_libraries,
)

app = typer.Typer(help="Search, list and forget memories.", no_args_is_help=True)


@app.command("search")
@friendly_errors
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, help="How many.")] = None,
    min_similarity: Annotated[
        float | None, typer.Option(help="Cosine-similarity floor (default from config).")
    ] = None,
    user: UserOpt = "default",
    agent: AgentOpt = "default",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Retrieve the memories most relevant to QUERY (as the agent would)."""
    quiet_libraries()
    with open_agent(home, config, user=user, agent=agent, read_only=True) as ag:
        hits = ag.recall(query, top_k=top_k, min_similarity=min_similarity)
    if not hits:
        console.print(f"no memories of user {user!r} / agent {agent!r} match that query")
        return
    table = Table("score", "id", "format", "memory")
    for m in hits:
        table.add_row(f"{m.score:.3f}", m.id, m.format.value, m.text)
    console.print(table)


@app.command("list")
@friendly_errors
def list_(
    status: Annotated[
        str | None, typer.Option(help="buffered | consolidated | rejected (default: all)")
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Only this self-edit format.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50,
    user: UserOpt = "default",
    agent: AgentOpt = "default",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List a namespace's memories from the journal (loads no model)."""
    from seal_agent.errors import InputError
    from seal_agent.types import MemoryStatus, SelfEditFormat

    try:
        statuses = [MemoryStatus(status)] if status else None
        wanted = SelfEditFormat(fmt) if fmt else None
    except ValueError as exc:
        raise InputError(str(exc)) from None
    from seal_agent.facts_store import FactStore

    with open_agent(home, config, user=user, agent=agent, read_only=True) as ag:
        edits = ag.journal.self_edits(user_id=user, agent_id=agent, status=statuses)
        edits = [e for e in edits if wanted is None or e.format is wanted][:limit]
        recall = FactStore(ag.journal).state_of({e.interaction_id for e in edits})
    if not edits:
        console.print(f"no memories for user {user!r} / agent {agent!r}")
        return
    # "weights": whether the adapter said the memory's check questions back (greedy,
    # nothing retrieved) at the last consolidation, e.g. "said 2/2"
    table = Table("id", "interaction", "format", "status", "weights", "memory")
    for e in edits:
        r = recall.get(e.interaction_id)
        weights = "-" if r is None else (
            r.state.value if not r.checks else f"{r.state.value} {r.said}/{r.checks}")
        table.add_row(e.id, e.interaction_id, e.format.value, e.status.value, weights, e.text)
    console.print(table)


@app.command("forget")
@friendly_errors
def forget(
    memory_id: Annotated[str | None, typer.Option("--id", help="One memory id.")] = None,
    interaction: Annotated[
        str | None, typer.Option("--interaction", help="An interaction and all derived from it.")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="All of this user's memories (with --agent: that pair).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before --all.")] = False,
    user: UserOpt = "default",
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Agent id.")] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Delete memories from the journal and the buffer."""
    from seal_agent.errors import ConfigError

    if sum([memory_id is not None, interaction is not None, everything]) != 1:
        raise ConfigError("give exactly one of --id, --interaction or --all")
    if everything and not yes:
        typer.confirm(f"Forget everything of user {user!r}?", abort=True)
    quiet_libraries()
    with open_agent(home, config, user=user, agent=agent or "default", read_only=True) as ag:
        if memory_id is not None:
            n = ag.forget(memory_id=memory_id)
        elif interaction is not None:
            n = ag.forget(interaction_id=interaction)
        else:
            n = ag.forget(user_id=user, agent_id=agent)
    console.print(f"forgot {n} memories")
