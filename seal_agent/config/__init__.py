"""Configuration: pydantic models, read from a TOML file and ``SEAL_AGENT_*`` variables.

Precedence, highest first: keyword arguments, environment variables
(``SEAL_AGENT_HOME``, ``SEAL_AGENT_MODEL__NAME``, ``SEAL_AGENT_BUFFER__TOP_K``,
... nested fields joined by ``__``), the TOML file (``SEAL_AGENT_CONFIG``, or
``<home>/config.toml`` when it exists), then the defaults.

Everything lives under one memory home: the journal, the Chroma store, the
model cache and (from the consolidation issue on) the adapters.

* :mod:`~seal_agent.config.sections`: one model per part of the SDK;
* :mod:`~seal_agent.config.loader`: :class:`SealAgentConfig`, the root with
  the paths derived from it, and :func:`load_config`, which merges the sources.
"""

from __future__ import annotations

from seal_agent.config.loader import DEFAULT_HOME, SealAgentConfig, load_config
from seal_agent.config.sections import (
    AgentConfig,
    BufferConfig,
    ConsolidationConfig,
    EmbedderConfig,
    JournalConfig,
    ModelConfig,
    PolicyConfig,
    SelfEditConfig,
    ServeConfig,
)

__all__ = [
    "DEFAULT_HOME",
    "AgentConfig",
    "BufferConfig",
    "ConsolidationConfig",
    "EmbedderConfig",
    "JournalConfig",
    "ModelConfig",
    "PolicyConfig",
    "SealAgentConfig",
    "SelfEditConfig",
    "ServeConfig",
    "load_config",
]
