"""Quickstart: an agent that remembers what a user told it, in a new process.

Phase 1 (this process): a fictional user, Maya, tells the agent five facts
about herself over a few turns.  The agent answers at once; self-edits are
written on a background worker after each answer.

Phase 2 (a new process, new sessions): the same questions are asked with
memory on (answers come from the buffer) and with memory off (the bare
model).  Nothing here is scripted: every answer is the 135M model's own, and
the script says plainly which answers contain the fact and which do not.

    python examples/quickstart.py            # both phases
    python examples/quickstart.py --home DIR  # another memory home
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()

USER = "maya"
FACTS = [
    "Hi! I'm Maya. Last month I adopted a beagle called Biscuit.",
    "I work as a glassblower in Tacoma.",
    "I'm allergic to peanuts, so never suggest satay to me.",
    "My favourite instrument is the bassoon.",
    "My sister Ines lives in Reykjavik.",
]
QUESTIONS = [
    ("What is my dog's name?", "biscuit"),
    ("What is my job?", "glassblower"),
    ("What am I allergic to?", "peanut"),
    ("Which instrument do I like best?", "bassoon"),
    ("Where does my sister live?", "reykjavik"),
]


def tell(home: Path) -> None:
    from seal_agent import SealAgent
    from seal_agent.models import quiet_model_loading

    quiet_model_loading()
    console.rule("[bold]Phase 1: Maya tells the agent about herself (session 'monday')")
    with SealAgent.open(home, user_id=USER, session_id="monday") as agent:
        with console.status("loading the model (first run converts the packaged GGUF once)…"):
            _ = agent.lm
        for fact in FACTS:
            result = agent.chat(fact)
            console.print(f"[bold cyan]maya>[/]  {fact}", highlight=False)
            console.print(
                f"[bold green]agent>[/] {result.answer} [dim]({result.seconds:.1f} s)[/]",
                highlight=False,
            )
        started = time.perf_counter()
        with console.status("background worker: writing self-edits and probes…"):
            agent.flush()
        counts = agent.journal.counts(USER)
        console.print(
            f"\nself-edits written after the turns in {time.perf_counter() - started:.1f} s: "
            f"{counts['self_edits']['buffered']} buffered memories "
            f"({', '.join(f'{k} {v}' for k, v in sorted(counts['formats'].items()))}), "
            f"{counts['probes']} probe questions held apart for consolidation"
        )


def ask(home: Path) -> None:
    from seal_agent import SealAgent
    from seal_agent.models import quiet_model_loading

    quiet_model_loading()
    console.rule(f"[bold]Phase 2: a new process (pid {os.getpid()}), new sessions")
    with_memory = without = 0
    table = Table("question", "memory on", "memory off", show_lines=True)
    with SealAgent.open(home, user_id=USER, agent={"derive": "off"}) as agent:
        for n, (question, expected) in enumerate(QUESTIONS):
            # Each question in its own session, so one answer cannot steer the next.
            on = agent.chat(question, session_id=f"ask-{n}", retrieval=True)
            off = agent.chat(question, session_id=f"ask-{n}-off", retrieval=False)
            console.print(f"\n[bold cyan]maya>[/] {question}", highlight=False)
            for m in on.memories:
                console.print(f"  [dim]retrieved {m.score:.2f} ({m.format.value}): {m.text}[/]", highlight=False)
            hit_on = expected in on.answer.lower()
            hit_off = expected in off.answer.lower()
            with_memory += hit_on
            without += hit_off
            table.add_row(question, _mark(on.answer, hit_on), _mark(off.answer, hit_off))
    console.print()
    console.print(table)
    n = len(QUESTIONS)
    console.print(
        f"\n[bold]answers containing the fact: memory on {with_memory}/{n}, memory off {without}/{n}[/]"
    )
    if with_memory < n:
        console.print(
            "[yellow]Not every answer uses its memory: the default 135M model sometimes ignores "
            "or garbles what it is shown. The retrieved memories above show what it was given.[/]"
        )
    console.print(
        "Next: `seal-agent consolidate` will move these memories from the buffer into LoRA weights "
        "(the consolidation issue)."
    )


def _mark(answer: str, hit: bool, width: int = 140) -> str:
    short = answer if len(answer) <= width else answer[: width - 1] + "…"
    return f"{'[green]✓[/]' if hit else '[red]✗[/]'} {short}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(".seal-agent/quickstart"))
    parser.add_argument("--phase", choices=["all", "tell", "ask"], default="all")
    args = parser.parse_args()
    home: Path = args.home
    if args.phase in ("all", "tell"):
        # A fresh memory home each run; the converted model cache is kept.
        for item in ("journal.sqlite3", "journal.sqlite3-wal", "journal.sqlite3-shm", "chroma"):
            target = home / item
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        tell(home)
    if args.phase == "all":
        # Phase 2 in a separate process: nothing is carried over but the memory home.
        cmd = [sys.executable, __file__, "--home", str(home), "--phase", "ask"]
        raise SystemExit(subprocess.call(cmd))
    if args.phase == "ask":
        ask(home)


if __name__ == "__main__":
    main()
