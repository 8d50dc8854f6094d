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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seal_agent.errors import ConfigError, CorruptAdapterError
from seal_agent.innerloop import InnerLoop
from seal_agent.policy.episodes import Episode, EpisodeSet
from seal_agent.policy.store import KIND, PolicyStore, Scope
from seal_agent.policy.writer import TrainerLM, passage_config
from seal_agent.types import FrozenModel, SelfEditFormat

if TYPE_CHECKING:
    from seal_agent.config import PolicyConfig, SealAgentConfig
    from seal_agent.selfedit import Candidate
    from seal_agent.training import LoraTrainer, TrainExample

__all__ = [
    "PolicyEvent",
    "PolicyReport",
    "PolicyTrainer",
    "RoundResult",
    "completion_for_training",
    "group_advantages",
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


# -- pure pieces ---------------------------------------------------------------------------
def group_advantages(rewards: Sequence[float], eps: float = 1e-4) -> list[float] | None:
    """GRPO's group-relative advantages ``(r - mean) / (std + eps)``; None when all tie.

    ``std`` is the sample standard deviation, as TRL computes it.
    """
    if len(rewards) < 2:
        return None
    std = statistics.stdev(rewards)
    if std < 1e-9:
        return None  # no signal: every sample earned the same
    mu = statistics.fmean(rewards)
    return [(r - mu) / (std + eps) for r in rewards]


def completion_for_training(fmt: SelfEditFormat, items: Sequence[str], raw: str) -> str:
    """The gated self-edit as the prompt's continuation (the prompt ends after ``-``,
    ``Rewritten:`` or ``Q:``): the policy learns the lines that passed the gate, not
    the hallucinated ones it also wrote."""
    if not items:
        return " " + raw.strip()
    if fmt is SelfEditFormat.REWRITE:
        return " " + items[0]
    if fmt is SelfEditFormat.QA:
        text = "\n".join(items)
        return " " + text.removeprefix("Q:").lstrip()
    body = " " + "\n- ".join(items)
    if fmt is SelfEditFormat.DIRECTIVE:  # keep the settings line the model chose
        training = next((ln for ln in raw.splitlines() if ln.strip().startswith("Training:")), None)
        if training:
            body += "\n" + training.strip()
    return body


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


# -- the run folder -------------------------------------------------------------------------
class RunLog:
    """Append-only JSON lines, one per finished unit of work; fsynced per line."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "events.jsonl"
        self.events: list[dict[str, Any]] = []
        if self.path.exists():
            data = self.path.read_bytes()
            cut = data.rfind(b"\n") + 1
            if cut < len(data):  # a line cut short by a kill: drop it
                with self.path.open("r+b") as fh:
                    fh.truncate(cut)
                data = data[:cut]
            self.events = [json.loads(line) for line in data.decode().splitlines() if line.strip()]

    def append(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, sort_keys=True, default=str) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.events.append(json.loads(line))

    def find(self, kind: str, **keys: Any) -> dict[str, Any] | None:
        for event in self.events:
            if event.get("kind") == kind and all(event.get(k) == v for k, v in keys.items()):
                return event
        return None


# -- the trainer ----------------------------------------------------------------------------
class PolicyTrainer:
    """Runs policy rounds; one instance holds two LoRA-wrapped copies of the base.

    ``policy_trainer`` holds the policy (samples and is updated);
    ``inner_trainer`` is the inner loop's scratch adapter (the memory side).
    Both are built from ``lm``'s trainable base when not given (the local model, or
    ``model.trainer`` for a remote one; ``BackendCapabilityError`` without either).
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
        from seal_agent.models import trainable_base
        from seal_agent.reward import make_scorer

        self.config = config
        self.store = store
        self.lm = lm
        self.base = trainable_base(lm, "train a self-edit policy")
        self.scope = scope
        self.runs_dir = runs_dir or config.home / "policy-runs"
        self.progress = progress or (lambda event: None)
        self._ptrainer = policy_trainer
        self._itrainer = inner_trainer
        self.scorer = make_scorer(config.consolidation.scorer, self.base.tokenizer, config.agent.system_prompt)
        self._before: dict[str, float] = {}

    # -- parts built on first use ---------------------------------------------------------
    def _base_copy(self) -> Any:
        return self.base.load_base()

    @property
    def policy_trainer(self) -> LoraTrainer:
        if self._ptrainer is None:
            from seal_agent.training import LoraSettings, LoraTrainer

            pc = self.config.policy
            self._ptrainer = LoraTrainer(
                self._base_copy(), self.base.tokenizer, LoraSettings(r=pc.lora_r, alpha=pc.lora_alpha)
            )
        return self._ptrainer

    @property
    def inner(self) -> InnerLoop:
        if self._itrainer is None:
            from seal_agent.training import LoraSettings, LoraTrainer

            cc = self.config.consolidation
            self._itrainer = LoraTrainer(
                self._base_copy(), self.base.tokenizer, LoraSettings(r=cc.lora_r, alpha=cc.lora_alpha)
            )
        if getattr(self, "_inner", None) is None:
            self._inner = InnerLoop(self._itrainer, self.scorer, self.config.consolidation,
                                    system_prompt=self.config.agent.system_prompt)
        return self._inner

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
            log.append({"kind": "finished", "at": _now()})
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
        cur_state = self._state(current, log.folder)
        # 1. sample and reward every training context (skipping those already logged)
        groups: list[dict[str, Any]] = []
        for ep in train_eps:
            event = log.find("sample", round=r, context=ep.id)
            if event is None:
                samples = self._rollout(ep, cur_state, pc, _seed(pc.seed, "train", r, ep.id))
                event = {"kind": "sample", "round": r, "context": ep.id, "samples": samples,
                         "alone": self._alone(ep, log)}
                log.append(event)
                self._done += 1
                best = max((s["reward"] for s in samples if s["items"]), default=None)
                self._emit("sample", r, pc.rounds, context=ep.id, reward=best)
            groups.append(event)
        rewards = [s["reward"] for g in groups for s in g["samples"]]
        usable = [s for g in groups for s in g["samples"] if s["items"]]
        bests = [max(s["reward"] for s in g["samples"] if s["items"])
                 for g in groups if any(s["items"] for s in g["samples"])]
        stats = {
            "round": r, "contexts": len(groups), "samples": len(rewards), "usable_samples": len(usable),
            "mean_reward": statistics.fmean(rewards) if rewards else None,
            "best_of_k": statistics.fmean(bests) if bests else None,
            "positive": sum(1 for s in usable if s["reward"] > 0),
        }

        def close(reason: str, **extra: Any) -> tuple[RoundResult, dict[str, Any]]:
            nxt = extra.pop("_next", None) or current
            fields = {"examples": 0, "update_loss": None, "select_current": None,
                      "select_candidate": None, "promoted": False, "version": None, **stats, **extra}
            result = RoundResult(**fields, reason=reason)
            log.append({"kind": "round", "round": r, "result": result.model_dump(mode="json"),
                        "next": nxt})
            self._emit("round", r, pc.rounds, message=reason)
            return result, nxt

        # 2. update
        update = log.find("update", round=r)
        if update is None:
            if stats["positive"] == 0:
                self._done += 1 + 2 * len(select_eps)
                return close("no sample earned a positive reward: nothing to learn from, "
                             "nothing promoted")
            examples = self._examples(groups, pc)
            if not examples:
                self._done += 1 + 2 * len(select_eps)
                return close("no context had a usable sample to learn from; nothing promoted")
            update = self._update(r, pc, cur_state, examples, log.folder)
            log.append(update)
            self._done += 1
            self._emit("update", r, pc.rounds, message=f"{update['examples']} examples")
        cand_label = f"{run_id}:r{r}"
        cand_state = self.policy_trainer.load(log.folder / f"round-{r:02d}" / "candidate")

        # 3. select: the current and the updated policy on the same held-apart contexts
        means: dict[str, float] = {}
        usable_select: dict[str, int] = {}
        for which, label, state in (("current", current["label"], cur_state),
                                    ("candidate", cand_label, cand_state)):
            per_context = []
            for ep in select_eps:
                event = log.find("select", policy=label, context=ep.id)
                if event is None:
                    samples = self._rollout(ep, state, pc, _seed(pc.seed, "select", ep.id))
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
        extra = {"examples": update["examples"], "update_loss": tuple(update["loss"]),
                 "select_current": means["current"], "select_candidate": means["candidate"]}
        if means["candidate"] <= means["current"]:
            return close(f"held-apart mean reward {means['candidate']:+.4f} does not beat the "
                         f"current policy's {means['current']:+.4f}; nothing promoted", **extra)
        if usable_select["candidate"] < usable_select["current"]:
            # An empty self-edit earns the context-alone reward; where the current policy's
            # lines hurt, a policy that writes nothing usable would "win" (seen on dev).
            return close(f"held-apart mean reward {means['current']:+.4f} -> {means['candidate']:+.4f}, "
                         f"but the new policy wrote fewer usable self-edits "
                         f"({usable_select['candidate']} vs {usable_select['current']}); nothing promoted",
                         **extra)

        # 4. promote (idempotent: a kill after the commit must not promote twice)
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
                         "origin": episodes.origin, "settings": pc.model_dump(mode="json"),
                         **{k: v for k, v in stats.items() if k != "round"}, **extra},
            )
        nxt = {"label": cand_label, "version_id": version.id}
        return close(f"held-apart mean reward {means['current']:+.4f} -> {means['candidate']:+.4f}: "
                     f"promoted {version.name}", promoted=True, version=version.name, _next=nxt,
                     **extra)

    # -- pieces -----------------------------------------------------------------------------
    def _open_run(
        self, pc: PolicyConfig, episodes: EpisodeSet, start: Any, fresh: bool,
        reuse_finished: bool = False,
    ) -> tuple[str, RunLog, bool]:
        """An unfinished run with the same settings and episodes, or a new one."""
        key = {"settings": pc.model_dump(mode="json"), "episodes": episodes.digest,
               "scope": list(self.scope), "consolidation": self.config.consolidation.model_dump(mode="json")}
        fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        if not fresh:
            for folder in sorted(self.runs_dir.iterdir(), reverse=True):
                meta_path = folder / "run.json"
                if not meta_path.is_file():
                    continue
                meta = json.loads(meta_path.read_text())
                log = RunLog(folder)
                if meta.get("fingerprint") == fingerprint and (
                    reuse_finished or log.find("finished") is None
                ):
                    return folder.name, log, True
        run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + pc.method + "-" + fingerprint[:6]
        folder = self.runs_dir / run_id
        folder.mkdir()
        meta = {"fingerprint": fingerprint, "created": _now(), "key": key, "origin": episodes.origin,
                "start_label": start.id if start else "base",
                "start_version_id": start.id if start else None}
        tmp = folder / "run.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
        os.replace(tmp, folder / "run.json")
        return run_id, RunLog(folder), False

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

    def _interaction(self, ep: Episode) -> Any:
        from seal_agent.types import Interaction, InteractionKind, Message, Namespace

        return Interaction(
            id=f"ep_{_seed(ep.id):08x}", namespace=Namespace(user_id="policy-training"),
            kind=InteractionKind.DOCUMENT, messages=(Message(role="user", content=ep.source),),
            created_at=datetime.now(UTC),
        )

    def _held_out(self, ep: Episode, interaction: Any) -> list[Any]:
        from seal_agent.types import Probe

        now = datetime.now(UTC)
        return [Probe(id=f"prb_{i}", interaction_id=interaction.id, namespace=interaction.namespace,
                      question=q, answer=a, source="caller", created_at=now)
                for i, (q, a) in enumerate(ep.probes)]

    def sample(
        self, ep: Episode, state: dict[str, Any] | None, pc: PolicyConfig, seed: int,
        formats: Sequence[SelfEditFormat] | None = None,
    ) -> list[Candidate]:
        """``pc.k`` self-edits of ``ep`` from the policy whose weights are ``state``."""
        import torch

        from seal_agent.selfedit import SelfEditWriter

        trainer = self.policy_trainer
        trainer.reset(state, seed=seed)  # None: B = 0, exactly the base model
        policy_lm = TrainerLM(trainer, self.lm.name + "+policy", int(self.lm.context_length))
        writer = SelfEditWriter(policy_lm, passage_config(self.config.selfedit, ep.style), style=ep.style)
        interaction = self._interaction(ep)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return writer.candidates(
                interaction, k=pc.k, formats=list(formats or pc.formats), temperature=pc.temperature,
                held_out=self._held_out(ep, interaction),
            )

    def reward(self, ep: Episode, cand: Candidate, pc: PolicyConfig, seed: int) -> float | None:
        """The inner loop's reward of one candidate, averaged over ``pc.repeats`` runs.

        Each repeat seeds the temporary adapter's init and batch order
        (``seed``), so two policies compared on the same context and sample
        index meet the same inner-loop randomness.
        """
        import torch

        inner = self.inner
        base_cfg = self.config.consolidation
        values = []
        for rep in range(pc.repeats):
            s = _seed(seed, rep)
            inner.cfg = base_cfg.model_copy(update={"seed": s})
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(s)
                    res = inner.reward(cand, ep.sources, ep.probes, start=None,
                                       before=self._before_score(ep))
            finally:
                inner.cfg = base_cfg
            if res.reward is None:
                return None
            values.append(res.reward)
        return statistics.fmean(values)

    def _before_score(self, ep: Episode) -> float:
        if ep.id not in self._before:
            self._before[ep.id] = self.inner.score(ep.probes, None)
        return self._before[ep.id]

    def _alone(self, ep: Episode, log: RunLog | None = None) -> float:
        """The context-alone reward (no self-edit lines): what an empty sample earns."""
        if log is not None:
            for event in log.events:
                if event.get("context") == ep.id and event.get("alone") is not None:
                    return float(event["alone"])
        cached = getattr(self, "_alone_cache", {})
        if ep.id not in cached:
            import torch

            s = _seed(self.config.policy.seed, "alone", ep.id)
            self.inner.cfg = self.config.consolidation.model_copy(update={"seed": s})
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(s)
                    res = self.inner.run(list(ep.sources), ep.probes, start=None,
                                         before=self._before_score(ep))
            finally:
                self.inner.cfg = self.config.consolidation
            cached[ep.id] = float(res.reward or 0.0)
            self._alone_cache = cached
        return cached[ep.id]

    def _rollout(self, ep: Episode, state: dict[str, Any] | None, pc: PolicyConfig,
                 seed: int) -> list[dict[str, Any]]:
        """Sample k self-edits and reward each; JSON-ready records."""
        cands = self.sample(ep, state, pc, seed)
        out = []
        for j, cand in enumerate(cands):
            reward = self.reward(ep, cand, pc, _seed(seed, "inner", j)) if cand.items else None
            out.append({
                "format": cand.format.value, "prompt": cand.prompt, "completion": cand.completion,
                "items": list(cand.items), "dropped": cand.dropped,
                "reward": reward if reward is not None else self._alone(ep),
                "empty": reward is None,
            })
        return out

    def _examples(self, groups: list[dict[str, Any]], pc: PolicyConfig) -> list[TrainExample]:
        from seal_agent.training import TrainExample

        examples = []
        for g in groups:
            samples = g["samples"]
            if pc.method == "rest-em":
                usable = [s for s in samples if s["items"]]
                if not usable:
                    continue
                best = max(usable, key=lambda s: s["reward"])
                if pc.positive_only and best["reward"] <= 0:
                    continue
                fmt = SelfEditFormat(best["format"])
                examples.append(TrainExample(best["prompt"],
                                             completion_for_training(fmt, best["items"], best["completion"])))
            else:  # grpo: every sample, on the tokens it actually sampled
                advantages = group_advantages([s["reward"] for s in samples])
                if advantages is None:
                    continue
                for s, a in zip(samples, advantages, strict=True):
                    if abs(a) > 1e-6 and s["completion"].strip():
                        examples.append(TrainExample(s["prompt"], " " + s["completion"].strip(), a))
        return examples

    def _update(self, r: int, pc: PolicyConfig, state: dict[str, Any] | None,
                examples: list[TrainExample], folder: Path) -> dict[str, Any]:
        """Fine-tune the policy from ``state``; write the candidate adapter atomically."""
        from seal_agent.training import TrainSettings

        trainer = self.policy_trainer
        trainer.reset(state, seed=pc.seed)
        settings = TrainSettings(
            epochs=1 if pc.method == "grpo" else pc.epochs, lr=pc.lr, batch_tokens=pc.batch_tokens,
            max_seq_len=pc.max_seq_len, seed=_seed(pc.seed, "update", r) % (2**31),
        )
        try:
            stats = trainer.train(examples, settings)
        except ValueError as exc:
            raise ConfigError(f"policy update of round {r} has nothing to train on: {exc}") from exc
        round_dir = folder / f"round-{r:02d}"
        round_dir.mkdir(exist_ok=True)
        final = round_dir / "candidate"
        tmp = round_dir / ".candidate.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        trainer.save(tmp)
        for f in tmp.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        shutil.rmtree(final, ignore_errors=True)  # a candidate without its update event: redo
        os.rename(tmp, final)
        with contextlib.suppress(OSError):
            fd = os.open(round_dir, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        return {"kind": "update", "round": r, "examples": len(examples), "steps": stats.steps,
                "tokens": stats.tokens, "seconds": round(stats.seconds, 2),
                "loss": [stats.first_loss, stats.last_loss]}

    def _emit(self, stage: str, r: int, rounds: int, **fields: Any) -> None:
        self.progress(PolicyEvent(stage=stage, round=r, rounds=rounds, done=self._done,
                                  total=self._total, **fields))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
