"""Sampling self-edits through a policy adapter, on the one loaded base model.

The memory adapters (what the user taught) and the policy adapters (how to
write self-edits) are LoRA adapters on the same loaded base: PEFT switches
between them in place, nothing is reloaded. :class:`PolicyLM` is the seam: a
language model whose raw completions (the self-edit writer's only call) run
with the policy adapter active, while chat keeps whatever adapter its caller
passes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from seal_agent.models.base import GREEDY, AdapterRef, GenerationParams
from seal_agent.policy.store import PolicyStore, scope_of

if TYPE_CHECKING:
    from seal_agent.config import SealAgentConfig, SelfEditConfig
    from seal_agent.journal import Journal
    from seal_agent.selfedit import SelfEditWriter
    from seal_agent.training import LoraTrainer
    from seal_agent.types import Message

__all__ = ["PASSAGE_SOURCE_CHARS", "PolicyLM", "TrainerLM", "passage_config", "policy_writer"]

# A SQuAD passage runs to ~1,500 characters (a few to 3,000): one chunk, one self-edit.
PASSAGE_SOURCE_CHARS = 3000


class PolicyLM:
    """A language model whose completions run through one policy adapter."""

    supports_adapters = True

    def __init__(self, lm: Any, adapter: AdapterRef, label: str) -> None:
        self.lm = lm
        self.adapter = adapter
        self.name = f"{lm.name}+policy:{label}"  # recorded as the author of what it writes
        self.tokenizer = lm.tokenizer

    @property
    def context_length(self) -> int:
        return int(self.lm.context_length)

    def count_tokens(self, text: str) -> int:
        return int(self.lm.count_tokens(text))

    def count_chat_tokens(self, messages: Sequence[Message]) -> int:
        return int(self.lm.count_chat_tokens(messages))

    def format_chat(self, messages: Sequence[Message]) -> str:
        return str(self.lm.format_chat(messages))

    def chat(
        self, messages: Sequence[Message], params: GenerationParams = GREEDY,
        adapter: AdapterRef | None = None,
    ) -> str:
        return str(self.lm.chat(messages, params, adapter))

    def complete(
        self, prompts: Sequence[str], params: GenerationParams = GREEDY,
        adapter: AdapterRef | None = None,
    ) -> list[str]:
        """Self-edit prompts: decoded with the policy adapter (an explicit ``adapter`` wins)."""
        return list(self.lm.complete(prompts, params, adapter or self.adapter))


class TrainerLM:
    """The policy being trained, as a language model: decodes with the trainer's own adapter.

    During training the policy lives in a :class:`LoraTrainer`'s scratch
    adapter (its state changes every round), so sampling decodes with that
    model directly instead of saving and loading a version per round.
    """

    supports_adapters = False

    def __init__(self, trainer: LoraTrainer, name: str, context_length: int) -> None:
        self.trainer = trainer
        self.tokenizer = trainer.tokenizer
        self.name = name
        self._context_length = context_length
        self._rng_lock = threading.Lock()

    @property
    def context_length(self) -> int:
        return self._context_length

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_chat_tokens(self, messages: Sequence[Message]) -> int:
        raise NotImplementedError("the policy under training only writes self-edits")

    def format_chat(self, messages: Sequence[Message]) -> str:
        raise NotImplementedError("the policy under training only writes self-edits")

    def chat(self, messages: Sequence[Message], params: GenerationParams = GREEDY,
             adapter: AdapterRef | None = None) -> str:
        raise NotImplementedError("the policy under training only writes self-edits")

    def complete(
        self, prompts: Sequence[str], params: GenerationParams = GREEDY,
        adapter: AdapterRef | None = None,
    ) -> list[str]:
        from seal_agent.models.transformers_lm import generate

        return generate(
            self.trainer.model, self.tokenizer, list(prompts), params, self._context_length,
            self._rng_lock,
        )


def passage_config(selfedit: SelfEditConfig, style: str) -> SelfEditConfig:
    """Passages are written about whole: one chunk of at least PASSAGE_SOURCE_CHARS."""
    if style != "passage" or selfedit.max_source_chars >= PASSAGE_SOURCE_CHARS:
        return selfedit
    return selfedit.model_copy(update={"max_source_chars": PASSAGE_SOURCE_CHARS})


def policy_writer(
    lm: Any,
    config: SealAgentConfig,
    version: int | str | None,
    *,
    style: Literal["user", "passage"] = "passage",
    user_id: str | None = None,
    agent_id: str | None = None,
    journal: Journal | None = None,
) -> SelfEditWriter:
    """A self-edit writer that samples through a trained policy (``seal+policy``).

    ``version``: a number (``3``, ``"v0003"``) or an id of the deployment's
    policies (or the namespace's, with ``user_id``/``agent_id``); None: the
    active one, falling back past a corrupt version to the newest one that
    verifies (logged). Raises :class:`~seal_agent.errors.AdapterNotFoundError`
    when there is no such policy and
    :class:`~seal_agent.errors.CorruptAdapterError` when the version asked
    for fails its checksums. The base model stays loaded: the policy adapter
    is switched in for self-edit prompts only.
    """
    import logging

    from seal_agent.adapters import AdapterStore
    from seal_agent.journal import Journal
    from seal_agent.selfedit import SelfEditWriter

    if not getattr(lm, "supports_adapters", False):
        from seal_agent.errors import BackendCapabilityError

        raise BackendCapabilityError(
            f"model {getattr(lm, 'name', lm)!r} cannot decode through a LoRA adapter, so it cannot "
            "write self-edits with a trained policy: use model.backend = 'local'",
            backend=str(getattr(lm, "backend", type(lm).__name__)),
            capability="decode with a policy adapter",
        )
    own = journal is None
    db = journal or Journal.from_config(config)
    try:
        store = PolicyStore(AdapterStore(config.adapters_dir, db))
        found, warnings = store.resolve(version, scope_of(user_id, agent_id))
    finally:
        if own:
            db.close()
    for warning in warnings:
        logging.getLogger("seal_agent.policy").warning("%s", warning)
    policy_lm = PolicyLM(lm, AdapterRef(key=found.id, path=str(found.path)), found.name)
    return SelfEditWriter(policy_lm, passage_config(config.selfedit, style), style=style)
