"""The public surface, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

from seal_agent import InputError, NamespaceError, SealAgentError

import langchain_seal_agent

EXPECTED = {
    "ChatSealAgent",
    "MissingNamespaceError",
    "SealAgentCallbackHandler",
    "SealAgentChatMessageHistory",
    "SealAgentRetriever",
    "ToolCallingNotSupportedError",
    "UnsupportedMessageError",
    "__version__",
    "create_memory_tools",
}


def test_all_is_pinned():
    assert set(langchain_seal_agent.__all__) == EXPECTED


def test_errors_extend_seal_agents_tree():
    from langchain_seal_agent import (
        MissingNamespaceError,
        ToolCallingNotSupportedError,
        UnsupportedMessageError,
    )

    assert issubclass(UnsupportedMessageError, InputError)
    assert issubclass(MissingNamespaceError, NamespaceError)
    assert issubclass(ToolCallingNotSupportedError, SealAgentError)
    assert issubclass(ToolCallingNotSupportedError, NotImplementedError)


def test_importing_the_integration_loads_no_model_library():
    code = (
        "import sys, langchain_seal_agent\n"
        "heavy = [m for m in ('torch', 'transformers', 'chromadb') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
