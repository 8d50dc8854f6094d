"""The model seams, split by what a backend can do.

* :class:`LanguageModel`: generate (chat, raw completion) and, optionally,
  stream. Every backend can: an OpenAI-compatible server needs only
  ``/v1/chat/completions`` and ``/v1/completions``; the agent never sees torch.
* :class:`TrainableBase`: a local copy of the base weights, its tokenizer and
  a device. Training adapters (consolidation, the inner loop, policy
  training, eval) and scoring log-likelihood run on it. The local backend is
  one; a remote backend has one only when ``model.trainer`` names the same
  base weights. :func:`seal_agent.models.trainable_base` finds it or raises
  :class:`~seal_agent.errors.BackendCapabilityError`.
* :class:`Embedder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from seal_agent.text import normalize
from seal_agent.types import Message

__all__ = [
    "AdapterRef",
    "Embedder",
    "GenerationParams",
    "LanguageModel",
    "GREEDY",
    "TrainableBase",
    "cut_at_stops",
]


class AdapterRef(BaseModel):
    """A LoRA adapter to decode with: a stable key (the version id) and its folder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    path: str


class GenerationParams(BaseModel):
    """How to decode. ``temperature == 0`` means greedy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_new_tokens: int = Field(96, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: tuple[str, ...] = ()
    stop_on_repeated_line: bool = Field(
        False, description="End a sample once it repeats an earlier line (small models loop)."
    )
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


GREEDY = GenerationParams()


@runtime_checkable
class LanguageModel(Protocol):
    """What the agent and the self-edit writer need from a language model."""

    name: str
    # Backends that can decode through a LoRA adapter (memory in weights) say
    # so; the agent passes ``adapter=`` only to those.
    supports_adapters: bool

    @property
    def context_length(self) -> int:
        """Tokens the model can attend to (prompt + answer)."""
        ...

    def count_chat_tokens(self, messages: Sequence[Message]) -> int:
        """Prompt tokens these messages take once formatted for the model."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def format_chat(self, messages: Sequence[Message]) -> str:
        """The prompt text these messages become under the model's chat template."""
        ...

    def chat(
        self,
        messages: Sequence[Message],
        params: GenerationParams = GREEDY,
        adapter: AdapterRef | None = None,
    ) -> str:
        """Answer a conversation formatted by the model's own chat template."""
        ...

    def complete(
        self,
        prompts: Sequence[str],
        params: GenerationParams = GREEDY,
        adapter: AdapterRef | None = None,
    ) -> list[str]:
        """Continue raw prompts (few-shot completion), batched where the backend can."""
        ...


@runtime_checkable
class TrainableBase(Protocol):
    """A local, trainable copy of the base model (capability: train adapters, score).

    LoRA adapters only fit the weights they were trained on, so this must be
    the same base that generates (for a remote backend: the served weights).
    """

    name: str
    source: str  # the folder the weights load from (recorded in caches and manifests)
    tokenizer: Any  # a transformers tokenizer with the model's chat template

    @property
    def device(self) -> str:
        """torch device type the base trains on: ``cpu``, ``cuda`` or ``mps``."""
        ...

    def load_base(self) -> Any:
        """A fresh fp32 copy of the base (a transformers causal LM) on :attr:`device`,
        for a trainer to wrap with LoRA; the copy that generates is left alone."""
        ...


def cut_at_stops(text: str, stops: Sequence[str], repeated_line: bool) -> str:
    """Apply the stop rules to a finished text (decoding may only have stopped early)."""
    for stop in stops:
        idx = text.find(stop)
        if idx >= 0:
            text = text[:idx]
    if repeated_line:
        seen: set[str] = set()
        kept = []
        for line in text.split("\n"):
            key = normalize(line.lstrip("-*• "))
            if key and key in seen:
                break
            seen.add(key)
            kept.append(line)
        text = "\n".join(kept)
    return text.strip()


@runtime_checkable
class Embedder(Protocol):
    name: str

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-normalised embeddings, one per text."""
        ...
