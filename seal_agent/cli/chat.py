"""`seal-agent chat` and `seal-agent remember`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seal_agent.cli._common import (
    AgentOpt,
    ConfigOpt,
    HomeOpt,
    SessionOpt,
    UserOpt,
    console,
    friendly_errors,
    open_agent,
    quiet_libraries,
)


@friendly_errors
def chat(
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Ask once and exit (default: a REPL).")
    ] = None,
    no_retrieval: Annotated[
        bool, typer.Option("--no-retrieval", help="Answer without buffer memories in the prompt.")
    ] = False,
    no_weights: Annotated[
        bool, typer.Option("--no-weights", help="Answer without the memory adapter (the base model).")
    ] = False,
    derive: Annotated[
        str | None,
        typer.Option(help="inline | background | off: when self-edits are written."),
    ] = None,
    show_memories: Annotated[
        bool, typer.Option("--show-memories/--hide-memories", help="Print the retrieved memories.")
    ] = True,
    user: UserOpt = "default",
    agent: AgentOpt = "default",
    session: SessionOpt = "default",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Talk to the agent. It remembers what you tell it, across sessions."""
    from seal_agent.text import clean_input

    quiet_libraries()
    if message is not None:
        message = clean_input(message)  # refuse bad input before loading anything
    with open_agent(home, config, user=user, agent=agent, session=session, derive=derive) as ag:
        with console.status("loading the model…"):
            _ = ag.lm
        if message is not None:
            _turn(ag, message, not no_retrieval, not no_weights, show_memories)
        else:
            console.print("[dim]Type a message; /exit or Ctrl-D to leave.[/]")
            while True:
                try:
                    line = console.input("[bold cyan]you>[/] ")
                except (EOFError, KeyboardInterrupt):
                    console.print()
                    break
                if line.strip() in {"/exit", "/quit"}:
                    break
                if not line.strip():
                    continue
                try:
                    _turn(ag, line, not no_retrieval, not no_weights, show_memories)
                except Exception as exc:  # one bad line must not end the REPL
                    from seal_agent.errors import SealAgentError

                    if not isinstance(exc, SealAgentError):
                        raise
                    console.print(f"[red]error:[/] {exc}")
        if ag.config.agent.derive == "background":
            with console.status("writing self-edits for this session…"):
                ag.flush()


def _turn(ag: object, message: str, retrieval: bool, weights: bool, show_memories: bool) -> None:
    from seal_agent.agent import SealAgent

    assert isinstance(ag, SealAgent)
    with console.status("thinking…"):
        result = ag.chat(message, retrieval=retrieval, weights=weights)
    if show_memories and result.memories:
        for m in result.memories:
            console.print(f"[dim]  memory {m.score:.2f}  {m.text}[/]", highlight=False)
    via = f" [dim](memory adapter {result.adapter})[/]" if result.adapter else ""
    console.print(f"[bold green]agent>[/] {result.answer}{via}", highlight=False)


@friendly_errors
def remember(
    text: Annotated[str | None, typer.Argument(help="The fact or text to remember.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the text from a UTF-8 file.")
    ] = None,
    probe: Annotated[
        list[str] | None,
        typer.Option(
            "--probe",
            "-p",
            help="A check question and answer, 'question|answer' (repeatable); "
            "consolidation scores itself on these.",
        ),
    ] = None,
    derive: Annotated[str | None, typer.Option(help="inline | background | off")] = "inline",
    user: UserOpt = "default",
    agent: AgentOpt = "default",
    session: SessionOpt = "default",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Hand the agent a fact or a document to remember."""
    from seal_agent.errors import InputError

    quiet_libraries()
    if (text is None) == (file is None):
        raise InputError("give the text either as an argument or with --file (exactly one)")
    if file is not None:
        try:
            body: str | bytes = file.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {file}: {exc.strerror}") from exc
    else:
        body = text or ""
    pairs = []
    for item in probe or []:
        question, sep, answer = item.partition("|")
        if not sep:
            raise InputError(f"probe {item!r} must look like 'question|answer'")
        pairs.append((question, answer))
    with open_agent(home, config, user=user, agent=agent, session=session, derive=derive) as ag:
        with console.status("remembering (writing self-edits)…"):
            result = ag.remember(body, probes=pairs)  # type: ignore[arg-type]
            ag.flush()
        edits = ag.journal.self_edits(interaction_id=result.interaction_id)
        console.print(
            f"remembered as interaction [bold]{result.interaction_id}[/]: "
            f"{len(edits)} self-edits, "
            f"{len(ag.journal.probes(interaction_id=result.interaction_id))} probes"
        )
