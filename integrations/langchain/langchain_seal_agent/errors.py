"""Errors of the LangChain integration, grafted onto seal-agent's tree.

Each one derives from the seal-agent error it refines, so ``except
SealAgentError`` (or the builtin it resembles) still catches it::

    SealAgentError
    ├── InputError (ValueError)
    │   └── UnsupportedMessageError         a message type or content block we cannot use
    ├── NamespaceError (ValueError)
    │   └── MissingNamespaceError           no user_id: not set, not in the call or its config
    └── ToolCallingNotSupportedError (NotImplementedError)
"""

from __future__ import annotations

from seal_agent.errors import InputError, NamespaceError, SealAgentError

__all__ = ["MissingNamespaceError", "ToolCallingNotSupportedError", "UnsupportedMessageError"]


class UnsupportedMessageError(InputError):
    """A message type (tool, function, ...) or content block (image, audio, ...) we cannot use."""


class MissingNamespaceError(NamespaceError):
    """No ``user_id`` was given: not on the object, not per call, not in ``configurable``."""


class ToolCallingNotSupportedError(SealAgentError, NotImplementedError):
    """The local model cannot call tools (the default 135M model was not trained to)."""
