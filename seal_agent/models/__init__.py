"""Model backends behind one registry, resolved lazily by dotted path.

Registering a name twice is refused, so a typo or a plug-in clash shows up at
once instead of silently replacing a backend.  Nothing heavy is imported until
a backend is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from seal_agent.errors import BackendError

if TYPE_CHECKING:
    from seal_agent.config import SealAgentConfig
    from seal_agent.models.base import Embedder, LanguageModel

__all__ = [
    "quiet_model_loading",
    "build_embedder",
    "build_language_model",
    "register_embedder",
    "register_language_model",
    "registered",
]

_LANGUAGE_MODELS: dict[str, str] = {}
_EMBEDDERS: dict[str, str] = {}


def _register(table: dict[str, str], kind: str, name: str, target: str) -> None:
    if ":" not in target:
        raise BackendError(f"{kind} backend {name!r}: target must be 'module:Class', got {target!r}")
    if name in table:
        raise BackendError(f"{kind} backend {name!r} is already registered ({table[name]})")
    table[name] = target


def quiet_model_loading() -> None:
    """Silence transformers' and sentence-transformers' progress bars and warnings.

    For command-line tools and demos; a library never changes global logging
    on its own, so the SDK does not call this for you.
    """
    import logging
    import os
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF conversion bar
    for name in ("transformers", "sentence_transformers", "chromadb", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # transformers not installed: nothing to silence
        pass


def register_language_model(name: str, target: str) -> None:
    """Register a language-model backend class under ``name`` ('module:Class')."""
    _register(_LANGUAGE_MODELS, "language-model", name, target)


def register_embedder(name: str, target: str) -> None:
    _register(_EMBEDDERS, "embedder", name, target)


def registered() -> dict[str, list[str]]:
    return {"language_models": sorted(_LANGUAGE_MODELS), "embedders": sorted(_EMBEDDERS)}


def _resolve(table: dict[str, str], kind: str, name: str) -> Any:
    try:
        target = table[name]
    except KeyError:
        raise BackendError(
            f"unknown {kind} backend {name!r}; registered: {', '.join(sorted(table))}"
        ) from None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def build_language_model(config: SealAgentConfig) -> LanguageModel:
    cls = _resolve(_LANGUAGE_MODELS, "language-model", config.model.backend)
    return cls.from_config(config)


def build_embedder(config: SealAgentConfig) -> Embedder:
    cls = _resolve(_EMBEDDERS, "embedder", config.embedder.backend)
    return cls.from_config(config)


register_language_model("transformers", "seal_agent.models.transformers_lm:TransformersLM")
register_embedder("sentence-transformers", "seal_agent.models.embedder:SentenceTransformerEmbedder")
