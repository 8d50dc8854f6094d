"""Policy training evidence: ReST-EM vs GRPO at equal inner-loop budget, scored on held-out SQuAD.

Training and promotion use only the SQuAD **dev** split (``seal-agent policy
train``'s code path, ``PolicyTrainer.train``); the policies each round
produced are then scored on **held-out** passages: for each passage the
policy samples ``--k-eval`` self-edits, each trains a temporary LoRA with the
passage (the shared inner loop), and we record the reward (gold-answer
log-likelihood gain on the passage's questions, nothing in context) and the
greedy answers' SQuAD exact match / F1 / contains. Then SEAL's generalisation
check: the policies trained with the implications prompt, used with the
rewrite and self-QA prompts.

    python benchmarks/policy_evidence.py --contexts 6 --select 2 --k 3 --rounds 2 \\
        --heldout 8 --k-eval 2 --out benchmarks/results/policy_heldout.json

Every number is paired per passage against round 0 (the base policy) with a
bootstrap 95% interval (seal_agent.eval.scoring.paired_bootstrap_ci).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--contexts", type=int, default=6)
    parser.add_argument("--select", type=int, default=2)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--heldout", type=int, default=8)
    parser.add_argument("--k-eval", type=int, default=2)
    parser.add_argument("--methods", default="rest-em,grpo")
    parser.add_argument("--generalisation", default="rewrite,qa")
    parser.add_argument("--general-methods", default="rest-em,grpo",
                        help="Whose last-round policy the generalisation check scores (beside the base).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path(".seal-agent/policy-evidence"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/policy_heldout.json"))
    args = parser.parse_args()

    from seal_agent.adapters import AdapterStore
    from seal_agent.config import load_config
    from seal_agent.eval.data import data_dir, load_squad
    from seal_agent.eval.scoring import paired_bootstrap_ci, squad_scores
    from seal_agent.journal import Journal
    from seal_agent.models import build_language_model, quiet_model_loading
    from seal_agent.policy import DEPLOYMENT, PolicyStore
    from seal_agent.policy.episodes import Episode, load_episodes
    from seal_agent.policy.rollout import derive_seed as _seed
    from seal_agent.policy.rounds import PolicyTrainer
    from seal_agent.reward import QualityScorer
    from seal_agent.types import SelfEditFormat

    quiet_model_loading()
    started = time.perf_counter()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    policy = {"contexts": args.contexts, "select_contexts": args.select, "k": args.k,
              "rounds": args.rounds, "seed": args.seed}
    base_cfg = load_config(home=args.work / "base", policy=policy)
    lm = build_language_model(base_cfg)
    episodes = load_episodes("squad", n=args.contexts + args.select, seed=args.seed, data=args.data)

    # -- training: one home per method, same dev episodes, same budget -------------------
    trainer: PolicyTrainer | None = None
    runs = {}
    policies: dict[str, Path | None] = {"round 0 (base)": None}
    promoted: dict[str, bool] = {"round 0 (base)": True}
    for method in args.methods.split(","):
        cfg = load_config(home=args.work / method, policy={**policy, "method": method})
        store = PolicyStore(AdapterStore(cfg.adapters_dir, Journal(cfg.journal_path)))
        t0 = time.perf_counter()
        pt = PolicyTrainer(cfg, store, lm, scope=DEPLOYMENT,
                           policy_trainer=trainer.policy_trainer if trainer else None,
                           inner_trainer=trainer.inner.trainer if trainer else None,
                           progress=lambda e: console.print(
                               f"[dim]{e.stage} r{e.round} {e.done}/{e.total} {e.context} "
                               f"{'' if e.reward is None else f'{e.reward:+.3f}'} {e.message}[/]"))
        report = pt.train(episodes, reuse_finished=True)  # a re-run reuses finished training
        trainer = pt
        runs[method] = {**report.model_dump(mode="json"), "wall_seconds": round(time.perf_counter() - t0, 1)}
        for rr in report.rounds:
            cand = report.folder / f"round-{rr.round:02d}" / "candidate"
            if cand.is_dir():
                name = f"{method} round {rr.round}"
                policies[name] = cand
                promoted[name] = rr.promoted
    assert trainer is not None

    # -- held-out scoring ------------------------------------------------------------------
    passages, digest = load_squad(data_dir(args.data), "heldout", n=args.heldout, seed=args.seed + 1)
    heldout = [Episode(id=p.id, source=p.context, probes=tuple(p.questions), sources=(p.context,),
                       style="passage", title=p.title) for p in passages]
    answerer = QualityScorer(lm.tokenizer, base_cfg.agent.system_prompt)
    pc = base_cfg.policy.model_copy(update={"k": args.k_eval})
    alone_cache: dict[str, dict] = {}

    def answer_scores(model, ep: Episode) -> dict[str, float]:
        preds = answerer.answers(model, [q for q, _ in ep.probes])
        rows = [squad_scores(p, [gold]) for p, (_, gold) in zip(preds, ep.probes, strict=True)]
        return {k: statistics.fmean(r[k] for r in rows) for k in ("em", "f1", "contains")}

    def alone(ep: Episode) -> dict:
        if ep.id not in alone_cache:
            reward = trainer._alone(ep)
            # the inner loop left the context-alone adapter loaded only if it just ran; rerun to answer
            trainer.inner.run(list(ep.sources), ep.probes, start=None, before=trainer._before_score(ep))
            alone_cache[ep.id] = {"reward": reward, **answer_scores(trainer.inner.trainer.model, ep)}
        return alone_cache[ep.id]

    def evaluate(path: Path | None, formats: list[SelfEditFormat]) -> list[dict]:
        state = trainer.policy_trainer.load(path) if path else None
        per_passage = []
        for ep in heldout:
            cands = trainer.sample(ep, state, pc, _seed("heldout", args.seed, ep.id, formats[0].value),
                                   formats=formats)
            samples = []
            for j, cand in enumerate(cands):
                if cand.items:
                    reward = trainer.reward(ep, cand, pc, _seed("heldout-inner", ep.id, j))
                    samples.append({"reward": reward, "items": len(cand.items),
                                    **answer_scores(trainer.inner.trainer.model, ep)})
                else:
                    samples.append({**alone(ep), "items": 0})
            per_passage.append({
                "passage": ep.id, "samples": samples,
                **{k: statistics.fmean(s[k] for s in samples) for k in ("reward", "em", "f1", "contains")},
                "usable": sum(1 for s in samples if s["items"]),
            })
            console.print(f"[dim]held-out {ep.id}: reward {per_passage[-1]['reward']:+.3f}[/]")
        return per_passage

    results: dict[str, dict] = {}
    imp = [SelfEditFormat.IMPLICATION]
    for name, path in policies.items():
        t0 = time.perf_counter()
        results[name] = {"format": "implication", "promoted": promoted[name],
                         "passages": evaluate(path, imp), "seconds": round(time.perf_counter() - t0, 1)}
        partial = args.out.with_suffix(".partial.json")
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({"runs": runs, "results": results}, indent=1, default=str))
    last = {m: max((n for n in policies if n.startswith(m)), default=None)
            for m in args.general_methods.split(",") if m}
    general: dict[str, dict] = {}
    for fmt in [f for f in args.generalisation.split(",") if f]:
        for name in ["round 0 (base)", *[n for n in last.values() if n]]:
            general[f"{name} | {fmt}"] = {"format": fmt, "policy": name,
                                          "passages": evaluate(policies[name], [SelfEditFormat(fmt)])}
            args.out.with_suffix(".partial.json").write_text(json.dumps(
                {"runs": runs, "results": results, "general_results": general}, indent=1, default=str))

    # -- summary: means and paired intervals against the base ------------------------------
    def summarise(block: dict[str, dict], base_of) -> list[dict]:
        rows = []
        for name, res in block.items():
            ps = res["passages"]
            base = block[base_of(name)]["passages"]
            row = {"name": name, "promoted": res.get("promoted"), "format": res["format"]}
            for k in ("reward", "em", "f1", "contains"):
                row[k] = statistics.fmean(p[k] for p in ps)
                row[f"{k}_vs_base"] = paired_bootstrap_ci([p[k] for p in base], [p[k] for p in ps], seed=args.seed)
            row["usable"] = f"{sum(p['usable'] for p in ps)}/{sum(len(p['samples']) for p in ps)}"
            rows.append(row)
        return rows

    main_rows = summarise(results, lambda n: "round 0 (base)")
    gen_rows = summarise(general, lambda n: f"round 0 (base) | {general[n]['format']}")
    for title, rows in (("held-out SQuAD, implications prompt", main_rows), ("generalisation", gen_rows)):
        table = Table("policy", "format", "reward", "Δ vs base [95% CI]", "EM", "F1", "contains", "Δcontains [95% CI]", "usable", title=title)
        for r in rows:
            ci = r["reward_vs_base"]
            cc = r["contains_vs_base"]
            table.add_row(r["name"], r["format"], f"{r['reward']:+.3f}", f"{ci[0]:+.3f} [{ci[1]:+.3f}, {ci[2]:+.3f}]",
                          f"{r['em']:.3f}", f"{r['f1']:.3f}", f"{r['contains']:.3f}",
                          f"{cc[0]:+.3f} [{cc[1]:+.3f}, {cc[2]:+.3f}]", r["usable"])
        console.print(table)
    elapsed = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "args": {k: str(v) for k, v in vars(args).items()}, "commit": commit,
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
        "train_split": "squad dev", "eval_split": "squad heldout", "heldout_digest": digest,
        "runs": runs, "table": main_rows, "generalisation": gen_rows,
        "results": results, "general_results": general, "seconds": round(elapsed, 1),
    }, indent=1, default=str))
    console.print(f"wrote {args.out} ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
