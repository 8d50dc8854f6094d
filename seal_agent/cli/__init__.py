"""The `seal-agent` command line: one file per command group, joined here."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from seal_agent.cli import chat as _chat
from seal_agent.cli import consolidate as _consolidate
from seal_agent.cli import eval as _eval
from seal_agent.cli import memories as _memories
from seal_agent.cli import models as _models
from seal_agent.cli import policy as _policy
from seal_agent.cli import serve as _serve
from seal_agent.cli._common import (
    AgentOpt,
    ConfigOpt,
    HomeOpt,
    UserOpt,
    console,
    fmt_metric,
    friendly_errors,
    open_agent,
    quiet_libraries,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="seal-agent",
    help="Persistent agent memory: a buffer that remembers at once, and consolidation "
    "that moves memories into LoRA weights.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("chat")(_chat.chat)
app.command("remember")(_chat.remember)
app.add_typer(_memories.app, name="memories")
app.add_typer(_models.app, name="models")
app.command("consolidate")(_consolidate.consolidate)
app.add_typer(_consolidate.adapters_app, name="adapters")
app.add_typer(_policy.app, name="policy")
app.add_typer(_eval.app, name="eval")
app.command("serve")(_serve.serve)


@app.command("status")
@friendly_errors
def status(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user.")] = None,
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent.")] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The memory home, the models, and what the journal holds (loads no model)."""
    from seal_agent.types import check_id

    for value, what in ((user, "user_id"), (agent, "agent_id")):
        if value is not None:
            check_id(value, what)
    with open_agent(home, config, read_only=True) as ag:
        info = ag.status(user_id=user, agent_id=agent)
    table = Table(show_header=False, box=None)
    for key in ("home", "journal", "schema_version", "model", "embedder", "buffer", "derive_mode"):
        table.add_row(key, str(info[key]))
    counts = info["counts"]
    table.add_row("interactions", str(counts["interactions"]))
    table.add_row("  derivation", ", ".join(f"{k} {v}" for k, v in counts["derive"].items()))
    table.add_row("self-edits", ", ".join(f"{k} {v}" for k, v in counts["self_edits"].items()))
    table.add_row("  by format", ", ".join(f"{k} {v}" for k, v in sorted(counts["formats"].items())) or "-")
    table.add_row("probes", str(counts["probes"]))
    weights = info["weights_recall"]
    table.add_row(
        "said from the weights",
        f"{weights['said_from_weights']}/{weights['check_questions']} check questions; memories "
        + ", ".join(f"{k} {v}" for k, v in weights["memories"].items()),
    )
    console.print(table)
    run = info.get("last_run")
    if run:
        m = run["metrics"]
        last = Table(show_header=False, box=None, title="last consolidation run")
        last.add_row("run", f"{run['id']} ({run['user_id']}/{run['agent_id']}), {run['status']}"
                     + (f": {m.get('outcome')}" if m.get("outcome") else ""))
        last.add_row("started / finished", f"{run['started_at']} / {run.get('finished_at') or '-'}")
        last.add_row("candidates tried / chosen", f"{m.get('candidates_tried', '-')} / {m.get('chosen', '-')}")
        last.add_row("recall before -> after", f"{fmt_metric(m.get('recall_before'))} -> {fmt_metric(m.get('recall_after'))}")
        last.add_row("retention before -> after", f"{fmt_metric(m.get('retention_before'))} -> {fmt_metric(m.get('retention_after'))}")
        last.add_row("tokens trained / time", f"{m.get('tokens_trained', '-')} / {m.get('seconds', '-')} s")
        if m.get("error"):
            last.add_row("error", str(m["error"]))
        console.print(last)
    if info["namespaces"]:
        ns = Table("user", "agent", "interactions", "last")
        for row in info["namespaces"]:
            ns.add_row(row["user_id"], row["agent_id"], str(row["n"]), row["last"])
        console.print(ns)


@app.command("reprocess")
@friendly_errors
def reprocess(
    everything: Annotated[
        bool, typer.Option("--all", help="Re-derive every interaction, not only pending/failed.")
    ] = False,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user.")] = None,
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent.")] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Redo self-edit derivation that failed or was cut short, and repair the buffer."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    quiet_libraries()
    with open_agent(home, config, read_only=True) as ag, Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("deriving self-edits", total=None)
        report = ag.reprocess(
            user_id=user,
            agent_id=agent,
            include_done=everything,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    console.print(
        f"derived {report.derived}, failed {report.failed}, "
        f"re-indexed {report.reindexed}, orphans removed {report.orphans_removed}"
    )
    if report.failed:
        raise typer.Exit(code=1)


def main() -> None:
    app()


# keep the unused imports referenced for linters: options used by sub-modules
_ = (AgentOpt, UserOpt, quiet_libraries)
