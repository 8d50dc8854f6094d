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
    │   ├── SchemaVersionError              journal written by a newer seal-agent
    │   └── JournalUnavailableError (ConnectionError)  the journal's database server did not answer
    ├── MissingDependencyError (ImportError)  an optional extra is needed; the message says which
    ├── ModelError (RuntimeError)
    │   ├── ModelNotFoundError (FileNotFoundError)
    │   └── ModelLoadError                  found, but transformers could not load it
    ├── BackendError                        a model backend cannot be used as asked
    │   ├── UnknownBackendError (LookupError)   a backend name nobody registered
    │   ├── BackendCapabilityError          the backend cannot do this (train, score, format);
    │   │                                   the message names the setting that enables it
    │   ├── BackendUnavailableError (ConnectionError)  a server that did not answer, after retries
    │   └── BackendResponseError            a server that answered with an error or a bad body
    ├── BufferStoreError (RuntimeError)     the vector store failed
    └── ConsolidationError (RuntimeError)
        ├── ConsolidationBusyError          another process consolidates this namespace
        ├── AdapterNotFoundError (LookupError)
        └── CorruptAdapterError             files missing or checksums that do not match

Foreign exceptions (sqlite3, psycopg, chromadb, transformers, httpx) are mapped at the edge
with ``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations

__all__ = [
    "AdapterNotFoundError",
    "BackendCapabilityError",
    "BackendError",
    "BackendResponseError",
    "BackendUnavailableError",
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
    "JournalUnavailableError",
    "MemoryNotFoundError",
    "MissingDependencyError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NamespaceError",
    "NamespaceNotFoundError",
    "SchemaVersionError",
    "SealAgentError",
    "UnknownBackendError",
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


class JournalUnavailableError(HomeError, ConnectionError):
    """The journal's database server (``journal.url``) could not be reached; the host is named."""


class MissingDependencyError(SealAgentError, ImportError):
    """A setting needs an optional dependency that is not installed; the message has the pip line."""


class ModelError(SealAgentError, RuntimeError):
    """The language model or embedder could not be made ready."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model path or packaged model that does not exist."""


class ModelLoadError(ModelError):
    """The model was found but could not be loaded."""


class BackendError(SealAgentError):
    """A model backend cannot be used as asked (a bad registration, a missing
    capability, a server that failed)."""


class UnknownBackendError(BackendError, LookupError):
    """A backend name that nobody registered."""


class BackendCapabilityError(BackendError):
    """The configured backend cannot do this; the message says what to configure.

    A remote backend generates text but holds no weights, so training adapters
    (consolidation, policy training, the inner loop) needs ``model.trainer``.
    """

    def __init__(self, message: str, *, backend: str = "", capability: str = "") -> None:
        super().__init__(message)
        self.backend = backend
        self.capability = capability


class BackendUnavailableError(BackendError, ConnectionError):
    """The server could not be reached (refused, timed out) after the configured retries."""


class BackendResponseError(BackendError):
    """The server answered with an error status, or with a body that is not what the API says.

    ``status_code`` is the HTTP status (None for an unreadable body or a streamed error).
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


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
