"""`seal-agent consolidate` and `seal-agent adapters list|show|rollback|prune`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from seal_agent.cli._common import (
    ConfigOpt,
    HomeOpt,
    console,
    friendly_errors,
    open_agent,
    quiet_libraries,
)
from seal_agent.runs import ReportStatus

if TYPE_CHECKING:
    from seal_agent.agent import SealAgent
    from seal_agent.consolidation import ConsolidationReport

adapters_app = typer.Typer(help="List, inspect, roll back and prune memory adapters.", no_args_is_help=True)

UserArg = Annotated[str | None, typer.Option("--user", "-u", help="User id (default: every user with buffered memories).")]
AgentArg = Annotated[str, typer.Option("--agent", "-a", help="Agent id.")]


@friendly_errors
def consolidate(
    user: UserArg = None,
    agent: AgentArg = "default",
    k: Annotated[int | None, typer.Option("--k", min=1, help="Candidates per interaction.")] = None,
    max_interactions: Annotated[
        int | None, typer.Option("--max-interactions", min=1, help="At most this many per run.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Run the loop and the gate, promote nothing.")
    ] = False,
    watch: Annotated[
        bool,
        typer.Option("--watch", help="Keep running: consolidate each namespace when its trigger fires."),
    ] = False,
    policy: Annotated[
        str | None,
        typer.Option("--policy", help="Sample candidates with this trained self-edit policy "
                     "(a version number, id, or 'active'; see `seal-agent policy list`)."),
    ] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Move buffered memories into the namespace's LoRA adapter (the SEAL reward loop)."""
    quiet_libraries()
    with open_agent(home, config, user=user or "default", agent=agent, read_only=True) as ag:
        if watch:
            _watch(ag, user, agent, k, max_interactions, dry_run, policy)
            return
        targets = [(user, agent)] if user else _namespaces_with_buffer(ag)
        if not targets:
            console.print("nothing to consolidate: the buffer is empty")
            return
        for u, a in targets:
            report = _run_one(ag, u, a, k, max_interactions, dry_run, policy)
            _print_report(report)


def _namespaces_with_buffer(ag: SealAgent) -> list[tuple[str, str]]:
    return ag.journal.buffered_namespaces()


def _run_one(
    ag: SealAgent, user: str, agent: str, k: int | None, max_interactions: int | None, dry_run: bool,
    policy: str | None = None,
) -> ConsolidationReport:
    from seal_agent.progress import progress_bar

    rewards: list[str] = []
    with progress_bar(console, lead=("[bold]{task.fields[ns]}[/]", "{task.description}"),
                      tail=("{task.fields[rewards]}",)) as bar:
        task = bar.add_task("loading models", total=None, ns=f"{user}/{agent}", rewards="")
        with console.status("loading the model…"):
            _ = ag.lm

        def on_event(event: Any) -> None:
            if event.stage == "score" and event.reward is not None:
                rewards.append(f"{event.reward:+.2f}")
            label = {
                "probes": "probes", "before": "answers before training",
                "candidates": "sampling candidates",
                "train": f"candidate {event.candidate}/{event.candidates}: training",
                "score": f"candidate {event.candidate}/{event.candidates}: scored",
                "update": "training the adapter update", "gate": "gate: recall and retention",
                "promote": "promoting", "done": "done",
            }.get(event.stage, event.stage)
            completed = event.interaction - (0 if event.stage in ("update", "gate", "promote", "done") else 1)
            bar.update(task, description=label, total=event.interactions or None,
                       completed=completed, rewards=" ".join(rewards[-6:]))

        return ag.consolidate(
            user_id=user, agent_id=agent, k=k, max_interactions=max_interactions,
            dry_run=dry_run, progress=on_event, policy_version=policy,
        )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_report(report: ConsolidationReport) -> None:
    ns = f"{report.namespace.user_id}/{report.namespace.agent_id}"
    if report.status is ReportStatus.EMPTY:
        console.print(f"{ns}: nothing to consolidate (the buffer is empty)")
        return
    if report.recall is not None:
        _print_recall(ns, report)
        return
    table = Table(title=f"consolidation of {ns}: {report.status}", show_lines=False)
    for col in ("interaction", "probes", "before", "candidates (format: reward)", "outcome"):
        table.add_column(col)
    for r in report.interactions:
        cands = ", ".join(
            f"{'*' if i == r.chosen else ''}{c.format}: {_fmt(c.reward) if c.reward is not None else 'no lines'}"
            for i, c in enumerate(r.candidates)
        )
        table.add_row(r.interaction_id, str(r.probes), _fmt(r.score_before), cands or "-", r.outcome)
    console.print(table)
    summary = Table(show_header=False, box=None)
    summary.add_row("scorer", f"{report.scorer} (mean over probes; no memory in context)")
    summary.add_row("candidates tried", str(report.candidates_tried))
    summary.add_row("chosen / not positive / given up / no probes",
                    f"{report.chosen} / {report.not_positive} / {report.given_up} / {report.skipped_no_probes}")
    summary.add_row("recall before -> after", f"{_fmt(report.recall_before)} -> {_fmt(report.recall_after)}")
    summary.add_row("retention before -> after",
                    f"{_fmt(report.retention_before)} -> {_fmt(report.retention_after)} "
                    f"({report.retention_probes} earlier probes)")
    summary.add_row("lines dropped (faithfulness)", ", ".join(f"{k} {v}" for k, v in sorted(report.lines_dropped.items())) or "0")
    summary.add_row("directive fallbacks", ", ".join(f"{k} {v}" for k, v in sorted(report.directive_fallbacks.items())) or "0")
    summary.add_row("tokens trained", str(report.tokens_trained))
    summary.add_row("time", f"{report.seconds:.1f} s")
    summary.add_row("result", report.reason + (f" (adapter v{report.version:04d})" if report.version else ""))
    console.print(summary)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def _print_recall(ns: str, report: ConsolidationReport) -> None:
    """Recall mode: what the weights say now, and what stays retrievable."""
    r = report.recall or {}
    table = Table(show_header=False, box=None, title=f"consolidation of {ns}: {report.status}")
    if "check_questions" in r:
        table.add_row("said from the weights (greedy, nothing retrieved)",
                      f"{r['weights_said_before']} -> {r['weights_said_after']} of "
                      f"{r['check_questions']} check questions")
        table.add_row("new memories said from the weights / drained / trained",
                      f"{r['verified_new']} / {r.get('drained_new', r['verified_new'])} / "
                      f"{r['memories_new']}")
        table.add_row("earlier memories still said / back in retrieval",
                      f"{r['verified_earlier']} / {r['returned_to_retrieval']}")
        if r.get("memory_on_questions") is not None:
            table.add_row("memory-on answers before -> after",
                          f"{r['memory_on_before']} -> {r['memory_on_after']} of "
                          f"{r['memory_on_questions']}")
        table.add_row("general answers the base gets right, kept",
                      f"{r['general_after']}/{r['general_base']}")
        table.add_row("epochs / candidate wins", f"{r['epochs']} / {r['candidate_wins']}")
    table.add_row("uncheckable (stay buffered) / superseded",
                  f"{r.get('uncheckable', 0)} / {r.get('superseded', 0)}")
    table.add_row("tokens trained / time", f"{report.tokens_trained} / {report.seconds:.1f} s")
    table.add_row("result", report.reason + (f" (adapter v{report.version:04d})" if report.version else ""))
    console.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def _watch(ag: SealAgent, user: str | None, agent: str, k: int | None,
           max_interactions: int | None, dry_run: bool, policy: str | None = None) -> None:
    """Poll the journal; consolidate a namespace when it has enough new memories or went idle."""
    from seal_agent.errors import ConsolidationBusyError

    cfg = ag.config.consolidation
    console.print(
        f"watching {ag.config.home}: consolidate after {cfg.trigger_interactions} new interactions "
        f"or {cfg.trigger_idle_seconds:.0f} s idle; checking every {cfg.watch_interval:.0f} s (Ctrl-C stops)"
    )
    try:
        while True:
            for u, a in ([(user, agent)] if user else _namespaces_with_buffer(ag)):
                if _due(ag, u, a):
                    try:
                        _print_report(_run_one(ag, u, a, k, max_interactions, dry_run, policy))
                    except ConsolidationBusyError as exc:
                        console.print(f"[yellow]{exc}[/]")
            time.sleep(cfg.watch_interval)
    except KeyboardInterrupt:
        console.print("stopped")


def _due(ag: SealAgent, user: str, agent: str) -> bool:
    from datetime import UTC, datetime

    cfg = ag.config.consolidation
    count, last = ag.journal.buffered_backlog(user, agent, max_tries=cfg.max_tries)
    if not count or last is None:
        return False
    idle = (datetime.now(UTC) - last).total_seconds()
    return count >= cfg.trigger_interactions or idle >= cfg.trigger_idle_seconds


# -- adapters -----------------------------------------------------------------------
UserReq = Annotated[str, typer.Option("--user", "-u", help="User id.")]


@adapters_app.command("list")
@friendly_errors
def adapters_list(user: UserReq = "default", agent: AgentArg = "default",
                  home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """The namespace's adapter versions, newest first."""
    with open_agent(home, config, read_only=True) as ag:
        versions = ag.adapters.list(user, agent)
    if not versions:
        console.print(f"no adapters for {user}/{agent}")
        return
    table = Table("", "version", "id", "created", "recall before -> after", "retention before -> after")
    for v in versions:
        m = v.metrics
        table.add_row("*" if v.active else "", v.name, v.id, v.created_at.isoformat(timespec="seconds"),
                      f"{_fmt(m.get('recall_before'))} -> {_fmt(m.get('recall_after'))}",
                      f"{_fmt(m.get('retention_before'))} -> {_fmt(m.get('retention_after'))}")
    console.print(table)


@adapters_app.command("show")
@friendly_errors
def adapters_show(version_id: Annotated[str, typer.Argument(help="A version id (see `adapters list`).")],
                  home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """One version's manifest: files and checksums, metrics, and whether it verifies."""
    import json

    from seal_agent.errors import CorruptAdapterError
    from seal_agent.facts_store import FactStore

    with open_agent(home, config, read_only=True) as ag:
        version = ag.adapters.get(version_id)
        try:
            ag.adapters.verify(version)
            verdict = "[green]checksums verify[/]"
        except CorruptAdapterError as exc:
            verdict = f"[red]{exc}[/]"
        manifest = json.loads((version.path / "manifest.json").read_text())
        records = FactStore(ag.journal).states(version.user_id, version.agent_id)
    console.print(f"{version.user_id}/{version.agent_id} {version.name} ({version.id}) "
                  f"{'active' if version.active else 'inactive'}: {verdict}")
    mine = [r for r in records.values() if r.version_id == version.id and r.checks]
    if mine:  # checked when this version was promoted: greedy, nothing retrieved
        console.print(
            f"memories said from these weights: {sum(r.state.value == 'said' for r in mine)}/"
            f"{len(mine)} ({sum(r.said for r in mine)}/{sum(r.checks for r in mine)} check questions)")
    console.print_json(json.dumps({k: v for k, v in manifest.items() if k != "config"}))


@adapters_app.command("rollback")
@friendly_errors
def adapters_rollback(user: UserReq = "default", agent: AgentArg = "default",
                      to: Annotated[int | None, typer.Option("--to", help="Version number (default: the one before).")] = None,
                      home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Make an earlier version active again (its checksums are verified first)."""
    with open_agent(home, config, read_only=True) as ag:
        version = ag.adapters.rollback(user, agent, to_version=to)
    console.print(f"{user}/{agent}: {version.name} is active")


@adapters_app.command("prune")
@friendly_errors
def adapters_prune(user: UserReq = "default", agent: AgentArg = "default",
                   keep: Annotated[int | None, typer.Option("--keep", min=1, help="Versions to keep (default from config).")] = None,
                   home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Delete the oldest versions beyond --keep (never the active one)."""
    with open_agent(home, config, read_only=True) as ag:
        removed = ag.adapters.prune(user, agent, keep=keep or ag.config.consolidation.keep_versions)
    console.print(f"removed {len(removed)} versions" + (": " + ", ".join(v.name for v in removed) if removed else ""))
