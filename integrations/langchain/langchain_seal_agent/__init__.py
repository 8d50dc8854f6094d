"""LangChain integration of seal-agent: memory that moves into a local model's weights.

- :class:`ChatSealAgent`: the local model with the namespace's adapter and buffer retrieval.
- :class:`SealAgentRetriever`: the namespace's memories as Documents.
- :class:`SealAgentChatMessageHistory`: a session's turns in the seal-agent journal.
- :class:`SealAgentCallbackHandler`: any chat model's conversations, logged as memory.
- :func:`create_memory_tools`: search / remember / forget tools for tool-calling agents.
"""

from langchain_seal_agent.callbacks import SealAgentCallbackHandler
from langchain_seal_agent.chat_message_histories import SealAgentChatMessageHistory
from langchain_seal_agent.chat_models import ChatSealAgent
from langchain_seal_agent.errors import (
    MissingNamespaceError,
    ToolCallingNotSupportedError,
    UnsupportedMessageError,
)
from langchain_seal_agent.retrievers import SealAgentRetriever
from langchain_seal_agent.tools import create_memory_tools

__version__ = "0.1.0"

__all__ = [
    "ChatSealAgent",
    "MissingNamespaceError",
    "SealAgentCallbackHandler",
    "SealAgentChatMessageHistory",
    "SealAgentRetriever",
    "ToolCallingNotSupportedError",
    "UnsupportedMessageError",
    "__version__",
    "create_memory_tools",
]
