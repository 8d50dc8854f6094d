"""Forgetting: one memory, one interaction and all derived from it, or a namespace.

The journal forgets first (it is the truth); the buffer and the adapter
folders follow.  A crash between the two leaves orphans in the buffer, which
the journal cross-check of every search hides and the next reconcile removes.
A namespace is forgotten under the adapter store's lock of each of its (user,
agent) pairs: a consolidation running there makes ``forget`` fail at once
(``ConsolidationBusyError``, nothing deleted) rather than let it promote weights
trained on what was just forgotten.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING

from seal_agent.errors import ConfigError
from seal_agent.types import check_id

if TYPE_CHECKING:
    from seal_agent.adapters import AdapterStore
    from seal_agent.config import SealAgentConfig
    from seal_agent.journal import Journal
    from seal_agent.memory_index import MemoryIndex
    from seal_agent.weights import ActiveAdapters

__all__ = ["Forgetter"]


class Forgetter:
    """Deletes what the agent was told, everywhere it went."""

    def __init__(
        self,
        config: SealAgentConfig,
        journal: Journal,
        index: MemoryIndex,
        adapters: ActiveAdapters,
        store: Callable[[], AdapterStore],
    ) -> None:
        self._config = config
        self._journal = journal
        self._index = index
        self._adapters = adapters
        self._store = store

    def forget(
        self,
        memory_id: str | None,
        interaction_id: str | None,
        user_id: str | None,
        agent_id: str | None,
    ) -> int:
        """Exactly one of ``memory_id``, ``interaction_id`` or ``user_id`` (with an
        optional ``agent_id``); returns how many memories were deleted."""
        given = [x is not None for x in (memory_id, interaction_id, user_id)]
        if sum(given) != 1:
            raise ConfigError(
                "forget() takes exactly one of memory_id, interaction_id or user_id"
            )
        if memory_id is not None:
            ids = self._journal.forget_self_edit(memory_id)
        elif interaction_id is not None:
            ids = self._journal.forget_interaction(interaction_id)
        else:
            assert user_id is not None
            ids = self._forget_namespace(user_id, agent_id)
        self._index.delete(ids)
        return len(ids)

    def _forget_namespace(self, user_id: str, agent_id: str | None) -> list[str]:
        user_id = check_id(user_id, "user_id")
        agent_id = check_id(agent_id, "agent_id") if agent_id is not None else None
        user_dir = self._config.adapters_dir / user_id
        agents = [agent_id] if agent_id is not None else sorted(
            p.name for p in user_dir.iterdir() if p.is_dir()) if user_dir.is_dir() else []
        store = self._store() if agents else None
        with contextlib.ExitStack() as held:
            for agent in agents:
                if (user_dir / agent).is_dir():  # a pair with no adapters has nothing to lock
                    assert store is not None
                    held.enter_context(store.lock(user_id, agent))
            ids = self._journal.forget_namespace(user_id, agent_id)
            # The journal no longer knows these adapters; their folders go too.
            for agent in agents:
                shutil.rmtree(user_dir / agent, ignore_errors=True)
            if agent_id is None and user_dir.is_dir():
                shutil.rmtree(user_dir, ignore_errors=True)
        self._adapters.forget_user(user_id)
        return ids
