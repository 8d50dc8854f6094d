"""Policy versions: the self-edit writer's LoRA adapters, kept like memory adapters.

A policy is an adapter of kind ``policy`` in the same :class:`AdapterStore`
as the memory adapters: one folder per version with a checksummed manifest,
promoted atomically (fsync, rename, one journal transaction), verified before
it is loaded, rolled back by moving the active pointer.

Scope: a policy writes self-edits for the whole deployment unless a
namespace has its own. The deployment-wide policies live under a reserved
namespace, :data:`DEPLOYMENT` (``deployment@seal-agent/policy``): no real
namespace is affected by it, since only ``kind = 'policy'`` rows are stored
there. A per-namespace policy uses the namespace's own (user, agent) pair.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seal_agent.adapters import AdapterStore, AdapterVersion
from seal_agent.errors import AdapterNotFoundError, ConfigError, CorruptAdapterError

__all__ = ["DEPLOYMENT", "KIND", "PolicyStore", "Scope"]

KIND = "policy"
DEPLOYMENT = ("deployment@seal-agent", "policy")  # reserved (user_id, agent_id) of shared policies
Scope = tuple[str, str]
_VERSION = re.compile(r"^v?(\d+)$")


def scope_of(user_id: str | None = None, agent_id: str | None = None) -> Scope:
    """The deployment scope, or one namespace's (both ids, or neither)."""
    if user_id is None and agent_id is None:
        return DEPLOYMENT
    if user_id is None:
        raise ConfigError("a per-namespace policy needs a user id (and an agent id, default 'default')")
    return (user_id, agent_id or "default")


class PolicyStore:
    """Versions of the self-edit policy, on top of the adapter store."""

    def __init__(self, adapters: AdapterStore) -> None:
        self.adapters = adapters

    def describe(self, scope: Scope) -> str:
        return "the deployment" if scope == DEPLOYMENT else f"{scope[0]}/{scope[1]}"

    def list(self, scope: Scope = DEPLOYMENT) -> list[AdapterVersion]:
        return self.adapters.list(*scope, KIND)

    def active(self, scope: Scope = DEPLOYMENT) -> AdapterVersion | None:
        return self.adapters.active(*scope, KIND)

    def resolve(
        self, version: int | str | None, scope: Scope = DEPLOYMENT
    ) -> tuple[AdapterVersion, builtins.list[str]]:  # `list` here is the method above
        """The version to sample with, verified, and any warnings.

        ``None``: the active policy; if its files fail their checksums the
        newest earlier version that verifies is used (said in the warnings),
        and none at all is an :class:`AdapterNotFoundError`. A version asked
        for by number (``3``, ``"v0003"``) or id (``"adp_..."``) is refused
        with :class:`CorruptAdapterError` when it does not verify: the caller
        asked for exactly that one.
        """
        where = self.describe(scope)
        if version is None:
            found, warnings = self.adapters.loadable(*scope, KIND)
            if found is None:
                if warnings:
                    raise CorruptAdapterError(f"no policy of {where} verifies: " + "; ".join(warnings))
                raise AdapterNotFoundError(
                    f"{where} has no active policy: train one with `seal-agent policy train`"
                )
            return found, warnings
        target = self.find(version, scope)
        self.adapters.verify(target)
        return target, []

    def find(self, version: int | str, scope: Scope = DEPLOYMENT) -> AdapterVersion:
        """A listed version by number or id (not verified)."""
        versions = self.list(scope)
        if isinstance(version, str) and not _VERSION.match(version.strip()):
            target = next((v for v in versions if v.id == version), None)
        else:
            number = int(_VERSION.match(str(version).strip())[1])  # type: ignore[index]
            target = next((v for v in versions if v.version == number), None)
        if target is None:
            have = ", ".join(v.name for v in versions) or "none"
            raise AdapterNotFoundError(f"{self.describe(scope)} has no policy {version!r} (have: {have})")
        return target

    def promote(
        self,
        save: Callable[[Path], None],
        *,
        config: dict[str, Any],
        metrics: dict[str, Any],
        scope: Scope = DEPLOYMENT,
        parent_id: str | None = None,
    ) -> AdapterVersion:
        """Write a new version (fsync, rename) and make it active in one transaction."""
        with self.adapters.lock(*scope):
            self.adapters.cleanup(*scope, KIND)
            staged = self.adapters.stage(
                *scope, KIND, save, config=config, metrics=metrics, parent_id=parent_id
            )
            return self.adapters.promote(staged)

    def rollback(self, scope: Scope = DEPLOYMENT, to_version: int | None = None) -> AdapterVersion:
        return self.adapters.rollback(*scope, KIND, to_version=to_version)
