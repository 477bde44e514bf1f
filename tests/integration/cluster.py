"""A three-master Redis Cluster for tests (Debian redis-server processes started by the test).

One place builds it: the module-scoped ``cluster_url`` fixture (tests/integration/conftest.py)
and the tests that stop and start nodes themselves (:func:`three_nodes`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
import redis

from app import embedded
from app.embedded import Service

SLOTS = 16384
"""Hash slots of a Redis Cluster, split in three."""


@contextlib.contextmanager
def three_nodes() -> Iterator[list[Service]]:
    """Three cluster masters, slots split in three, no replicas; stopped on exit."""
    with contextlib.ExitStack() as stack:
        nodes = [stack.enter_context(embedded.start_redis(prefer_system=True, cluster=True)) for _ in range(3)]
        clients = [redis.Redis(host="127.0.0.1", port=n.port) for n in nodes]
        for i, client in enumerate(clients):
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * SLOTS // 3, (i + 1) * SLOTS // 3 - 1)
        for node in nodes[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
        deadline = time.monotonic() + 30
        while not all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients):
            if time.monotonic() > deadline:
                pytest.fail("the cluster did not come up")
            time.sleep(0.1)
        yield nodes
