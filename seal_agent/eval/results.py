"""Result files: one JSON per run (config, data hash, split, seed, per-item
records, aggregates), a markdown table beside it, optional PNG plots, and
``seal-agent eval report`` to read several side by side."""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seal_agent.errors import ConfigError
from seal_agent.eval.scoring import bootstrap_ci, paired_bootstrap_ci

__all__ = [
    "aggregate",
    "git_commit",
    "load_result",
    "markdown_table",
    "plot_conditions",
    "plot_retention",
    "render_report",
    "write_result",
]


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def aggregate(
    rows: Sequence[dict[str, Any]], groups: Sequence[str], metrics: Sequence[str],
    *, baseline: str | None = None, seed: int = 0,
) -> dict[str, Any]:
    """Per group: mean and 95% bootstrap interval of each metric over items.

    ``rows[i][group][metric]``; an item missing a group is left out of that
    group.  With ``baseline``, also the paired difference of each group to it,
    over the items that have both.
    """
    out: dict[str, Any] = {}
    for g in groups:
        have = [r for r in rows if g in r and r[g] is not None]
        entry: dict[str, Any] = {"n": len(have)}
        for m in metrics:
            values = [float(r[g][m]) for r in have if r[g].get(m) is not None]
            if values:
                mean, low, high = bootstrap_ci(values, seed=seed)
                entry[m] = {"mean": mean, "low": low, "high": high}
            if baseline and g != baseline and values:
                both = [r for r in have if baseline in r and r[baseline] is not None
                        and r[g].get(m) is not None and r[baseline].get(m) is not None]
                if both:
                    d, lo, hi = paired_bootstrap_ci(
                        [float(r[baseline][m]) for r in both], [float(r[g][m]) for r in both], seed=seed
                    )
                    entry[f"{m}_vs_{baseline}"] = {"mean": d, "low": lo, "high": hi, "n": len(both)}
        out[g] = entry
    return out


def _fmt(cell: dict[str, Any] | None, scale: float = 1.0, digits: int = 2) -> str:
    if not cell or cell.get("mean") is None or math.isnan(cell["mean"]):
        return "–"
    m, lo, hi = (cell[k] * scale for k in ("mean", "low", "high"))
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown_table(
    aggregates: dict[str, Any], metrics: Sequence[tuple[str, str, float]], *, first: str = "condition"
) -> str:
    """``metrics``: (key, column title, scale) — e.g. ("f1", "F1 %", 100)."""
    head = f"| {first} | n | " + " | ".join(t for _, t, _ in metrics) + " |"
    lines = [head, "|" + " --- |" * (len(metrics) + 2)]
    for name, entry in aggregates.items():
        cells = [_fmt(entry.get(k), scale, 1 if scale == 100 else 2) for k, _, scale in metrics]
        lines.append(f"| {name} | {entry.get('n', 0)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_result(out_dir: Path, kind: str, payload: dict[str, Any], markdown: str) -> Path:
    """``<out>/<kind>-<UTC time>.json`` and ``.md``, written whole (tmp + rename)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{kind}-{stamp}.json"
    for target, text in ((path, json.dumps(payload, indent=1, default=str)),
                         (path.with_suffix(".md"), markdown)):
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, target)
    return path


def load_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read result {p}: {exc}") from exc
    if not isinstance(data, dict) or "kind" not in data or "aggregates" not in data:
        raise ConfigError(f"{p} is not a seal-agent eval result (no 'kind'/'aggregates')")
    return data


# -- plots -----------------------------------------------------------------------------------
def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'seal-agent[eval]'") from exc
    return plt


def plot_conditions(
    aggregates: dict[str, Any], metric: str, path: Path, *, title: str, ylabel: str
) -> Path:
    """Bars per condition with 95% intervals."""
    plt = _pyplot()
    names = [n for n, e in aggregates.items() if e.get(metric)]
    means = [aggregates[n][metric]["mean"] for n in names]
    lows = [aggregates[n][metric]["mean"] - aggregates[n][metric]["low"] for n in names]
    highs = [aggregates[n][metric]["high"] - aggregates[n][metric]["mean"] for n in names]
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2, 3.6))
    ax.bar(names, means, yerr=[lows, highs], capsize=4, color="#4c72b0")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="black", linewidth=0.6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_retention(matrix: Sequence[Sequence[float]], path: Path, *, title: str) -> Path:
    """Heatmap of the gain over the base: row j = after update j, column i = passage i.

    Absolute likelihoods differ far more between passages than updates move
    them, so the colour shows ``matrix[j][i] - matrix[0][i]``.
    """
    plt = _pyplot()
    gains = [[v - b for v, b in zip(row, matrix[0], strict=True)] for row in matrix[1:]]
    bound = max(0.05, max(abs(v) for row in gains for v in row))
    fig, ax = plt.subplots(figsize=(0.7 * len(matrix[0]) + 2.5, 0.5 * len(gains) + 1.8))
    im = ax.imshow(gains, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xlabel("passage i")
    ax.set_ylabel("after update j")
    ax.set_xticks(range(len(matrix[0])), [str(i + 1) for i in range(len(matrix[0]))])
    ax.set_yticks(range(len(gains)), [str(j + 1) for j in range(len(gains))])
    for j, row in enumerate(gains):
        for i, v in enumerate(row):
            ax.text(i, j, f"{v:+.2f}", ha="center", va="center", fontsize=7,
                    fontweight="bold" if i == j else "normal")
    fig.colorbar(im, ax=ax, label="Δ gold log-lik / token vs base")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# -- report --------------------------------------------------------------------------------
def render_report(paths: Sequence[str | os.PathLike[str]]) -> str:
    """The main metric of each result side by side, one column per result file."""
    results = [(Path(p).name, load_result(p)) for p in paths]
    blocks = []
    for kind in dict.fromkeys(r["kind"] for _, r in results):
        same = [(n, r) for n, r in results if r["kind"] == kind]
        metric, title, scale = same[0][1]["headline"]
        rows = list(dict.fromkeys(g for _, r in same for g in r["aggregates"]))
        head = f"| {kind}: {title} | " + " | ".join(
            f"{n} ({r['split']}, n={r.get('items', '?')})" for n, r in same
        ) + " |"
        lines = [head, "|" + " --- |" * (len(same) + 1)]
        for g in rows:
            cells = [
                _fmt(r["aggregates"].get(g, {}).get(metric), scale, 1 if scale == 100 else 2)
                for _, r in same
            ]
            lines.append(f"| {g} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
