"""Model backends behind one registry, resolved lazily by dotted path.

Registering a name twice is refused, so a typo or a plug-in clash shows up at
once instead of silently replacing a backend.  Nothing heavy is imported until
a backend is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from seal_agent.errors import BackendCapabilityError, BackendError, UnknownBackendError

if TYPE_CHECKING:
    from seal_agent.config import SealAgentConfig
    from seal_agent.models.base import Embedder, LanguageModel, TrainableBase

__all__ = [
    "quiet_model_loading",
    "build_embedder",
    "build_language_model",
    "register_embedder",
    "register_language_model",
    "registered",
    "resolve_device",
    "resolve_dtype",
    "trainable_base",
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

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
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
        raise UnknownBackendError(
            f"unknown {kind} backend {name!r}; registered: {', '.join(sorted(table))}"
        ) from None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def build_language_model(config: SealAgentConfig) -> LanguageModel:
    cls = _resolve(_LANGUAGE_MODELS, "language-model", config.model.backend)
    model: LanguageModel = cls.from_config(config)  # a registered class: checked by its tests
    return model


def build_embedder(config: SealAgentConfig) -> Embedder:
    cls = _resolve(_EMBEDDERS, "embedder", config.embedder.backend)
    embedder: Embedder = cls.from_config(config)
    return embedder


def trainable_base(lm: Any, purpose: str = "train adapters") -> TrainableBase:
    """The local trainable copy of ``lm``'s base weights, for ``purpose``.

    The local backend is its own base. A remote backend has one when
    ``model.trainer`` is set (its ``trainer`` attribute); otherwise this
    raises :class:`BackendCapabilityError` naming that setting, so a missing
    capability never surfaces as an ``AttributeError`` deep in training code.
    """
    from seal_agent.models.base import TrainableBase

    if isinstance(lm, TrainableBase):
        return lm
    base = getattr(lm, "trainer", None)
    if isinstance(base, TrainableBase):
        return base
    backend = str(getattr(lm, "backend", type(lm).__name__))
    raise BackendCapabilityError(
        f"cannot {purpose}: the language model {getattr(lm, 'name', lm)!r} (backend {backend!r}) "
        "has no local weights to train. Set model.trainer to the same base weights the server "
        "serves (a packaged alias, a Hugging Face id or a local path), or use model.backend = 'local'",
        backend=backend,
        capability=purpose,
    )


def resolve_device(device: str) -> str:
    """``auto`` is cuda when torch sees a GPU, else cpu; an explicit choice is checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from seal_agent.errors import ConfigError

        raise ConfigError("model.device is 'cuda' but torch sees no CUDA GPU (set 'auto' or 'cpu')")
    if device == "mps" and not torch.backends.mps.is_available():
        from seal_agent.errors import ConfigError

        raise ConfigError("model.device is 'mps' but torch sees no Apple GPU (set 'auto' or 'cpu')")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto``: bfloat16 on a GPU, float32 on CPU (faster there for batch-1 decoding)."""
    if dtype != "auto":
        return dtype
    return "float32" if device == "cpu" else "bfloat16"


# "local" is the local transformers backend; "transformers" is its older name, kept so
# that existing config files still load.
register_language_model("local", "seal_agent.models.transformers_lm:TransformersLM")
register_language_model("transformers", "seal_agent.models.transformers_lm:TransformersLM")
register_language_model("openai", "seal_agent.models.remote:RemoteLM")
register_embedder("sentence-transformers", "seal_agent.models.embedder:SentenceTransformerEmbedder")
