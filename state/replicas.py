"""Redis ``WAIT`` after a commit: the commit is not done until ``redis_wait_replicas`` replicas hold it.

A master that fails over to a replica which had not yet received the last
commit rolls the deployment back (caught later as a STATE LOSS); waiting for
replicas before the consumer-group offsets move narrows that window to what
the replicas acknowledged (:mod:`state.store`).
"""

from __future__ import annotations

from typing import Any

import redis

from livesignals import metrics


class ReplicasBehind(redis.RedisError):
    """Fewer replicas than ``redis_wait_replicas`` acknowledged a commit in time: an outage, retried."""


def wait_for_replicas(client: Any, cluster: bool, replicas: int, timeout_ms: int) -> None:
    """``WAIT`` for ``replicas`` replicas on every master the commit wrote to (off at 0).

    WAIT counts the writes of its own connection: the store's client is used by one worker at a
    time, so its pool hands the commit's connection back for the WAIT. A retry of a commit that
    reached Redis writes nothing and waits again, so nothing is acknowledged before its replicas have it.
    """
    if replicas <= 0:
        return
    clients = [client.get_redis_connection(node) for node in client.get_primaries()] if cluster else [client]
    for one in clients:
        acknowledged = int(one.execute_command("WAIT", replicas, timeout_ms))
        metrics.REDIS_ROUNDTRIPS.labels("wait").inc()
        if acknowledged < replicas:
            raise ReplicasBehind(
                f"{acknowledged} of {replicas} replicas acknowledged the commit within {timeout_ms} ms "
                "(redis_wait_replicas)"
            )
