"""The exception tree of seal-agent.

Every error the SDK raises on purpose derives from :class:`SealAgentError`,
and, where a builtin fits, from that builtin too, so callers can catch either::

    SealAgentError
    ├── ConfigError (ValueError)            settings that are invalid or exclude each other
    ├── InputError (ValueError)             bad text handed to the SDK
    │   ├── EmptyInputError                 empty or whitespace-only message
    │   ├── InvalidTextError                text that is not valid UTF-8
    │   └── InputTooLongError               longer than the model's context window
    ├── NamespaceError (ValueError)
    │   ├── InvalidNamespaceError           an id with characters we refuse
    │   └── NamespaceNotFoundError (LookupError)
    ├── MemoryNotFoundError (LookupError)   a memory or interaction id that is not there
    ├── HomeError (OSError)                 the memory home directory
    │   ├── CorruptHomeError                journal unreadable, not a directory, ...
    │   └── SchemaVersionError              journal written by a newer seal-agent
    ├── ModelError (RuntimeError)
    │   ├── ModelNotFoundError (FileNotFoundError)
    │   └── ModelLoadError                  found, but transformers could not load it
    ├── BackendError (LookupError)          unknown or duplicate backend name
    ├── BufferStoreError (RuntimeError)     the vector store failed
    └── ConsolidationError (RuntimeError)
        ├── ConsolidationBusyError          another process consolidates this namespace
        ├── AdapterNotFoundError (LookupError)
        └── CorruptAdapterError             files missing or checksums that do not match

Foreign exceptions (sqlite3, chromadb, transformers) are mapped at the edge
with ``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations

__all__ = [
    "AdapterNotFoundError",
    "BackendError",
    "BufferStoreError",
    "ConfigError",
    "ConsolidationBusyError",
    "ConsolidationError",
    "CorruptAdapterError",
    "CorruptHomeError",
    "EmptyInputError",
    "HomeError",
    "InputError",
    "InputTooLongError",
    "InvalidNamespaceError",
    "InvalidTextError",
    "MemoryNotFoundError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NamespaceError",
    "NamespaceNotFoundError",
    "SchemaVersionError",
    "SealAgentError",
]


class SealAgentError(Exception):
    """Base class of every error seal-agent raises on purpose."""


class ConfigError(SealAgentError, ValueError):
    """A setting is invalid, or two settings exclude each other."""


class InputError(SealAgentError, ValueError):
    """Text handed to the SDK cannot be used as it is."""


class EmptyInputError(InputError):
    """The message is empty or only white space."""


class InvalidTextError(InputError):
    """The text is not valid UTF-8 (for example lone surrogates from a bad decode)."""


class InputTooLongError(InputError):
    """The message does not fit the model's context window."""


class NamespaceError(SealAgentError, ValueError):
    """Something is wrong with a user / agent / session id."""


class InvalidNamespaceError(NamespaceError):
    """An id is empty, too long, or holds characters we refuse."""


class NamespaceNotFoundError(NamespaceError, LookupError):
    """The namespace has no interactions in this memory home."""


class MemoryNotFoundError(SealAgentError, LookupError):
    """A memory (self-edit) or interaction id that this memory home does not hold."""


class HomeError(SealAgentError, OSError):
    """The memory home directory cannot be used."""


class CorruptHomeError(HomeError):
    """The memory home exists but its journal or layout is unreadable."""


class SchemaVersionError(HomeError):
    """The journal was written by a newer seal-agent than this one."""


class ModelError(SealAgentError, RuntimeError):
    """The language model or embedder could not be made ready."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model path or packaged model that does not exist."""


class ModelLoadError(ModelError):
    """The model was found but could not be loaded."""


class BackendError(SealAgentError, LookupError):
    """An unknown backend name, or a second registration under one name."""


class BufferStoreError(SealAgentError, RuntimeError):
    """The vector store (Chroma) failed."""


class ConsolidationError(SealAgentError, RuntimeError):
    """Consolidation could not run or could not finish."""


class ConsolidationBusyError(ConsolidationError):
    """Another process holds this namespace's consolidation lock."""


class AdapterNotFoundError(ConsolidationError, LookupError):
    """No adapter version with that id or number."""


class CorruptAdapterError(ConsolidationError):
    """An adapter version whose files are missing or fail their checksums."""
