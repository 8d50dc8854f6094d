"""seal-agent: persistent agent memory that moves from the context window into the weights.

Importing this package is cheap (no torch, transformers or chromadb): the
heavy parts load when an agent first needs them.
"""

from seal_agent.agent import ChatResult, ChatStream, RememberResult, ReprocessReport, SealAgent
from seal_agent.buffer import Buffer
from seal_agent.config import (
    AgentConfig,
    BufferConfig,
    EmbedderConfig,
    ModelConfig,
    SealAgentConfig,
    SelfEditConfig,
    load_config,
)
from seal_agent.errors import (
    AdapterNotFoundError,
    BackendError,
    BufferStoreError,
    ConfigError,
    ConsolidationBusyError,
    ConsolidationError,
    CorruptAdapterError,
    CorruptHomeError,
    EmptyInputError,
    HomeError,
    InputError,
    InputTooLongError,
    InvalidNamespaceError,
    InvalidTextError,
    MemoryNotFoundError,
    ModelError,
    ModelLoadError,
    ModelNotFoundError,
    NamespaceError,
    NamespaceNotFoundError,
    SchemaVersionError,
    SealAgentError,
)
from seal_agent.journal import Journal
from seal_agent.models import register_embedder, register_language_model
from seal_agent.models.base import Embedder, GenerationParams, LanguageModel
from seal_agent.selfedit import Derivation, SelfEditWriter
from seal_agent.types import (
    DeriveStatus,
    Interaction,
    InteractionKind,
    Memory,
    MemoryStatus,
    Message,
    Namespace,
    Probe,
    SelfEdit,
    SelfEditFormat,
)

__version__ = "0.1.0"

__all__ = [
    "AdapterNotFoundError",
    "AgentConfig",
    "BackendError",
    "Buffer",
    "BufferConfig",
    "BufferStoreError",
    "ChatResult",
    "ChatStream",
    "ConfigError",
    "ConsolidationBusyError",
    "ConsolidationError",
    "CorruptAdapterError",
    "CorruptHomeError",
    "Derivation",
    "DeriveStatus",
    "Embedder",
    "EmbedderConfig",
    "EmptyInputError",
    "GenerationParams",
    "HomeError",
    "InputError",
    "InputTooLongError",
    "Interaction",
    "InteractionKind",
    "InvalidNamespaceError",
    "InvalidTextError",
    "Journal",
    "LanguageModel",
    "Memory",
    "MemoryNotFoundError",
    "MemoryStatus",
    "Message",
    "ModelConfig",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "Namespace",
    "NamespaceError",
    "NamespaceNotFoundError",
    "Probe",
    "RememberResult",
    "ReprocessReport",
    "SchemaVersionError",
    "SealAgent",
    "SealAgentConfig",
    "SealAgentError",
    "SelfEdit",
    "SelfEditConfig",
    "SelfEditFormat",
    "SelfEditWriter",
    "__version__",
    "load_config",
    "register_embedder",
    "register_language_model",
]
