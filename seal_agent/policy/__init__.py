"""Self-improvement: train the self-edit policy on the reward consolidation measures.

SEAL's outer loop. The self-edit writer is the base model plus a *policy*
LoRA adapter (kept apart from the memory adapters, on the same loaded base).
A round samples self-edits from the current policy for contexts with probe
questions, rewards each with the shared inner loop
(:mod:`seal_agent.innerloop`), and updates the policy: ReST-EM keeps the best
sample per context and fine-tunes on it (completion tokens only); GRPO
weights every sample by its group-relative advantage. A new policy is
promoted only if its mean reward on held-apart contexts beats the current
one. See docs/policy.md.
"""

from __future__ import annotations

from seal_agent.policy.store import DEPLOYMENT, PolicyStore, scope_of
from seal_agent.policy.writer import PolicyLM, policy_writer

__all__ = ["DEPLOYMENT", "PolicyLM", "PolicyStore", "policy_writer", "scope_of"]
