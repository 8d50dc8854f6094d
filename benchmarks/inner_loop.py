"""Inner-loop LoRA training throughput, against the matmul peak of the same run.

    .venv/bin/python benchmarks/inner_loop.py --cache-dir /tmp/exp/cache --json out.json

One run: (1) the bf16 and fp32 matmul peaks (2048^3 torch.matmul, best of a
few reps); (2) a naive inner loop (batch 1, fp32, no packing, transformers'
own loss); (3) LoraTrainer (packed rows, fused head loss) in fp32 and in bf16
autocast, and over several batch token budgets. All on the default model,
on ~40 self-edit lines of 15-60 tokens, the size of one candidate's data.

FLOPs are counted as 4 x N x tokens: N is the base model's parameter count
(tied embeddings counted once: the output head is the one matmul they do),
2N per token forward and 2N for the activation gradients backward; the
frozen base gets no weight gradients. LoRA and attention FLOPs are left out
(a few percent), so GFLOP/s is a slight under-count, never an over-count.
Tokens are real (non-pad) tokens, EOS included.

Another process on the two cores halves every number: the load average is
printed before and after, and the run warns when it was not alone.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(width=max(132, Console().width))  # the table needs the room, even in a log

SUBJECTS = ["The user", "The user's sister Mara", "Their neighbour Tomas", "The user's partner"]
FACTS = [
    "adopted a beagle named Biscuit",
    "is allergic to peanuts and carries an epinephrine pen",
    "plays the bassoon in a community orchestra on Thursday evenings",
    "works as a glassblower at a small studio in Tacoma",
    "moved from Lisbon to Seattle in the spring of 2019",
    "prefers tea with oat milk and no sugar",
    "is training for the Berlin marathon in September",
    "keeps a vegetable garden with tomatoes, kale and three kinds of beans",
    "speaks Portuguese at home and is learning Japanese on weekends",
    "drives an old green Volvo that breaks down every winter",
    "volunteers at the animal shelter on Saturday mornings",
    "is writing a novel about a lighthouse keeper in Maine",
    "hates cilantro and will not eat at Mexican restaurants because of it",
    "has a daughter, Ines, who turns seven in March",
    "was born in Porto and studied chemistry in Coimbra",
]
DETAILS = [
    "which Biscuit, three years old, loves more than carrots",
    "as the doctor advised after a bad reaction last year",
    "because the rent near the lake became too high",
    "and says it is the best part of the week",
    "although the commute takes almost an hour each way",
    "and hopes to finish before the end of the year",
]


class OtherLoad:
    """CPU-seconds that other processes used per wall second while the block ran.

    Read from /proc/stat (all processes) minus this process's own CPU time, so
    a number near 0 means the run had the cores to itself.
    """

    def __enter__(self) -> OtherLoad:
        self._busy, self._own, self._start = _busy_seconds(), _own_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._start
        self.value = max(0.0, (_busy_seconds() - self._busy) - (_own_seconds() - self._own)) / wall


def _busy_seconds() -> float:
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:  # not Linux: no way to tell, report 0
        return 0.0
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def wait_until_alone(limit: float, threshold: float = 0.1) -> float:
    """Wait (up to ``limit`` s) until other processes use < ``threshold`` cores for 5 s."""
    deadline = time.monotonic() + limit
    while True:
        with OtherLoad() as other:
            time.sleep(5)
        if other.value < threshold or time.monotonic() > deadline:
            return other.value


def measured(fn: Any, args: argparse.Namespace, label: str) -> dict[str, Any]:
    """Run ``fn`` until it runs alone (other load < --max-other), at most --tries times."""
    result: dict[str, Any] = {}
    for attempt in range(1, args.tries + 1):
        with OtherLoad() as other:
            result = fn()
        result.update(other_load=round(other.value, 3), attempts=attempt)
        if other.value < args.max_other:
            return result
        console.print(f"[yellow]{label}: other processes used {other.value:.2f} cores; waiting to rerun[/yellow]")
        wait_until_alone(args.wait)
    return result


def self_edit_lines(n: int, tokenizer: Any, seed: int = 0) -> list[str]:
    """Deterministic lines like a candidate's self-edit: one to three facts each, 15-60 tokens."""
    rng = random.Random(seed)
    lines: list[str] = []
    while len(lines) < n:
        parts = [rng.choice(FACTS) for _ in range(rng.choice([1, 1, 2, 2, 3]))]
        text = f"{rng.choice(SUBJECTS)} {', and '.join(parts)}"
        if rng.random() < 0.4:
            text += f", {rng.choice(DETAILS)}"
        text += "."
        tokens = len(tokenizer(text)["input_ids"]) + 1  # + EOS, as the trainer adds it
        if 15 <= tokens <= 60:
            lines.append(text)
    return lines


def matmul_peak(dtype: Any, size: int = 2048, reps: int = 5) -> dict[str, float]:
    """GFLOP/s of size^3 torch.matmul: best and median of ``reps`` after one warm-up."""
    import torch

    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b  # builds the kernel, warms the caches
    rates = []
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return {"best": max(rates), "median": statistics.median(rates)}


def naive_loop(trainer: Any, sequences: list[str], warmup: int = 3) -> dict[str, float]:
    """Batch 1, fp32, no packing, transformers' own loss: the loop SEAL's code runs."""
    import torch

    trainer.reset(None, seed=0)
    ids = [torch.tensor([x]) for x in trainer._tokenize(sequences, 256)]
    model = trainer.model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=3e-4)
    model.train()

    def one(x: Any) -> None:
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for x in ids[:warmup]:  # first calls build kernels: not timed
        one(x)
    start = time.perf_counter()
    for x in ids:
        one(x)
    seconds = time.perf_counter() - start
    model.eval()
    tokens = sum(x.numel() for x in ids)
    return {"tokens": tokens, "padded_tokens": tokens, "seconds": seconds, "steps": len(ids), "epoch_losses": []}


def trainer_run(trainer: Any, sequences: list[str], epochs: int, **settings: Any) -> dict[str, Any]:
    from seal_agent.training import TrainSettings

    trainer.reset(None, seed=0)
    trainer.train(sequences, TrainSettings(epochs=1, **settings))  # warm-up: kernels for these shapes
    trainer.reset(None, seed=0)
    stats = trainer.train(sequences, TrainSettings(epochs=epochs, **settings))
    return {
        "tokens": stats.tokens,
        "padded_tokens": stats.padded_tokens,
        "seconds": stats.seconds,
        "steps": stats.steps,
        "bf16": stats.bf16,
        "first_loss": stats.first_loss,
        "last_loss": stats.last_loss,
        "epoch_losses": stats.epoch_losses,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, help="converted-model cache (default: the config's)")
    parser.add_argument("--home", type=Path, default=Path("/tmp/seal-agent-bench"), help="memory home for the config")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2: the machine's cores)")
    parser.add_argument("--sequences", type=int, default=40, help="self-edit lines per inner loop")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs of each LoraTrainer run")
    parser.add_argument(
        "--budgets", type=int, nargs="*", default=[512, 1024, 2048, 4096], help="batch_tokens swept (auto precision)"
    )
    parser.add_argument("--skip-naive", action="store_true", help="skip the (slow) naive loop")
    parser.add_argument("--tries", type=int, default=3, help="reruns of a measurement disturbed by other processes")
    parser.add_argument("--max-other", type=float, default=0.1, help="other processes' cores that count as disturbed")
    parser.add_argument("--wait", type=float, default=600, help="longest wait for the machine to be alone, seconds")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM

    from seal_agent.config import load_config
    from seal_agent.models import build_language_model, quiet_model_loading
    from seal_agent.training import LoraTrainer, bf16_is_faster

    quiet_model_loading()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    console.print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    result: dict[str, Any] = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "load_before": load_before,
    }

    # 1. the peaks every ratio is taken against
    result["other_load_at_start"] = wait_until_alone(args.wait)
    result["peak_bf16"] = measured(lambda: matmul_peak(torch.bfloat16), args, "bf16 peak")
    result["peak_fp32"] = measured(lambda: matmul_peak(torch.float32), args, "fp32 peak")
    result["bf16_is_faster"] = bf16_is_faster()
    peak = result["peak_bf16"]["best"]
    best_peak = max(peak, result["peak_fp32"]["best"])

    # 2. the model: the agent's own loader, then a private copy for the trainer
    overrides = {"model": {"cache_dir": str(args.cache_dir)}} if args.cache_dir else {}
    lm = build_language_model(load_config(home=args.home, **overrides))
    base = AutoModelForCausalLM.from_pretrained(lm.source)
    n_params = sum(p.numel() for p in base.parameters())  # tied weights counted once
    flops_per_token = 4 * n_params
    trainer = LoraTrainer(base, lm.tokenizer)
    sequences = self_edit_lines(args.sequences, lm.tokenizer)
    lengths = [len(x) for x in trainer._tokenize(sequences, 256)]
    result.update(
        model=lm.name, n_params=n_params, flops_per_token=flops_per_token,
        sequences=len(sequences), tokens_per_epoch=sum(lengths), min_len=min(lengths), max_len=max(lengths),
    )
    console.print(
        f"{lm.name}: N = {n_params / 1e6:.1f}M, FLOPs/token = 4N = {flops_per_token / 1e6:.0f}M; "
        f"{len(sequences)} lines, {sum(lengths)} tokens, {min(lengths)}-{max(lengths)} tokens each"
    )

    # 3. the loops
    runs: dict[str, dict[str, Any]] = {}
    plan: dict[str, Any] = {}
    if not args.skip_naive:
        plan["naive: batch 1, fp32, unpacked"] = lambda: naive_loop(trainer, sequences)
    plan["LoraTrainer fp32"] = lambda: trainer_run(trainer, sequences, args.epochs, bf16=False)
    plan["LoraTrainer bf16 autocast"] = lambda: trainer_run(trainer, sequences, args.epochs, bf16=True)
    for budget in args.budgets:
        plan[f"LoraTrainer auto, {budget} tokens/batch"] = functools.partial(
            trainer_run, trainer, sequences, args.epochs, batch_tokens=budget
        )
    for name, fn in plan.items():
        console.print(f"running {name} ...")
        runs[name] = measured(fn, args, name)
    # the peaks once more: the host's speed drifts; the higher reading is the one divided by
    end_bf16 = measured(lambda: matmul_peak(torch.bfloat16), args, "bf16 peak")
    end_fp32 = measured(lambda: matmul_peak(torch.float32), args, "fp32 peak")
    result["peak_bf16_end"], result["peak_fp32_end"] = end_bf16, end_fp32
    peak = max(peak, end_bf16["best"])
    best_peak = max(best_peak, peak, end_fp32["best"])
    result["peak_bf16_used"], result["peak_best_used"] = peak, best_peak
    naive = runs.get("naive: batch 1, fp32, unpacked")
    for run in runs.values():
        run["tokens_per_s"] = run["tokens"] / run["seconds"]
        run["gflops"] = flops_per_token * run["tokens_per_s"] / 1e9
        run["of_bf16_peak"] = run["gflops"] / peak
        run["of_best_peak"] = run["gflops"] / best_peak
        run["speedup_vs_naive"] = run["tokens_per_s"] / naive["tokens_per_s"] if naive else None
        run["padding"] = 1 - run["tokens"] / run["padded_tokens"]
    result["runs"] = runs
    result["load_after"] = os.getloadavg()

    _report(result, peak, best_peak)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
        console.print(f"wrote {args.json}")
    return 0


def _report(result: dict[str, Any], peak: float, best_peak: float) -> None:
    console.print(
        f"matmul 2048^3, best of 5 at start / end: bf16 {result['peak_bf16']['best']:.0f} / "
        f"{result['peak_bf16_end']['best']:.0f} GFLOP/s, fp32 {result['peak_fp32']['best']:.0f} / "
        f"{result['peak_fp32_end']['best']:.0f} GFLOP/s; ratios use the higher: bf16 {peak:.0f}, "
        f"best of both {best_peak:.0f}. bf16 autocast chosen by auto here: {result['bf16_is_faster']}"
    )
    table = Table(title="inner-loop LoRA training (real tokens)")
    cols = ("run", "tok/s", "GFLOP/s", "of bf16 peak", "of best peak", "vs naive", "padding", "steps",
            "last-epoch loss", "other load")
    for col in cols:
        table.add_column(col, justify="left" if col == "run" else "right")
    for name, run in result["runs"].items():
        speed = f"{run['speedup_vs_naive']:.1f}x" if run["speedup_vs_naive"] else "-"
        table.add_row(
            name, f"{run['tokens_per_s']:.0f}", f"{run['gflops']:.0f}", f"{run['of_bf16_peak']:.0%}",
            f"{run['of_best_peak']:.0%}", speed, f"{run['padding']:.0%}", str(run["steps"]),
            f"{run['epoch_losses'][-1]:.2f}" if run["epoch_losses"] else "-", f"{run['other_load']:.2f}",
        )
    console.print(table)
    best = max(result["runs"].values(), key=lambda r: r["gflops"])
    verdict = "reached" if best["of_bf16_peak"] >= 0.5 else "NOT reached"
    console.print(f"target (>= 50% of the bf16 peak of this run): {verdict}, best {best['of_bf16_peak']:.0%}")
    after = result["load_after"]
    console.print(f"load average after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")
    disturbed = [name for name, run in result["runs"].items() if run["other_load"] >= 0.1]
    if disturbed:
        console.print(f"[yellow]other processes shared the cores during: {', '.join(disturbed)}[/yellow]")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
