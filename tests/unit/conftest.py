"""Unit tests run hermetically: no SEAL_AGENT_* variable from the caller's shell."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_seal_agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("SEAL_AGENT_"):
            monkeypatch.delenv(key)
