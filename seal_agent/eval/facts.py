"""`seal-agent eval facts`: does the agent say what it was told, from its weights?

The project's own personal-facts set (``personal_facts.json``, facts_data.py)
drives the real :class:`SealAgent` in a scratch memory home: facts are told
with ``remember``, consolidated with the default consolidation, and asked
again with questions *never trained on* (the set's hand-written check
paraphrases), greedy, in the agent's own chat format.

Three scenarios:

* ``one``: one user tells ``--facts`` facts (drawn from the split's users,
  no two answering the same question), one consolidation. Weights-only
  recall, memory-on recall before and after, general answers kept,
  seconds per fact.
* ``users``: each user of the split tells their own facts, one
  consolidation each; then every user is asked the distractor questions
  about facts *other* users told (cross-user leakage).
* ``sequential``: one user tells the pool in ``--batches`` batches, with a
  consolidation after each; the retention matrix says how much of each
  earlier batch the weights still say.

Every answer is kept in the result file; intervals are bootstrap over facts
(or questions).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from seal_agent.config import SealAgentConfig
from seal_agent.eval.facts_data import Fact, FactsDataset, load_facts
from seal_agent.eval.results import plot_retention, write_result
from seal_agent.eval.scoring import bootstrap_ci
from seal_agent.facts import build_probes, question_key, said
from seal_agent.text import normalize

__all__ = ["SCENARIOS", "pool", "run_facts"]

SCENARIOS = ("one", "users", "sequential")
ANSWER_TOKENS = 48  # greedy: the answer's first 48 tokens are the agent's own, and hold the key


def pool(facts: Sequence[Fact]) -> list[Fact]:
    """Facts of several users that one person could all have said: no two share a question,
    neither of the set's nor of the agent's own templates (facts.py).

    Interleaved across users (first fact of each, then the second ...) so any
    prefix mixes categories.
    """
    by_user: dict[str, list[Fact]] = {}
    for f in facts:
        by_user.setdefault(f.user_id, []).append(f)
    order = [f for i in range(max(map(len, by_user.values()), default=0))
             for fs in by_user.values() if i < len(fs) for f in fs[i : i + 1]]
    seen: set[str] = set()
    asked: dict[str, str] = {}  # the agent's own template questions -> their answer key
    out = []
    for f in order:
        questions = {question_key(q) for q in [*(p.q for p in f.train), *f.check]}
        # as consolidation reads them: a template question an earlier fact answers
        # with another key would make the later fact supersede it (two jobs, two cats)
        mine = {question_key(p.question): normalize(p.key) for probes in build_probes(f.statement)[0]
                for p in [*probes.train, *probes.check]}
        if questions & seen or any(asked.get(q, k) != k for q, k in mine.items()):
            continue
        seen |= questions
        asked.update(mine)
        out.append(f)
    return out


class _Run:
    """One scratch memory home and the agent on it."""

    def __init__(self, config: SealAgentConfig, home: Path) -> None:
        from seal_agent import SealAgent

        # Statements only at derivation (the benchmark measures consolidation),
        # the converted model shared with the caller's home, nothing else.
        cfg = config.model_copy(deep=True)
        cfg.home = home
        cfg.model.cache_dir = config.model_cache_dir
        cfg.agent.derive = "inline"
        cfg.selfedit.samples_per_format = 0
        cfg.selfedit.probes_per_interaction = 0
        self.agent = SealAgent(cfg)

    def tell(self, user: str, facts: Sequence[Fact]) -> None:
        for f in facts:
            self.agent.remember(f.statement, user_id=user)

    def ask(self, user: str, questions: Sequence[str], *, retrieval: bool,
            weights: bool = True) -> list[str]:
        return self.agent.answers(questions, user_id=user, retrieval=retrieval, weights=weights,
                                  max_new_tokens=ANSWER_TOKENS)

    def recall(self, user: str, facts: Sequence[Fact], *, retrieval: bool) -> list[dict[str, Any]]:
        """Per fact: its check questions, the answers, and the share that holds the answer."""
        questions = [q for f in facts for q in f.check]
        answers = self.ask(user, questions, retrieval=retrieval)
        out, i = [], 0
        for f in facts:
            got = answers[i : i + len(f.check)]
            i += len(f.check)
            hits = [said(a, f.answer, f.aliases) for a in got]
            out.append({"fact": f.id, "answers": got, "said": hits, "share": sum(hits) / len(hits)})
        return out

    def general(self, user: str, data: FactsDataset, *, weights: bool) -> list[dict[str, Any]]:
        answers = self.ask(user, [g.question for g in data.general], retrieval=False, weights=weights)
        return [{"question": g.question, "answer": a, "right": said(a, g.answer, g.aliases)}
                for g, a in zip(data.general, answers, strict=True)]

    def consolidate(self, user: str) -> dict[str, Any]:
        started = time.perf_counter()
        report = self.agent.consolidate(user_id=user)
        return {"status": report.status, "reason": report.reason,
                "seconds": round(time.perf_counter() - started, 2), "recall": report.recall,
                "version": report.version}

    def close(self) -> None:
        self.agent.close()


def _share(rows: Sequence[dict[str, Any]], key: str = "share") -> dict[str, float]:
    mean, low, high = bootstrap_ci([float(r[key]) for r in rows])
    return {"mean": mean, "low": low, "high": high, "n": len(rows)}


def _one(run: _Run, data: FactsDataset, facts: Sequence[Fact], log: Callable[[str], None]) -> dict[str, Any]:
    user = "one"
    started = time.perf_counter()
    run.tell(user, facts)
    tell_seconds = round(time.perf_counter() - started, 2)
    log(f"one: told {len(facts)} facts in {tell_seconds} s (derivation writes the pairs)")
    on_before = run.recall(user, facts, retrieval=True)
    general_base = run.general(user, data, weights=False)
    consolidation = run.consolidate(user)
    log(f"one: consolidation {consolidation['status']} in {consolidation['seconds']} s")
    weights = run.recall(user, facts, retrieval=False)
    counts = dict(run.agent.backstop.counts)
    on_after = run.recall(user, facts, retrieval=True)
    # the backstop's part in the memory-on answers after (backstop.py)
    backstop = {k: v - counts.get(k, 0) for k, v in run.agent.backstop.counts.items()}
    general_after = run.general(user, data, weights=True)
    # answered with memory on before, by nothing after (neither weights nor retrieval)
    lost = [b["fact"] for b, a, w in zip(on_before, on_after, weights, strict=True)
            if b["share"] > 0 and a["share"] == 0 and w["share"] == 0]
    fell = [b["fact"] for b, a in zip(on_before, on_after, strict=True) if a["share"] < b["share"]]
    return {
        "facts": len(facts),
        "consolidation": consolidation,
        "seconds_per_fact": consolidation["seconds"] / max(1, len(facts)),
        "derive_seconds_per_fact": tell_seconds / max(1, len(facts)),
        "weights_recall": _share(weights),
        "memory_on_before": _share(on_before),
        "memory_on_after": _share(on_after),
        "general_base": _share(general_base, "right"),
        "general_after": _share(general_after, "right"),
        "general_kept": (sum(r["right"] for r in general_after)
                         / max(1, sum(r["right"] for r in general_base))),
        "memories_lost": lost,
        "memory_on_fell": fell,
        "backstop": {"questions": sum(len(f.check) for f in facts), **backstop},
        "items": {"weights": weights, "memory_on_before": on_before, "memory_on_after": on_after,
                  "general_base": general_base, "general_after": general_after},
    }


def _users(run: _Run, data: FactsDataset, log: Callable[[str], None],
           max_users: int | None = None) -> dict[str, Any]:
    users = sorted({f.user_id for f in data.facts})[:max_users]
    per_user, weights_rows = [], []
    for user in users:
        facts = [f for f in data.facts if f.user_id == user]
        run.tell(user, facts)
        consolidation = run.consolidate(user)
        rows = run.recall(user, facts, retrieval=False)
        weights_rows += rows
        per_user.append({"user": user, "consolidation": consolidation,
                         "weights_recall": sum(r["share"] for r in rows) / len(rows)})
        log(f"users: {user} {consolidation['status']}, weights recall "
            f"{per_user[-1]['weights_recall']:.0%}")
    leaks = []
    told = {f.answer for f in data.facts if f.user_id in users}
    for user in users:
        mine = [d for d in data.distractors if d.user_id == user
                and any(x in told for x in d.forbidden)]
        if not mine:
            continue
        answers = run.ask(user, [d.question for d in mine], retrieval=True)
        for d, a in zip(mine, answers, strict=True):
            leaked = [x for x in d.forbidden if x in told and said(a, x)]
            leaks.append({"user": user, "question": d.question, "answer": a, "leaked": leaked,
                          "leak": float(bool(leaked))})
    return {"users": per_user, "weights_recall": _share(weights_rows),
            "leakage": _share(leaks, "leak") if leaks else None,
            "items": {"weights": weights_rows, "distractors": leaks}}


def _sequential(run: _Run, facts: Sequence[Fact], batches: int,
                log: Callable[[str], None]) -> dict[str, Any]:
    user = "seq"
    size = max(1, len(facts) // batches)
    groups = [list(facts[i * size : (i + 1) * size]) for i in range(batches)]
    groups = [g for g in groups if g]
    matrix: list[list[float]] = []
    steps: list[dict[str, Any]] = []
    for i, group in enumerate(groups):
        run.tell(user, group)
        consolidation = run.consolidate(user)
        row = []
        for j in range(i + 1):
            rows = run.recall(user, groups[j], retrieval=False)
            row.append(sum(r["share"] for r in rows) / len(rows))
        matrix.append(row)
        steps.append({"batch": i + 1, "consolidation": consolidation, "recall": row})
        log(f"sequential: batch {i + 1}/{len(groups)} {consolidation['status']} "
            f"({consolidation['seconds']} s); recall per batch {[round(x, 2) for x in row]}")
    first = matrix[0][0]
    return {"batches": len(groups), "batch_size": size, "matrix": matrix, "steps": steps,
            "first_batch_kept": (matrix[-1][0] / first) if first else None,
            "last_consolidation_seconds": steps[-1]["consolidation"]["seconds"]}


def run_facts(
    config: SealAgentConfig,
    *,
    split: str = "dev",
    scenarios: Sequence[str] = SCENARIOS,
    n_facts: int = 20,
    batches: int = 10,
    batch_size: int = 2,
    max_users: int | None = None,
    output: Path = Path("eval-results"),
    plot: bool = False,
    home: Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Run the scenarios; write ``facts-<time>.json`` and ``.md`` (and plots); return the JSON path."""
    from seal_agent.errors import ConfigError
    from seal_agent.eval.run import _meta

    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        raise ConfigError(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    data = load_facts(split=split)  # type: ignore[arg-type]
    facts = pool(data.facts)
    payload: dict[str, Any] = {"kind": "facts", **_meta(config, split, 0, _hash(data)),
                               "scenarios": {}, "aggregates": {}}
    with tempfile.TemporaryDirectory(prefix="seal-facts-") as scratch:
        for name in scenarios:
            run = _Run(config, (home or Path(scratch)) / name)
            try:
                if name == "one":
                    result = _one(run, data, facts[:n_facts], log)
                elif name == "users":
                    result = _users(run, data, log, max_users)
                else:
                    result = _sequential(run, facts[: batches * batch_size], batches, log)
            finally:
                run.close()
            payload["scenarios"][name] = result
    payload["aggregates"] = _aggregates(payload["scenarios"])
    path = write_result(output, "facts", payload, markdown(payload))
    if plot and "sequential" in payload["scenarios"]:
        seq = payload["scenarios"]["sequential"]
        plot_retention(seq["matrix"], path.with_name(path.stem + "-retention.png"),
                       title="weights-only recall of each batch after each consolidation")
        _plot_batches(seq["matrix"], path.with_name(path.stem + "-batches.png"))
    return path


def _hash(data: FactsDataset) -> str:
    import hashlib

    from seal_agent.eval.facts_data import FACTS_FILE

    return hashlib.sha256(FACTS_FILE.read_bytes()).hexdigest()[:16]


def _aggregates(s: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "one" in s:
        o = s["one"]
        out["one"] = {k: o[k] for k in ("weights_recall", "memory_on_before", "memory_on_after",
                                        "general_base", "general_after")}
        out["one"]["seconds_per_fact"] = o["seconds_per_fact"]
    if "users" in s:
        out["users"] = {"weights_recall": s["users"]["weights_recall"],
                        "leakage": s["users"]["leakage"]}
    if "sequential" in s:
        out["sequential"] = {"first_batch_kept": s["sequential"]["first_batch_kept"]}
    return out


def _cell(c: dict[str, float] | None) -> str:
    if not c:
        return "–"
    return f"{100 * c['mean']:.0f}% [{100 * c['low']:.0f}, {100 * c['high']:.0f}] (n={c['n']})"


def _backstop_rows(b: dict[str, int] | None) -> list[str]:
    """The backstop's rows: memory-on questions after consolidation that drained memories
    matched, that it answered again, and the memories it sent back to retrieval."""
    if not b:
        return []
    n = b["questions"]
    return [f"| memory-on questions after: checked against drained memories | {b.get('backed', 0)}/{n} |",
            f"| ... answered again with a drained memory the weights missed | "
            f"{b.get('answered_again', 0)}/{n} |",
            f"| memories the backstop returned to retrieval | {b.get('returned', 0)} |"]


def markdown(payload: dict[str, Any]) -> str:
    s = payload["scenarios"]
    lines = [f"# Personal facts ({payload['split']}), {payload['model']}, commit {payload['commit']}", ""]
    if "one" in s:
        o = s["one"]
        c = o["consolidation"]
        lines += [
            f"## One user, {o['facts']} facts, one consolidation ({c['status']}, {c['seconds']} s, "
            f"{o['seconds_per_fact']:.1f} s per fact; derivation, in the background in use, "
            f"{o['derive_seconds_per_fact']:.1f} s per fact)", "",
            "| measure | value |", "| --- | --- |",
            f"| weights-only recall, check paraphrases | {_cell(o['weights_recall'])} |",
            f"| memory-on recall before consolidation | {_cell(o['memory_on_before'])} |",
            f"| memory-on recall after consolidation | {_cell(o['memory_on_after'])} |",
            f"| general questions, base | {_cell(o['general_base'])} |",
            f"| general questions, with the adapter | {_cell(o['general_after'])} |",
            f"| general kept (share of base) | {o['general_kept']:.0%} |",
            f"| memories lost (answered before, by neither weights nor retrieval after) | "
            f"{len(o['memories_lost'])} |",
            f"| facts whose memory-on answers fell | {len(o['memory_on_fell'])} |",
            *_backstop_rows(o.get("backstop")), "",
        ]
    if "users" in s:
        u = s["users"]
        lines += ["## Each user their own facts", "", "| user | status | weights-only recall |",
                  "| --- | --- | --- |"]
        lines += [f"| {r['user']} | {r['consolidation']['status']} | {r['weights_recall']:.0%} |"
                  for r in u["users"]]
        lines += ["", f"Weights-only recall over all facts: {_cell(u['weights_recall'])}; "
                      f"cross-user leakage (distractor answers naming another user's answer): "
                      f"{_cell(u['leakage'])}.", ""]
    if "sequential" in s:
        q = s["sequential"]
        lines += [f"## Sequential: {q['batches']} consolidations of {q['batch_size']} facts", "",
                  "| after batch | " + " | ".join(f"b{j + 1}" for j in range(q["batches"])) + " |",
                  "| --- |" + " --- |" * q["batches"]]
        for i, row in enumerate(q["matrix"]):
            lines.append(f"| {i + 1} | " + " | ".join(f"{x:.0%}" for x in row)
                         + " |" * (q["batches"] - len(row)) + " |")
        kept = q["first_batch_kept"]
        lines += ["", f"First batch keeps {kept:.0%} of its recall." if kept is not None else
                  "The first batch was never said from the weights.",
                  f"Last consolidation took {q['last_consolidation_seconds']} s.", ""]
    return "\n".join(lines)


def _plot_batches(matrix: Sequence[Sequence[float]], path: Path) -> Path:
    from seal_agent.eval.results import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for j in range(len(matrix)):
        xs = list(range(j + 1, len(matrix) + 1))
        ax.plot(xs, [matrix[i][j] for i in range(j, len(matrix))], marker="o", label=f"batch {j + 1}")
    ax.set_xlabel("after consolidation")
    ax.set_ylabel("weights-only recall")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
