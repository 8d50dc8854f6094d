"""Runs an evaluation end to end: load data and model, loop with a progress
bar, aggregate, write JSON + markdown (+ plots).  The CLI is a thin layer on
these functions; tests call them directly."""

from __future__ import annotations

import os
import platform
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from seal_agent.config import SealAgentConfig
from seal_agent.errors import ConfigError
from seal_agent.eval.data import data_dir, load_squad, load_teacher_edits
from seal_agent.eval.results import (
    aggregate,
    git_commit,
    markdown_table,
    plot_conditions,
    plot_retention,
    write_result,
)
from seal_agent.eval.squad import CONDITIONS, SquadEval, SquadSettings
from seal_agent.progress import progress_bar

__all__ = ["run_memory", "run_squad"]

SQUAD_METRICS = [
    ("loglik", "gold log-lik/token", 1.0),
    ("em", "EM %", 100.0),
    ("f1", "F1 %", 100.0),
    ("contains", "contains %", 100.0),
]


def _bar(console: Console | None) -> Progress:
    return progress_bar(console, lead=("[bold]{task.description}",),
                        after_count=("{task.fields[stage]}",))


def _log_line(bar: Progress, task: Any, item: str) -> None:
    """Off a terminal (a log file, CI) the bar draws nothing until the end: one line per item."""
    if not bar.console.is_terminal:
        t = bar.tasks[task]
        bar.console.print(
            f"{int(t.completed)}/{int(t.total or 0)} done ({item}), "
            f"{t.elapsed or 0:.0f} s elapsed", highlight=False,
        )


def _meta(config: SealAgentConfig, split: str, seed: int, data_hash: str) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": f"{platform.machine()}, {_cpus()} CPU cores",
        "model": config.model.name,
        "split": split,
        "seed": seed,
        "data_hash": data_hash,
        "config": config.public_dict(),
    }


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_squad(
    config: SealAgentConfig,
    *,
    data: str | Path | None = None,
    split: str = "heldout",
    n: int = 8,
    seed: int = 0,
    settings: SquadSettings | None = None,
    output: Path = Path("eval-results"),
    plot: bool = False,
    sequential: int | None = None,
    sequential_condition: str = "passage",
    console: Console | None = None,
) -> Path:
    """SEAL's single-passage table (or ``sequential``: its continual protocol)."""
    from seal_agent.innerloop import build_inner_loop
    from seal_agent.models import build_language_model
    from seal_agent.selfedit import SelfEditWriter

    settings = settings or SquadSettings(seed=seed)
    unknown = [c for c in settings.conditions if c not in CONDITIONS]
    if unknown:
        raise ConfigError(f"unknown conditions {unknown}; known: {', '.join(CONDITIONS)}")
    passages, digest, teacher = _squad_passages(data, split, n, seed, settings, sequential)
    started = time.perf_counter()
    lm = build_language_model(config)
    inner = build_inner_loop(config, lm)
    writer = SelfEditWriter(lm, config.selfedit, style="passage")
    policy_writer = _policy_writer(lm, config, settings)
    meta = _meta(config, split, seed, digest)
    meta["settings"] = settings.__dict__ | {"conditions": list(settings.conditions)}

    with _bar(console) as bar:
        task = bar.add_task("squad", total=len(passages), stage="loading")
        ev = SquadEval(
            config, lm, inner, writer, settings, policy_writer=policy_writer,
            teacher_edits=teacher, stage=lambda s: bar.update(task, stage=s),
        )
        if sequential:
            result = ev.sequential(
                passages, sequential_condition, step=lambda j: bar.update(task, completed=j)
            )
            return _write_sequential(result, meta, started, seed, output,
                                     plot_as=sequential_condition if plot else None)
        records = []
        for passage in passages:
            records.append(ev.run_passage(passage))
            bar.advance(task)
            _log_line(bar, task, passage.id)
    return _write_squad(records, settings, meta, started, seed, output, plot)


def _squad_passages(
    data: str | Path | None, split: str, n: int, seed: int, settings: SquadSettings,
    sequential: int | None,
) -> tuple[list[Any], str, Any]:
    """The passages to evaluate, the data's digest, and SEAL's teacher self-edits if asked for."""
    folder = data_dir(data)
    teacher = None
    if "teacher" in settings.conditions:
        teacher = load_teacher_edits(folder, settings.teacher)  # type: ignore[arg-type]
    passages, digest = load_squad(folder, split, seed=seed)  # type: ignore[arg-type]
    if teacher is not None and not sequential:
        # Compare every condition on the same passages: those SEAL wrote self-edits for.
        passages = [p for p in passages if p.context in teacher]
    count = sequential or n
    if count < len(passages):
        passages = random.Random(seed).sample(passages, count)
    return passages, digest, teacher


def _policy_writer(lm: Any, config: SealAgentConfig, settings: SquadSettings) -> Any:
    """The trained policy's writer for the seal+policy condition; None without it."""
    if "seal+policy" not in settings.conditions:
        return None
    if settings.policy is None:
        raise ConfigError("the seal+policy condition needs --policy VERSION")
    from seal_agent.policy import policy_writer as make_policy_writer

    return make_policy_writer(lm, config, settings.policy, style="passage")


def _write_sequential(
    result: dict[str, Any], meta: dict[str, Any], started: float, seed: int, output: Path,
    plot_as: str | None,
) -> Path:
    """The continual protocol's result file; ``plot_as`` (its condition) also draws retention."""
    matrix = result["matrix"]
    n_p = len(matrix[0])
    final = matrix[-1]
    # recall of passage i right after its own update vs after the last update
    own = [matrix[i + 1][i] for i in range(n_p)]
    aggregates = aggregate(
        [{"base": {"loglik": matrix[0][i]}, "after own update": {"loglik": own[i]},
          "after all updates": {"loglik": final[i]}} for i in range(n_p)],
        ["base", "after own update", "after all updates"], ["loglik"],
        baseline="base", seed=seed,
    )
    payload = {"kind": "squad-sequential", **meta, "items": n_p,
               "headline": ("loglik", "gold log-lik/token", 1.0),
               "seconds": round(time.perf_counter() - started, 1),
               "records": result, "aggregates": aggregates}
    path = write_result(output, "squad-sequential", payload, _sequential_md(payload))
    if plot_as is not None:
        plot_retention(matrix, path.with_suffix(".retention.png"),
                       title=f"retention, {n_p} passages ({plot_as})")
    return path


def _write_squad(
    records: list[dict[str, Any]], settings: SquadSettings, meta: dict[str, Any], started: float,
    seed: int, output: Path, plot: bool,
) -> Path:
    """The single-passage table's result file, and its plots if asked for."""
    rows = [r["conditions"] for r in records]
    aggregates = aggregate(rows, list(settings.conditions),
                           [m for m, _, _ in SQUAD_METRICS] + ["tokens", "seconds"],
                           baseline="base", seed=seed)
    payload = {"kind": "squad", **meta, "items": len(records),
               "headline": ("loglik", "gold log-lik/token", 1.0),
               "seconds": round(time.perf_counter() - started, 1),
               "records": records, "aggregates": aggregates}
    path = write_result(output, "squad", payload, _squad_md(payload))
    if plot:
        _plot_squad(aggregates, path, meta["split"], len(records))
    return path


def _plot_squad(aggregates: dict[str, Any], path: Path, split: str, n: int) -> None:
    plot_conditions(aggregates, "loglik", path.with_suffix(".loglik.png"),
                    title=f"SQuAD {split}, {n} passages: gold answer log-likelihood",
                    ylabel="mean log-prob / token (higher is better)")
    trained = {k: v for k, v in aggregates.items() if "loglik_vs_base" in v}
    plot_conditions(trained, "loglik_vs_base", path.with_suffix(".gain.png"),
                    title=f"SQuAD {split}, {n} passages: gain over base (paired)",
                    ylabel="Δ gold log-prob / token")
    plot_conditions(aggregates, "f1", path.with_suffix(".f1.png"),
                    title=f"SQuAD {split}, {n} passages: token F1",
                    ylabel="F1")


def _squad_md(payload: dict[str, Any]) -> str:
    agg = payload["aggregates"]
    table = markdown_table(agg, [*SQUAD_METRICS, ("loglik_vs_base", "Δ log-lik vs base", 1.0),
                                 ("seconds", "s / passage", 1.0)])
    return (
        f"# seal-agent eval squad ({payload['split']}, {payload['items']} passages, "
        f"seed {payload['seed']})\n\n"
        f"{payload['date']}, commit {payload['commit']}, {payload['machine']}, "
        f"{payload['seconds']:.0f} s. Means with 95% bootstrap intervals over passages; "
        "no passage in context except `context`.\n\n" + table + "\n"
    )


def _sequential_md(payload: dict[str, Any]) -> str:
    m = payload["records"]["matrix"]
    head = "| after update \\ passage | " + " | ".join(str(i + 1) for i in range(len(m[0]))) + " |"
    lines = [head, "|" + " --- |" * (len(m[0]) + 1)]
    for j, row in enumerate(m):
        lines.append(f"| {j if j else 'base'} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    return (
        f"# seal-agent eval squad --sequential {payload['items']} ({payload['split']})\n\n"
        f"{payload['date']}, commit {payload['commit']}, {payload['seconds']:.0f} s. "
        "Gold answer log-likelihood per token of passage i after update j.\n\n"
        + "\n".join(lines) + "\n\n"
        + markdown_table(payload["aggregates"], [("loglik", "gold log-lik/token", 1.0),
                                                 ("loglik_vs_base", "Δ vs base", 1.0)],
                         first="recall") + "\n"
    )



MEMORY_METRICS = [
    ("score", "score %", 100.0),
    ("f1", "F1 %", 100.0),
    ("contains", "contains %", 100.0),
    ("prompt_tokens", "prompt tokens", 1.0),
]


def run_memory(
    config: SealAgentConfig,
    settings: Any,
    *,
    data: str | Path | None = None,
    split: str = "heldout",
    seed: int = 0,
    conversations: int | None = None,
    questions_per_conversation: int | None = None,
    question_types: set[str] | None = None,
    output: Path = Path("eval-results"),
    plot: bool = False,
    console: Console | None = None,
) -> Path:
    """LoCoMo or LongMemEval through the real agent, in every memory mode."""
    from seal_agent.agent import SealAgent
    from seal_agent.eval.conversations import MemoryEval

    convs, digest = _conversations(settings.dataset, data, split, seed, conversations,
                                   questions_per_conversation, question_types)
    started = time.perf_counter()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    home = output / f"home-{settings.dataset}-{stamp}"
    cfg = config.model_copy(update={"home": home})
    meta = _meta(cfg, split, seed, digest)
    meta["settings"] = {**settings.__dict__, "modes": list(settings.modes)}
    records = []
    with SealAgent(cfg, agent_id="eval") as agent, _bar(console) as bar:
        task = bar.add_task(settings.dataset, total=len(convs), stage="loading")
        ev = MemoryEval(agent, settings, stage=lambda s: bar.update(task, stage=s))
        for conv in convs:
            user = "c-" + "".join(ch if ch.isalnum() else "-" for ch in conv.id)[:100]
            records.append(ev.run(conv, user))
            bar.advance(task)
            _log_line(bar, task, conv.id)
    payload = _memory_payload(records, list(settings.modes), seed,
                              {"kind": settings.dataset, **meta}, started)
    path = write_result(output, settings.dataset, payload, _memory_md(payload))
    if plot:
        plot_conditions(payload["aggregates"], "score", path.with_suffix(".score.png"),
                        title=f"{settings.dataset} {split}: {payload['items']} questions",
                        ylabel="score (data set's own)")
    return path


def _conversations(
    dataset: str, data: str | Path | None, split: str, seed: int, conversations: int | None,
    questions_per_conversation: int | None, question_types: set[str] | None,
) -> tuple[list[Any], str]:
    """The data set's conversations to replay, and the data's digest."""
    from seal_agent.eval.data import load_locomo, load_longmemeval

    folder = data_dir(data)
    if dataset == "locomo":
        return load_locomo(
            folder, split, conversations=conversations,  # type: ignore[arg-type]
            questions_per_conversation=questions_per_conversation,
            categories=question_types, seed=seed,
        )
    return load_longmemeval(
        folder, split, n=conversations, question_types=question_types, seed=seed,  # type: ignore[arg-type]
    )


def _memory_payload(
    records: list[dict[str, Any]], modes: list[str], seed: int, head: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    """The result file after ``head``: scores per mode, per category, on abstention, and
    what consolidation did."""
    questions = [q for r in records for q in r["questions"]]
    rows = [q["modes"] for q in questions]
    aggregates = aggregate(rows, modes, [m for m, _, _ in MEMORY_METRICS], baseline="none", seed=seed)
    by_category: dict[str, dict[str, float]] = {}
    for cat in sorted({q["category"] for q in questions}):
        sub = [q["modes"] for q in questions if q["category"] == cat]
        by_category[cat] = {
            m: sum(r[m]["score"] for r in sub if m in r) / max(1, sum(1 for r in sub if m in r))
            for m in modes
        } | {"n": len(sub)}
    abst = [q["modes"] for q in questions if q["abstention"]]
    return {
        **head, "items": len(questions), "conversations": len(records),
        "headline": ("score", "score %", 100.0),
        "seconds": round(time.perf_counter() - started, 1),
        "records": records, "aggregates": aggregates, "by_category": by_category,
        "abstention": {m: sum(r[m]["abstained"] for r in abst if m in r) / len(abst)
                       for m in modes} if abst else None,
        "consolidation": [r["consolidation"] for r in records],
    }


def _memory_md(payload: dict[str, Any]) -> str:
    modes = list(payload["aggregates"])
    cats = payload["by_category"]
    head = "| category | n | " + " | ".join(modes) + " |"
    lines = [head, "|" + " --- |" * (len(modes) + 2)]
    for cat, row in cats.items():
        lines.append(f"| {cat} | {row['n']} | " + " | ".join(f"{100 * row[m]:.1f}" for m in modes) + " |")
    cons = payload["consolidation"]
    promoted = sum(1 for c in cons if c.get("status") == "promoted")
    text = (
        f"# seal-agent eval {payload['kind']} ({payload['split']}, {payload['conversations']} "
        f"conversations, {payload['items']} questions, seed {payload['seed']})\n\n"
        f"{payload['date']}, commit {payload['commit']}, {payload['machine']}, "
        f"{payload['seconds']:.0f} s; turns fed: {payload['settings']['turns']}; consolidation "
        f"promoted an adapter for {promoted} of {len(cons)} conversations. Means with 95% "
        "bootstrap intervals over questions.\n\n"
        + markdown_table(payload["aggregates"], [*MEMORY_METRICS, ("score_vs_none", "Δ score vs none", 100.0)],
                         first="mode")
        + "\n\nScore by category (%):\n\n" + "\n".join(lines) + "\n"
    )
    if payload.get("abstention"):
        text += "\nAbstention accuracy on `_abs` questions: " + ", ".join(
            f"{m} {100 * v:.0f}%" for m, v in payload["abstention"].items()) + "\n"
    return text
