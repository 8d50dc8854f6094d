"""The public surface: one ``__init__`` with an explicit ``__all__`` that this test pins.

Adding or removing a public name is a deliberate change: update EXPECTED with it.
"""

from __future__ import annotations

import importlib.metadata

import pytest

import seal_agent

EXPECTED = {
    # consolidation errors
    "AdapterNotFoundError",
    "ConsolidationBusyError",
    "ConsolidationError",
    "CorruptAdapterError",
    # agent and its results
    "SealAgent",
    "ChatResult",
    "ChatStream",
    "RememberResult",
    "ReprocessReport",
    # stages
    "Buffer",
    "Journal",
    "Derivation",
    "SelfEditWriter",
    # configuration
    "AgentConfig",
    "BufferConfig",
    "EmbedderConfig",
    "ModelConfig",
    "SealAgentConfig",
    "SelfEditConfig",
    "load_config",
    # backends
    "Embedder",
    "GenerationParams",
    "LanguageModel",
    "TrainableBase",
    "register_embedder",
    "register_language_model",
    # types
    "DeriveStatus",
    "Interaction",
    "InteractionKind",
    "Memory",
    "MemoryStatus",
    "Message",
    "Namespace",
    "Probe",
    "SelfEdit",
    "SelfEditFormat",
    # errors
    "BackendCapabilityError",
    "BackendError",
    "BackendResponseError",
    "BackendUnavailableError",
    "BufferStoreError",
    "ConfigError",
    "CorruptHomeError",
    "EmptyInputError",
    "HomeError",
    "InputError",
    "InputTooLongError",
    "InvalidNamespaceError",
    "InvalidTextError",
    "MemoryNotFoundError",
    "MissingDependencyError",
    "JournalUnavailableError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NamespaceError",
    "NamespaceNotFoundError",
    "SchemaVersionError",
    "SealAgentError",
    "UnknownBackendError",
    # metadata
    "__version__",
}


def test_all_is_pinned() -> None:
    assert set(seal_agent.__all__) == EXPECTED


def test_all_has_no_duplicates_and_is_sorted() -> None:
    assert len(seal_agent.__all__) == len(set(seal_agent.__all__))
    assert list(seal_agent.__all__) == sorted(seal_agent.__all__)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_public_name_resolves(name: str) -> None:
    obj = getattr(seal_agent, name)
    if name == "__version__":
        assert obj == importlib.metadata.version("seal-agent")
    else:  # each is the package's own class or function, not a re-export of something else
        assert getattr(obj, "__module__", "").startswith("seal_agent."), (name, obj)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from seal_agent import *", namespace)
    namespace.pop("__builtins__", None)
    assert set(namespace) == set(seal_agent.__all__)


def test_every_error_is_public() -> None:
    import seal_agent.errors as errors

    for name in errors.__all__:
        assert name in seal_agent.__all__
        assert getattr(seal_agent, name) is getattr(errors, name)


def test_public_objects_are_the_defining_modules_objects() -> None:
    from seal_agent import config, journal, types

    assert seal_agent.load_config is config.load_config
    assert seal_agent.Journal is journal.Journal
    assert seal_agent.Namespace is types.Namespace


def test_version_matches_the_installed_distribution() -> None:
    assert seal_agent.__version__ == importlib.metadata.version("seal-agent")
