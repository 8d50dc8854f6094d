"""Every failure of a request as an OpenAI-style error body and an HTTP status.

The SDK's typed errors map to statuses here, in one table; anything else is a
500 whose body says only that the server failed (the traceback goes to the
server's log, never to the client).
"""

from __future__ import annotations

from typing import Any

from seal_agent.errors import (
    AdapterNotFoundError,
    ConfigError,
    ConsolidationBusyError,
    InputError,
    InputTooLongError,
    MemoryNotFoundError,
    NamespaceError,
    NamespaceNotFoundError,
    SealAgentError,
)
from seal_agent.serve.schemas import error_body

__all__ = ["ApiError", "describe"]


class ApiError(SealAgentError):
    """A request the server refuses, with the status and OpenAI error fields to send."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.param = param
        self.code = code


# Most specific first: the first class that matches decides.
_STATUS: tuple[tuple[type[SealAgentError], int, str, str | None], ...] = (
    (InputTooLongError, 400, "invalid_request_error", "context_length_exceeded"),
    (NamespaceNotFoundError, 404, "not_found_error", None),
    (MemoryNotFoundError, 404, "not_found_error", None),
    (AdapterNotFoundError, 404, "not_found_error", None),
    (ConsolidationBusyError, 409, "conflict_error", "consolidation_busy"),
    (InputError, 400, "invalid_request_error", None),
    (NamespaceError, 400, "invalid_request_error", None),
    (ConfigError, 400, "invalid_request_error", None),
)


def describe(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """The status and body to answer ``exc`` with."""
    if isinstance(exc, ApiError):
        return exc.status, error_body(str(exc), exc.type, param=exc.param, code=exc.code)
    for cls, status, type_, code in _STATUS:
        if isinstance(exc, cls):
            return status, error_body(f"{type(exc).__name__}: {exc}", type_, code=code)
    if isinstance(exc, SealAgentError):  # the server's own trouble: model, store, home
        return 500, error_body(f"{type(exc).__name__}: {exc}", "server_error")
    return 500, error_body("the server failed on this request (see its log)", "server_error")
