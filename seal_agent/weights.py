"""Memory in weights, as the agent uses it: the adapter a turn runs through, and
the consolidation runs that train new ones.

The adapter store (adapters.py) and the reward loop (consolidation.py) do the
work; this module holds the agent's state around them: which version of each
namespace's adapter has passed its checksums, and the one consolidator an
agent reuses from run to run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from seal_agent.models.base import AdapterRef
from seal_agent.types import Namespace

if TYPE_CHECKING:
    from seal_agent.adapters import AdapterStore
    from seal_agent.buffer import Buffer
    from seal_agent.config import SealAgentConfig
    from seal_agent.consolidation import ConsolidationReport, Consolidator
    from seal_agent.journal import Journal
    from seal_agent.models.base import LanguageModel
    from seal_agent.selfedit import SelfEditWriter

__all__ = ["ActiveAdapters", "ConsolidationRunner"]

log = logging.getLogger("seal_agent")


class ActiveAdapters:
    """Each namespace's active memory adapter, its checksums verified once per version.

    The active version is read from the journal on every turn (one indexed
    query), so a version promoted by another process is used from the next
    turn on, with no restart.  A version that fails its checksums is refused
    and the newest good one is used instead (said once in the log).
    """

    def __init__(self, store: Callable[[], AdapterStore]) -> None:
        self._store = store  # built on first use: an agent that never answers never needs it
        self._verified: dict[tuple[str, str], tuple[str, AdapterRef | None]] = {}

    def ref(self, ns: Namespace) -> AdapterRef | None:
        """The adapter to load for ``ns``, or None (no version, or none verifies)."""
        store = self._store()
        active = store.active(ns.user_id, ns.agent_id)
        if active is None:
            return None
        cached = self._verified.get((ns.user_id, ns.agent_id))
        if cached is not None and cached[0] == active.id:
            return cached[1]
        version, warnings = store.loadable(ns.user_id, ns.agent_id)
        for warning in warnings:
            log.warning("%s", warning)
        ref = AdapterRef(key=version.id, path=str(version.path)) if version else None
        self._verified[(ns.user_id, ns.agent_id)] = (active.id, ref)
        return ref

    def forget_user(self, user_id: str) -> None:
        """Drop what was verified for a user whose adapters were deleted."""
        self._verified = {k: v for k, v in self._verified.items() if k[0] != user_id}


class ConsolidationRunner:
    """Runs the reward loop for a namespace, reusing one consolidator.

    Built when the first run starts: training needs local weights, so the
    consolidator raises ``BackendCapabilityError`` there if the model has none.
    """

    def __init__(
        self,
        config: SealAgentConfig,
        journal: Journal,
        *,
        lm: LanguageModel,
        store: AdapterStore,
        buffer: Buffer,
    ) -> None:
        from seal_agent.consolidation import Consolidator

        self._config = config
        self._journal = journal
        self._lm = lm
        self._consolidator: Consolidator = Consolidator(
            config, journal, policy=lm, store=store, buffer=buffer
        )

    def run(
        self,
        ns: Namespace,
        writer: Callable[[], SelfEditWriter],
        *,
        k: int | None,
        max_interactions: int | None,
        dry_run: bool,
        progress: Any,
        policy_version: int | str | None,
    ) -> ConsolidationReport:
        """One run; candidates come from ``writer()`` unless ``policy_version`` names a policy."""
        consolidator = self._consolidator
        consolidator.progress = progress or (lambda event: None)
        consolidator.writer = self._policy_writer(ns, policy_version) if policy_version else writer()
        return consolidator.run(
            ns.user_id, ns.agent_id, k=k, max_interactions=max_interactions, dry_run=dry_run
        )

    def _policy_writer(self, ns: Namespace, version: int | str) -> SelfEditWriter:
        """The self-edit writer of a trained policy: the namespace's, else the deployment's."""
        from seal_agent.errors import AdapterNotFoundError
        from seal_agent.policy import policy_writer

        wanted = None if version == "active" else version
        style = self._config.selfedit.style
        try:
            return policy_writer(self._lm, self._config, wanted, style=style, user_id=ns.user_id,
                                 agent_id=ns.agent_id, journal=self._journal)
        except AdapterNotFoundError:
            return policy_writer(self._lm, self._config, wanted, style=style,
                                 journal=self._journal)
