"""Quickstart: an agent that remembers what a user told it, in a new process.

Phase 1 (this process): a fictional user, Maya, tells the agent five facts
about herself over a few turns.  The agent answers at once; self-edits are
written on a background worker after each answer.

Phase 2 (a new process, new sessions): the same questions are asked with
memory on (answers come from the buffer) and with memory off (the bare
model).

Phase 3 (another process): `consolidate` trains the memories into a LoRA
adapter as question/answer pairs in the agent's chat format; a memory leaves
the buffer only once the new weights say it back to check questions never
trained on.  The questions are asked again with retrieval turned off, through
the adapter and through the base model, and with memory on.  Nothing here is scripted: every answer is the 135M model's own, and
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
    ("What am I allergic to?", "peanuts"),
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



def consolidate(home: Path) -> None:
    from seal_agent import SealAgent
    from seal_agent.facts import said
    from seal_agent.models import quiet_model_loading

    quiet_model_loading()
    console.rule(f"[bold]Phase 3: consolidation (pid {os.getpid()}): from the buffer into the weights")
    questions = [q for q, _ in QUESTIONS]
    with SealAgent.open(home, user_id=USER, agent={"derive": "off"}) as agent:
        before = agent.journal.counts(USER)["self_edits"]["buffered"]
        on_before = agent.answers(questions, retrieval=True)
        with console.status("consolidating: writing question/answer pairs, training, checking…") as status:

            def show(event) -> None:
                status.update(f"{event.stage} {event.message}")

            report = agent.consolidate(progress=show)
        r = report.recall or {}
        console.print(
            f"run {report.run_id}: {report.status}: {report.reason}\n"
            f"{report.tokens_trained} tokens trained in {report.seconds:.0f} s; memories that stay "
            f"retrievable because the weights do not say them yet: "
            f"{r.get('memories_new', 0) - r.get('verified_new', 0)}, said but kept because memory "
            f"on would miss them once drained: {len(r.get('kept_retrievable', []))}, with nothing "
            f"to check: {r.get('uncheckable', 0)}"
        )
        after = agent.journal.counts(USER)["self_edits"]["buffered"]
        console.print(f"buffered memories: {before} before, {after} after (only what the weights say left)")

        console.rule("[bold]Phase 3b: the same questions, retrieval OFF")
        table = Table("question", "weights (adapter)", "base model")
        weights = agent.answers(questions, retrieval=False)
        base = agent.answers(questions, retrieval=False, weights=False)
        learned = 0
        for (question, expected), w, b in zip(QUESTIONS, weights, base, strict=True):
            hit = said(w, expected)
            learned += hit
            table.add_row(question, _mark(w, hit), _mark(b, said(b, expected)))
        console.print(table)
        on_after = agent.answers(questions, retrieval=True)
        n = len(QUESTIONS)
        if report.status != "promoted":
            console.print(f"[yellow]No adapter was promoted ({report.reason}); the answers above "
                          "come from the base model both times, and every memory stays retrievable.[/]")
        console.print(f"[bold]facts answered from the weights alone: {learned}/{n}[/]")
        right_before = sum(said(a, e) for a, (_, e) in zip(on_before, QUESTIONS, strict=True))
        right_after = sum(said(a, e) for a, (_, e) in zip(on_after, QUESTIONS, strict=True))
        console.print(f"[bold]memory on (weights + what stays retrievable): {right_before}/{n} before "
                      f"consolidation, {right_after}/{n} after[/]")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _mark(answer: str, hit: bool, width: int = 140) -> str:
    short = answer if len(answer) <= width else answer[: width - 1] + "…"
    return f"{'[green]✓[/]' if hit else '[red]✗[/]'} {short}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(".seal-agent/quickstart"))
    parser.add_argument("--phase", choices=["all", "tell", "ask", "consolidate"], default="all")
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
        # Phases 2 and 3 in separate processes: nothing carries over but the memory home.
        for phase in ("ask", "consolidate"):
            code = subprocess.call([sys.executable, __file__, "--home", str(home), "--phase", phase])
            if code:
                raise SystemExit(code)
    if args.phase == "ask":
        ask(home)
    if args.phase == "consolidate":
        consolidate(home)


if __name__ == "__main__":
    main()
