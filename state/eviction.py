"""Redis must never evict the engine's keys: ``maxmemory`` with an evicting policy is a configuration error.

A Redis at ``maxmemory`` under a policy such as ``allkeys-lru`` deletes keys to
make room. An evicted partition meta looks like Redis lost its state: the
engine rebuilds, the rebuild fills memory again, and the loop never ends (806
rebuilds in 3 minutes in the outside review). An evicted profile is not seen
at all: its customer silently restarts from an empty 360. Under ``noeviction``
Redis refuses writes instead, which the engine waits out like an outage
(not-ready, retried) until memory is freed or raised.

So every master's ``maxmemory`` and ``maxmemory-policy`` are read (``CONFIG
GET``; ``INFO memory`` where ``CONFIG`` is disabled or renamed, as on most
managed services): any policy but ``noeviction`` with ``maxmemory`` set is
refused with :class:`EvictingRedis`. ``maxmemory 0`` (no limit) never evicts.

>>> MemoryPolicy("r:6379", 0, "allkeys-lru").evicting
False
>>> MemoryPolicy("r:6379", 1 << 30, "allkeys-lru").evicting
True
>>> MemoryPolicy("r:6379", 1 << 30, "noeviction").evicting
False
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis


class EvictingRedis(Exception):
    """A Redis master may evict keys (``maxmemory`` set, policy not ``noeviction``)."""


@dataclass(frozen=True)
class MemoryPolicy:
    """One master's memory limit (bytes; ``None`` when unknown) and eviction policy (``None`` when unknown)."""

    node: str
    maxmemory: int | None
    policy: str | None

    @property
    def evicting(self) -> bool:
        """True if this master may delete keys to make room."""
        return bool(self.maxmemory) and self.policy not in (None, "noeviction")


def masters(client: Any, cluster: bool) -> list[tuple[str, Any]]:
    """``(address, client)`` of every master: each primary of a Cluster, else the one server."""
    if not cluster:
        kwargs = client.connection_pool.connection_kwargs
        return [(f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}", client)]
    return [(node.name, client.get_redis_connection(node)) for node in client.get_primaries()]


def memory_policy(node: str, client: Any) -> MemoryPolicy:
    """``node``'s memory limit and policy: ``CONFIG GET``, else ``INFO memory``, else unknown."""
    try:
        raw = client.config_get("maxmemory*")
        got = {_text(k): _text(v) for k, v in raw.items()}
        return MemoryPolicy(node, int(got.get("maxmemory", "0") or 0), got.get("maxmemory-policy"))
    except redis.ResponseError:  # CONFIG renamed or disabled
        pass
    try:
        info = client.info("memory")
    except redis.ResponseError:
        return MemoryPolicy(node, None, None)
    limit = info.get("maxmemory")
    policy = info.get("maxmemory_policy")
    return MemoryPolicy(node, int(limit) if limit is not None else None, _text(policy) if policy else None)


def check_no_eviction(client: Any, cluster: bool) -> list[MemoryPolicy]:
    """Every master's policy; raises :class:`EvictingRedis` if one may evict.

    Redis errors (a node down) propagate: the caller retries them as an outage.
    """
    policies = [memory_policy(node, node_client) for node, node_client in masters(client, cluster)]
    evicting = [p for p in policies if p.evicting]
    if evicting:
        detail = ", ".join(f"{p.node} maxmemory {p.maxmemory} maxmemory-policy {p.policy}" for p in evicting)
        raise EvictingRedis(
            f"Redis may evict the engine's keys ({detail}): evicted partition metas read as lost state (a rebuild "
            f"loop) and evicted profiles go unnoticed; set maxmemory-policy noeviction (or maxmemory 0) on every master"
        )
    return policies


def unknown(policies: list[MemoryPolicy]) -> list[str]:
    """The masters whose policy could not be read (neither ``CONFIG`` nor ``INFO`` answered) and may have a limit."""
    return [p.node for p in policies if p.policy is None and p.maxmemory != 0]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
