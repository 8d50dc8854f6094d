"""The two model seams: a language model and an embedder.

Kept small on purpose: an OpenAI-compatible HTTP backend needs only to send
messages to ``/v1/chat/completions`` and prompts to ``/v1/completions`` to be
a :class:`LanguageModel`; the agent never sees torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from seal_agent.types import Message

__all__ = ["AdapterRef", "Embedder", "GenerationParams", "LanguageModel", "GREEDY"]


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
class Embedder(Protocol):
    name: str

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-normalised embeddings, one per text."""
        ...
