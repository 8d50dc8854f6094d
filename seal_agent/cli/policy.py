"""`seal-agent policy train|list|show|rollback`: the self-edit policy (docs/policy.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
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

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from seal_agent.config import PolicyConfig
    from seal_agent.policy.episodes import EpisodeSet
    from seal_agent.policy.rounds import PolicyReport

app = typer.Typer(help="Train the self-edit policy (ReST-EM, GRPO); list, inspect, roll back.",
                  no_args_is_help=True)

UserScope = Annotated[str | None, typer.Option(
    "--user", "-u", help="A per-namespace policy of this user (default: the deployment-wide one).")]
AgentScope = Annotated[str | None, typer.Option("--agent", "-a", help="Agent id of a per-namespace policy.")]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


@app.command("train")
@friendly_errors
def train(
    method: Annotated[str | None, typer.Option("--method", help="rest-em or grpo (default: policy.method).")] = None,
    rounds: Annotated[int | None, typer.Option("--rounds", min=1, help="Rounds (default: policy.rounds).")] = None,
    k: Annotated[int | None, typer.Option("--k", min=2, help="Samples per context (default: policy.k).")] = None,
    source: Annotated[str, typer.Option(
        "--source", help="journal, squad, locomo (dev splits only) or a JSON/JSONL file of passages and probes.")] = "squad",
    contexts: Annotated[int | None, typer.Option("--contexts", min=1, help="Training contexts per round.")] = None,
    select: Annotated[int | None, typer.Option("--select", min=1, help="Held-apart contexts that decide promotion.")] = None,
    repeats: Annotated[int | None, typer.Option("--repeats", min=1, help="Inner loops per sample.")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", help="Sampling temperature.")] = None,
    positive_only: Annotated[bool, typer.Option("--positive-only", help="ReST-EM: keep only positive-reward samples.")] = False,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start a new run even if an unfinished one matches.")] = False,
    data: Annotated[Path | None, typer.Option("--data", help="Data folder (default: $SEAL_AGENT_DATA or ../shared/data).")] = None,
    user: UserScope = None,
    agent: AgentScope = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run policy rounds: sample, reward with the inner loop, update, promote if better."""
    from seal_agent.policy import PolicyStore, scope_of
    from seal_agent.policy.episodes import load_episodes
    from seal_agent.policy.rounds import PolicyTrainer

    quiet_libraries()
    with open_agent(home, config, read_only=True) as ag:
        settings = _settings(ag.config.policy, {
            "method": method, "rounds": rounds, "k": k, "contexts": contexts,
            "select_contexts": select, "repeats": repeats, "temperature": temperature,
            "positive_only": True if positive_only else None,
        })
        episodes = load_episodes(
            source, n=settings.contexts + settings.select_contexts, seed=settings.seed, data=data,
            journal=ag.journal, user_id=user if source == "journal" else None,
            agent_id=agent if source == "journal" else None,
        )
        scope = scope_of(user, agent)
        store = PolicyStore(ag.adapters)
        _announce(settings, episodes, store.describe(scope))
        with _progress() as bar:
            task = bar.add_task("loading the model", total=None, rewards="")
            with console.status("loading the model…"):
                lm = ag.lm
            trainer = PolicyTrainer(ag.config, store, lm, scope=scope,
                                    progress=_on_event(bar, task))
            report = trainer.train(episodes, settings, fresh=fresh)
    _print_report(report)


def _settings(configured: PolicyConfig, given: dict[str, Any]) -> PolicyConfig:
    """The configured policy settings with the options given on the command line on top."""
    from seal_agent.errors import ConfigError

    updates = {key: value for key, value in given.items() if value is not None}
    try:
        return type(configured).model_validate({**configured.model_dump(), **updates})
    except ValueError as exc:
        raise ConfigError(f"invalid policy settings: {exc}") from exc


def _announce(settings: PolicyConfig, episodes: EpisodeSet, scope: str) -> None:
    console.print(
        f"{settings.method}: {settings.rounds} rounds x ({settings.contexts} contexts + "
        f"{settings.select_contexts} held apart) x k={settings.k} from {episodes.origin}"
        + (f"; {episodes.skipped_no_probes} contexts without probes skipped" if episodes.skipped_no_probes else "")
        + f"; policy of {scope}"
    )


def _progress() -> Progress:
    from seal_agent.progress import progress_bar

    return progress_bar(console, tail=("{task.fields[rewards]}",))


def _on_event(bar: Progress, task: TaskID) -> Callable[[Any], None]:
    """What the trainer reports, shown on ``bar``: the stage, the count and the last rewards."""
    rewards: list[str] = []

    def on_event(event: Any) -> None:
        if event.reward is not None:
            rewards.append(f"{event.reward:+.2f}")
        label = {
            "sample": f"round {event.round}/{event.rounds}: sampled {event.context}",
            "update": f"round {event.round}/{event.rounds}: policy update ({event.message})",
            "select": f"round {event.round}/{event.rounds}: select {event.context}",
            "promote": f"round {event.round}/{event.rounds}: promoting",
            "round": f"round {event.round}/{event.rounds}: {event.message}",
            "resume": event.message,
        }.get(event.stage, event.stage)
        if event.stage in ("round", "resume"):
            console.print(label)
        bar.update(task, description=label, total=event.total, completed=event.done,
                   rewards=" ".join(rewards[-6:]))

    return on_event


def _print_report(report: PolicyReport) -> None:
    table = Table("round", "samples (usable)", "mean reward", "best of k", "positive", "examples",
                  "select: current -> new", "result",
                  title=f"policy run {report.run_id} ({report.method}{', resumed' if report.resumed else ''})")
    for r in report.rounds:
        table.add_row(str(r.round), f"{r.samples} ({r.usable_samples})", _fmt(r.mean_reward),
                      _fmt(r.best_of_k), str(r.positive), str(r.examples),
                      f"{_fmt(r.select_current)} -> {_fmt(r.select_candidate)}", r.reason)
    console.print(table)
    console.print(f"{report.train_contexts} training + {report.select_contexts} held-apart contexts "
                  f"from {report.origin}; started from {report.start}; {report.inner_loops} inner loops; "
                  f"{report.seconds:.0f} s; run folder {report.folder}")


@app.command("list")
@friendly_errors
def list_(user: UserScope = None, agent: AgentScope = None,
          home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Policy versions, newest first (* = active)."""
    from seal_agent.policy import PolicyStore, scope_of

    with open_agent(home, config, read_only=True) as ag:
        store = PolicyStore(ag.adapters)
        scope = scope_of(user, agent)
        versions = store.list(scope)
    if not versions:
        console.print(f"no policies for {store.describe(scope)}: `seal-agent policy train` makes one")
        return
    table = Table("", "version", "id", "created", "method", "round", "select: current -> new")
    for v in versions:
        m = v.metrics
        table.add_row("*" if v.active else "", v.name, v.id, v.created_at.isoformat(timespec="seconds"),
                      str(m.get("method", "-")), str(m.get("round", "-")),
                      f"{_fmt(m.get('select_current'))} -> {_fmt(m.get('select_candidate'))}")
    console.print(table)


@app.command("show")
@friendly_errors
def show(version: Annotated[str, typer.Argument(help="Version number (3, v0003) or id.")],
         user: UserScope = None, agent: AgentScope = None,
         home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """One policy version's manifest and whether its checksums verify."""
    import json

    from seal_agent.errors import CorruptAdapterError
    from seal_agent.policy import PolicyStore, scope_of

    with open_agent(home, config, read_only=True) as ag:
        store = PolicyStore(ag.adapters)
        found = store.find(version, scope_of(user, agent))
        try:
            ag.adapters.verify(found)
            verdict = "[green]checksums verify[/]"
        except CorruptAdapterError as exc:
            verdict = f"[red]{exc}[/]"
        try:
            manifest = json.loads((found.path / "manifest.json").read_text())
        except (OSError, ValueError):
            manifest = {"metrics": found.metrics}
    console.print(f"policy {found.name} ({found.id}) {'active' if found.active else 'inactive'}: {verdict}")
    console.print_json(json.dumps({k: v for k, v in manifest.items() if k != "config"}, default=str))


@app.command("rollback")
@friendly_errors
def rollback(to: Annotated[int | None, typer.Option("--to", help="Version number (default: the one before).")] = None,
             user: UserScope = None, agent: AgentScope = None,
             home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Make an earlier policy active again (its checksums are verified first)."""
    from seal_agent.policy import PolicyStore, scope_of

    with open_agent(home, config, read_only=True) as ag:
        store = PolicyStore(ag.adapters)
        scope = scope_of(user, agent)
        version = store.rollback(scope, to_version=to)
    console.print(f"policy of {store.describe(scope)}: {version.name} is active")
