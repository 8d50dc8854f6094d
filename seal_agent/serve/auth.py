"""API keys, tenants, and where the server may listen.

A key belongs to one tenant, and a tenant is the agent id of every namespace
its requests touch: a request authenticated as tenant ``acme`` reads and
writes only ``(user, "acme")`` namespaces, whatever user it names. Memories
are already kept per (user, agent) pair, so the isolation is the journal's
and the buffer's own namespace filter, not a second mechanism.

Without keys there are no tenants: the server answers anyone who can reach
it, so it may listen on loopback only (:func:`check_bind`).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from seal_agent.errors import ConfigError

__all__ = ["Keyring", "Tenant", "check_bind", "is_loopback"]


@dataclass(frozen=True)
class Tenant:
    """Who a request acts for. ``agent_id`` is None when no keys are configured."""

    agent_id: str | None


OPEN = Tenant(agent_id=None)


def is_loopback(host: str) -> bool:
    """True only for addresses that other machines cannot reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_bind(host: str, api_keys: Mapping[str, str]) -> None:
    """Refuse to serve a non-loopback address without API keys."""
    if not api_keys and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host!r} without API keys: anyone who can reach it would "
            "read and write every memory. Set serve.api_keys (for example "
            "SEAL_AGENT_SERVE__API_KEYS='{\"<a key of 16+ characters>\": \"<tenant>\"}'), "
            "or listen on 127.0.0.1"
        )


class Keyring:
    """Resolves an ``Authorization`` header to a tenant."""

    def __init__(self, api_keys: Mapping[str, str]) -> None:
        self._keys = [(key.encode(), tenant) for key, tenant in api_keys.items()]

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def tenant(self, authorization: str | None) -> Tenant | None:
        """The key's tenant; :data:`OPEN` without keys; None for a missing or wrong key."""
        if not self._keys:
            return OPEN
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        given = token.strip().encode()
        found = None
        for key, tenant in self._keys:  # compare with every key: timing says nothing
            if hmac.compare_digest(key, given):
                found = tenant
        return Tenant(agent_id=found) if found is not None else None
