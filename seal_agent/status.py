"""What a memory home holds, for ``SealAgent.status`` and ``seal-agent status``.

Read from the journal and the configuration only: cheap, and it loads no
model, embedder or Chroma.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seal_agent.facts_store import FactStore
from seal_agent.runs import RunStore

if TYPE_CHECKING:
    from seal_agent.adapters import AdapterStore
    from seal_agent.config import SealAgentConfig
    from seal_agent.journal import Journal

__all__ = ["home_status"]


def home_status(
    config: SealAgentConfig,
    journal: Journal,
    adapters: AdapterStore,
    user_id: str | None = None,
    agent_id: str | None = None,
) -> dict[str, Any]:
    """The home, its stores, its counts (of one user or pair when given) and its adapters."""
    return {
        "home": str(config.home.resolve()),
        "journal": journal.location,
        "schema_version": journal.schema_version,
        "model": config.model.name,
        "embedder": config.embedder.name,
        "buffer": (
            f"chroma server {config.buffer.host}:{config.buffer.port}"
            if config.buffer.host
            else f"embedded chroma at {config.chroma_path}"
        ),
        "derive_mode": config.agent.derive,
        "counts": journal.counts(user_id, agent_id),
        "weights_recall": FactStore(journal).summary(user_id, agent_id),
        "namespaces": journal.namespaces(),
        "last_run": RunStore(journal).last_run(user_id, agent_id),
        "active_adapters": [
            {"user_id": u, "agent_id": a, "version": v.name, "id": v.id}
            for u, a in adapters.namespaces()
            if (v := adapters.active(u, a)) is not None
        ],
    }
