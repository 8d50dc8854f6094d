"""Sentence embeddings for the buffer, computed by us (never by Chroma's own
default embedder, which downloads a model at run time)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from seal_agent.errors import ModelLoadError
from seal_agent.models.packaged import resolve_embedder_path

if TYPE_CHECKING:
    from seal_agent.config import SealAgentConfig

__all__ = ["SentenceTransformerEmbedder"]


class SentenceTransformerEmbedder:
    def __init__(self, name: str, path: str, *, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.batch_size = batch_size
        try:
            self._model = SentenceTransformer(path, device="cpu")
        except OSError as exc:
            raise ModelLoadError(f"could not load embedder {name!r} from {path}: {exc}") from exc
        dim = self._model.get_embedding_dimension() if hasattr(
            self._model, "get_embedding_dimension"
        ) else self._model.get_sentence_embedding_dimension()
        self._dimension = int(dim or 0)

    @classmethod
    def from_config(cls, config: SealAgentConfig) -> SentenceTransformerEmbedder:
        path = resolve_embedder_path(config.embedder.name)
        return cls(config.embedder.name, path, batch_size=config.embedder.batch_size)

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [v.tolist() for v in vectors]
