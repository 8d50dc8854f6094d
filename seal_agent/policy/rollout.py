"""One policy's self-edits of one context, and the inner loop's reward of each.

:class:`PolicySampler` holds the two LoRA-wrapped copies of the base that a
policy run needs: the policy (which samples) and the inner loop's scratch
adapter (which trains on a sample's lines and scores the probes). Every
draw is seeded from the episode and the round, so two policies compared on
the same context meet the same randomness: the comparison is paired.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from seal_agent.innerloop import InnerLoop
from seal_agent.policy.episodes import Episode
from seal_agent.policy.writer import TrainerLM, passage_config
from seal_agent.types import SelfEditFormat

if TYPE_CHECKING:
    from seal_agent.config import PolicyConfig, SealAgentConfig
    from seal_agent.policy.runlog import RunLog
    from seal_agent.selfedit import Candidate
    from seal_agent.training import LoraTrainer

__all__ = ["PolicySampler", "derive_seed"]


def derive_seed(*parts: Any) -> int:
    """A 32-bit seed that depends on nothing but ``parts`` (stable across runs and processes)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


class PolicySampler:
    """Samples self-edits from a policy and rewards them with the shared inner loop.

    ``policy_trainer`` holds the policy (samples and is updated);
    ``inner_trainer`` is the inner loop's scratch adapter (the memory side).
    Both are built from ``lm``'s trainable base when not given (the local model, or
    ``model.trainer`` for a remote one; ``BackendCapabilityError`` without either).
    """

    def __init__(
        self,
        config: SealAgentConfig,
        lm: Any,
        *,
        policy_trainer: LoraTrainer | None = None,
        inner_trainer: LoraTrainer | None = None,
    ) -> None:
        from seal_agent.models import trainable_base
        from seal_agent.reward import make_scorer

        self.config = config
        self.lm = lm
        self.base = trainable_base(lm, "train a self-edit policy")
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

    # -- sampling and rewarding --------------------------------------------------------------
    def _interaction(self, ep: Episode) -> Any:
        from seal_agent.types import Interaction, InteractionKind, Message, Namespace

        return Interaction(
            id=f"ep_{derive_seed(ep.id):08x}", namespace=Namespace(user_id="policy-training"),
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
            s = derive_seed(seed, rep)
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
        cached: dict[str, float] = getattr(self, "_alone_cache", {})
        if ep.id not in cached:
            import torch

            s = derive_seed(self.config.policy.seed, "alone", ep.id)
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
            reward = self.reward(ep, cand, pc, derive_seed(seed, "inner", j)) if cand.items else None
            out.append({
                "format": cand.format.value, "prompt": cand.prompt, "completion": cand.completion,
                "items": list(cand.items), "dropped": cand.dropped,
                "reward": reward if reward is not None else self._alone(ep),
                "empty": reward is None,
            })
        return out
