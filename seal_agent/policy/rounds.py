"""Policy rounds: sample, reward with the shared inner loop, update, select, promote.

One round, for either method (``rest-em`` or ``grpo``):

1. **Sample and reward.** For each training context the current policy
   samples ``k`` self-edits; each is rewarded by :class:`InnerLoop` (the
   consolidation's own implementation): a temporary LoRA trains on the
   self-edit's lines plus the context, the probes are scored with nothing in
   context, reward = after - before, averaged over ``repeats`` inner loops.
   A sample whose every line the faithfulness gate dropped trains on the
   context alone, so its reward is the context-alone reward (measured once
   per context).
2. **Update.** ReST-EM keeps each context's best sample (optionally only if
   its reward is positive) and fine-tunes the policy on (prompt -> that
   self-edit), loss on the completion tokens only. GRPO weights every
   sample's completion tokens by its group-relative advantage
   ``(r - mean) / std`` over the context's ``k`` samples.
3. **Select.** The updated policy and the current one each sample and are
   rewarded on held-apart contexts (same seeds for both: paired); the new
   policy is promoted (atomically, with a manifest) only if its mean reward
   is higher.

Every finished context is appended to the run folder's ``events.jsonl``
(flushed and fsynced), so a killed run resumes from the last finished
context: ``seal-agent policy train`` with the same settings picks it up.

This module runs the rounds and decides each one. Sampling and rewarding are
:mod:`~seal_agent.policy.rollout`'s, the update examples and the candidate's
atomic write :mod:`~seal_agent.policy.update`'s, the run folder and its log
:mod:`~seal_agent.policy.runlog`'s.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seal_agent.errors import ConfigError, CorruptAdapterError
from seal_agent.policy.episodes import Episode, EpisodeSet
from seal_agent.policy.rollout import PolicySampler, derive_seed
from seal_agent.policy.runlog import RunLog, now, open_run
from seal_agent.policy.store import KIND, PolicyStore, Scope
from seal_agent.policy.update import update_examples, write_candidate
from seal_agent.types import FrozenModel

if TYPE_CHECKING:
    from seal_agent.config import PolicyConfig, SealAgentConfig
    from seal_agent.training import LoraTrainer, TrainExample

__all__ = [
    "PolicyEvent",
    "PolicyReport",
    "PolicyTrainer",
    "RoundResult",
]


class PolicyEvent(FrozenModel):
    """What a run is doing (the CLI draws it)."""

    stage: str  # sample | select | update | promote | round | resume
    round: int
    rounds: int
    done: int = 0  # units of work finished in the whole run (contexts + updates)
    total: int = 0
    context: str = ""
    reward: float | None = None
    message: str = ""


class RoundResult(FrozenModel):
    round: int
    contexts: int
    samples: int
    usable_samples: int  # samples with at least one line past the gate
    mean_reward: float | None  # mean over every sample of the round
    best_of_k: float | None  # mean over contexts of the best sample's reward
    positive: int  # samples with a positive reward
    examples: int  # policy-update examples
    update_loss: tuple[float, float] | None  # first and last step loss
    select_current: float | None
    select_candidate: float | None
    promoted: bool
    version: str | None
    reason: str


class PolicyReport(FrozenModel):
    run_id: str
    folder: Path
    method: str
    origin: str
    skipped_no_probes: int
    train_contexts: int
    select_contexts: int
    start: str  # the policy the run started from
    rounds: tuple[RoundResult, ...]
    inner_loops: int
    seconds: float
    resumed: bool


Progress = Callable[[PolicyEvent], None]


# -- the round's verdicts ---------------------------------------------------------------------
def _round_stats(r: int, groups: list[dict[str, Any]]) -> dict[str, Any]:
    """What a round's samples earned: the fields of its :class:`RoundResult` they decide."""
    rewards = [s["reward"] for g in groups for s in g["samples"]]
    usable = [s for g in groups for s in g["samples"] if s["items"]]
    bests = [max(s["reward"] for s in g["samples"] if s["items"])
             for g in groups if any(s["items"] for s in g["samples"])]
    return {
        "round": r, "contexts": len(groups), "samples": len(rewards), "usable_samples": len(usable),
        "mean_reward": statistics.fmean(rewards) if rewards else None,
        "best_of_k": statistics.fmean(bests) if bests else None,
        "positive": sum(1 for s in usable if s["reward"] > 0),
    }


def _refusal(means: dict[str, float], usable: dict[str, int]) -> str | None:
    """Why the candidate is not promoted over the current policy, or None when it is."""
    if means["candidate"] <= means["current"]:
        return (f"held-apart mean reward {means['candidate']:+.4f} does not beat the "
                f"current policy's {means['current']:+.4f}; nothing promoted")
    if usable["candidate"] < usable["current"]:
        # An empty self-edit earns the context-alone reward; where the current policy's
        # lines hurt, a policy that writes nothing usable would "win" (seen on dev).
        return (f"held-apart mean reward {means['current']:+.4f} -> {means['candidate']:+.4f}, "
                f"but the new policy wrote fewer usable self-edits "
                f"({usable['candidate']} vs {usable['current']}); nothing promoted")
    return None


class PolicyTrainer(PolicySampler):
    """Runs policy rounds; one instance holds two LoRA-wrapped copies of the base.

    Sampling and rewarding, and the two trainers, are :class:`PolicySampler`'s;
    this class adds the store the policy is promoted to and the resumable rounds.
    """

    def __init__(
        self,
        config: SealAgentConfig,
        store: PolicyStore,
        lm: Any,
        *,
        scope: Scope,
        runs_dir: Path | None = None,
        policy_trainer: LoraTrainer | None = None,
        inner_trainer: LoraTrainer | None = None,
        progress: Progress | None = None,
    ) -> None:
        super().__init__(config, lm, policy_trainer=policy_trainer, inner_trainer=inner_trainer)
        self.store = store
        self.scope = scope
        self.runs_dir = runs_dir or config.home / "policy-runs"
        self.progress = progress or (lambda event: None)

    # -- one run ------------------------------------------------------------------------------
    def train(
        self,
        episodes: EpisodeSet,
        settings: PolicyConfig | None = None,
        *,
        fresh: bool = False,
        reuse_finished: bool = False,
    ) -> PolicyReport:
        """Run ``settings.rounds`` rounds (resuming an unfinished run with the same settings).

        ``reuse_finished``: a *finished* run with the same settings and episodes is
        reported again instead of training anew (benchmarks that are re-run).
        """
        pc = settings or self.config.policy
        started = time.perf_counter()
        train_eps, select_eps = episodes.split(pc.contexts, pc.select_contexts)
        start_version = self.store.active(self.scope)
        if start_version is not None:
            start_version, _ = self.store.resolve(None, self.scope)  # refuse a corrupt one
        run_id, log, resumed = self._open_run(pc, episodes, start_version, fresh, reuse_finished)
        scope_dir = log.folder

        total = pc.rounds * (len(train_eps) + 2 * len(select_eps) + 1)
        done_units = sum(1 for e in log.events if e["kind"] in ("sample", "select_done", "update"))
        self._done, self._total = done_units, total
        if resumed:
            self._emit("resume", 1, pc.rounds, message=f"resuming {run_id} ({done_units}/{total} done)")

        meta = json.loads((scope_dir / "run.json").read_text())
        current = {"label": meta["start_label"], "version_id": meta["start_version_id"]}
        results: list[RoundResult] = []
        for r in range(1, pc.rounds + 1):
            finished = log.find("round", round=r)
            if finished is not None:
                results.append(RoundResult(**finished["result"]))
                current = finished["next"]
                continue
            result, current = self._round(r, pc, log, run_id, train_eps, select_eps, current, episodes)
            results.append(result)
        if log.find("finished") is None:
            log.append({"kind": "finished", "at": now()})
        inner_loops = sum(
            len(e["samples"]) * pc.repeats + 1 for e in log.events if e["kind"] in ("sample", "select")
        )
        return PolicyReport(
            run_id=run_id, folder=scope_dir, method=pc.method, origin=episodes.origin,
            skipped_no_probes=episodes.skipped_no_probes, train_contexts=len(train_eps),
            select_contexts=len(select_eps), start=meta["start_label"], rounds=tuple(results),
            inner_loops=inner_loops, seconds=round(time.perf_counter() - started, 1),
            resumed=resumed,
        )

    def _round(
        self, r: int, pc: PolicyConfig, log: RunLog, run_id: str, train_eps: list[Episode],
        select_eps: list[Episode], current: dict[str, Any], episodes: EpisodeSet,
    ) -> tuple[RoundResult, dict[str, Any]]:
        """One round: sample and reward, update, select, promote; each step resumes from the log."""
        cur_state = self._state(current, log.folder)
        # 1. sample and reward every training context (skipping those already logged)
        groups = self._sample_contexts(r, pc, log, train_eps, cur_state)
        stats = _round_stats(r, groups)

        def close(reason: str, nxt: dict[str, Any] | None = None,
                  **extra: Any) -> tuple[RoundResult, dict[str, Any]]:
            return self._close(r, pc, log, stats, nxt or current, reason, **extra)

        # 2. update
        update = log.find("update", round=r)
        if update is None:
            update, reason = self._update_step(r, pc, log, groups, stats, cur_state)
            if update is None:
                self._done += 1 + 2 * len(select_eps)
                return close(reason)
        cand_label = f"{run_id}:r{r}"
        cand_state = self.policy_trainer.load(log.folder / f"round-{r:02d}" / "candidate")

        # 3. select: the current and the updated policy on the same held-apart contexts
        means, usable = self._select(r, pc, log, select_eps, (
            ("current", current["label"], cur_state), ("candidate", cand_label, cand_state)))
        extra = {"examples": update["examples"], "update_loss": tuple(update["loss"]),
                 "select_current": means["current"], "select_candidate": means["candidate"]}
        refusal = _refusal(means, usable)
        if refusal is not None:
            return close(refusal, **extra)

        # 4. promote (idempotent: a kill after the commit must not promote twice)
        version = self._promote(r, pc, run_id, cand_state, current, episodes,
                                {**{k: v for k, v in stats.items() if k != "round"}, **extra})
        return close(f"held-apart mean reward {means['current']:+.4f} -> {means['candidate']:+.4f}: "
                     f"promoted {version.name}", {"label": cand_label, "version_id": version.id},
                     promoted=True, version=version.name, **extra)

    # -- the steps of a round -----------------------------------------------------------------
    def _sample_contexts(
        self, r: int, pc: PolicyConfig, log: RunLog, train_eps: list[Episode],
        cur_state: dict[str, Any] | None,
    ) -> list[dict[str, Any]]:
        """Each training context's logged samples, sampling and rewarding those not logged yet."""
        groups: list[dict[str, Any]] = []
        for ep in train_eps:
            event = log.find("sample", round=r, context=ep.id)
            if event is None:
                samples = self._rollout(ep, cur_state, pc, derive_seed(pc.seed, "train", r, ep.id))
                event = {"kind": "sample", "round": r, "context": ep.id, "samples": samples,
                         "alone": self._alone(ep, log)}
                log.append(event)
                self._done += 1
                best = max((s["reward"] for s in samples if s["items"]), default=None)
                self._emit("sample", r, pc.rounds, context=ep.id, reward=best)
            groups.append(event)
        return groups

    def _update_step(
        self, r: int, pc: PolicyConfig, log: RunLog, groups: list[dict[str, Any]],
        stats: dict[str, Any], cur_state: dict[str, Any] | None,
    ) -> tuple[dict[str, Any] | None, str]:
        """The logged update event, or None and why nothing could be learned this round."""
        if stats["positive"] == 0:
            return None, ("no sample earned a positive reward: nothing to learn from, "
                          "nothing promoted")
        examples = update_examples(groups, pc)
        if not examples:
            return None, "no context had a usable sample to learn from; nothing promoted"
        update = self._update(r, pc, cur_state, examples, log.folder)
        log.append(update)
        self._done += 1
        self._emit("update", r, pc.rounds, message=f"{update['examples']} examples")
        return update, ""

    def _select(
        self, r: int, pc: PolicyConfig, log: RunLog, select_eps: list[Episode],
        policies: tuple[tuple[str, str, dict[str, Any] | None], ...],
    ) -> tuple[dict[str, float], dict[str, int]]:
        """Per policy (``which``, label, state): its mean held-apart reward and usable samples."""
        means: dict[str, float] = {}
        usable_select: dict[str, int] = {}
        for which, label, state in policies:
            per_context = []
            for ep in select_eps:
                event = log.find("select", policy=label, context=ep.id)
                if event is None:
                    samples = self._rollout(ep, state, pc, derive_seed(pc.seed, "select", ep.id))
                    event = {"kind": "select", "policy": label, "context": ep.id, "samples": samples,
                             "mean": statistics.fmean(s["reward"] for s in samples)}
                    log.append(event)
                    self._emit("select", r, pc.rounds, context=f"{which}: {ep.id}", reward=event["mean"])
                if log.find("select_done", round=r, which=which, context=ep.id) is None:
                    log.append({"kind": "select_done", "round": r, "which": which, "context": ep.id})
                    self._done += 1
                per_context.append(event["mean"])
                usable_select[which] = usable_select.get(which, 0) + sum(
                    1 for x in event["samples"] if x["items"])
            means[which] = statistics.fmean(per_context)
        return means, usable_select

    def _promote(
        self, r: int, pc: PolicyConfig, run_id: str, cand_state: dict[str, Any],
        current: dict[str, Any], episodes: EpisodeSet, metrics: dict[str, Any],
    ) -> Any:
        """The candidate as a new policy version; the one already made if a kill followed it."""
        version = next((v for v in self.store.list(self.scope)
                        if v.metrics.get("policy_run") == run_id and v.metrics.get("round") == r), None)
        if version is None:
            self._emit("promote", r, pc.rounds)
            self.policy_trainer.reset(cand_state)
            parent = current.get("version_id")
            version = self.store.promote(
                self.policy_trainer.save, scope=self.scope, parent_id=parent,
                config=self.config.public_dict(),
                metrics={"policy_run": run_id, "round": r, "method": pc.method,
                         "origin": episodes.origin, "settings": pc.model_dump(mode="json"), **metrics},
            )
        return version

    def _close(
        self, r: int, pc: PolicyConfig, log: RunLog, stats: dict[str, Any], nxt: dict[str, Any],
        reason: str, **extra: Any,
    ) -> tuple[RoundResult, dict[str, Any]]:
        """Log the round's result and the policy the next round starts from."""
        fields = {"examples": 0, "update_loss": None, "select_current": None,
                  "select_candidate": None, "promoted": False, "version": None, **stats, **extra}
        result = RoundResult(**fields, reason=reason)
        log.append({"kind": "round", "round": r, "result": result.model_dump(mode="json"),
                    "next": nxt})
        self._emit("round", r, pc.rounds, message=reason)
        return result, nxt

    # -- pieces -----------------------------------------------------------------------------
    def _open_run(
        self, pc: PolicyConfig, episodes: EpisodeSet, start: Any, fresh: bool,
        reuse_finished: bool = False,
    ) -> tuple[str, RunLog, bool]:
        """An unfinished run with the same settings and episodes, or a new one."""
        key = {"settings": pc.model_dump(mode="json"), "episodes": episodes.digest,
               "scope": list(self.scope), "consolidation": self.config.consolidation.model_dump(mode="json")}
        return open_run(self.runs_dir, key, pc.method, episodes.origin, start, fresh, reuse_finished)

    def _state(self, current: dict[str, Any], folder: Path) -> dict[str, Any] | None:
        """The LoRA weights of a policy: None for the base, else from its (verified) version."""
        version_id = current.get("version_id")
        if version_id is None:
            return None
        version = self.store.adapters.get(version_id)
        if version.kind != KIND:
            raise CorruptAdapterError(f"{version.name} ({version_id}) is not a policy adapter")
        self.store.adapters.verify(version)
        return self.policy_trainer.load(version.path)

    def _update(self, r: int, pc: PolicyConfig, state: dict[str, Any] | None,
                examples: list[TrainExample], folder: Path) -> dict[str, Any]:
        """Fine-tune the policy from ``state``; write the candidate adapter atomically."""
        from seal_agent.training import TrainSettings

        trainer = self.policy_trainer
        trainer.reset(state, seed=pc.seed)
        settings = TrainSettings(
            epochs=1 if pc.method == "grpo" else pc.epochs, lr=pc.lr, batch_tokens=pc.batch_tokens,
            max_seq_len=pc.max_seq_len, seed=derive_seed(pc.seed, "update", r) % (2**31),
        )
        try:
            stats = trainer.train(examples, settings)
        except ValueError as exc:
            raise ConfigError(f"policy update of round {r} has nothing to train on: {exc}") from exc
        write_candidate(trainer.save, folder / f"round-{r:02d}")
        return {"kind": "update", "round": r, "examples": len(examples), "steps": stats.steps,
                "tokens": stats.tokens, "seconds": round(stats.seconds, 2),
                "loss": [stats.first_loss, stats.last_loss]}

    def _emit(self, stage: str, r: int, rounds: int, **fields: Any) -> None:
        self.progress(PolicyEvent(stage=stage, round=r, rounds=rounds, done=self._done,
                                  total=self._total, **fields))
