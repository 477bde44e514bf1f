"""Redis Cluster outages are waited out like a single Redis's (outside review of #10: with a node down at
start-up the engine exited 1 after ~13 s with ``RedisClusterException`` from ``connect()``).

A three-node cluster of its own (nodes are stopped and started again); the engine runs as a Bytewax process
on the session's broker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from app import embedded
from app.embedded import Service
from app.engine_process import start_engine, stop_process
from app.simulator import Simulator, SimulatorConfig
from app.topics import ensure_topics
from livesignals import serde
from livesignals.contract import primary_key
from operators.profile360.profile import CustomerState
from tests.helpers import produce, profiles, wait_committed
from tests.integration.cluster import three_nodes

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 1500


def start_again(node: Service) -> None:
    """Start a stopped node as itself (same port, bus port and nodes.conf; its RDB file if it saved one)."""
    node.proc = embedded.start_redis(
        port=node.port, prefer_system=True, cluster=True, workdir=node.workdir, bus_port=node.bus_port
    ).proc


def events(seed: int, n: int) -> list[tuple[bytes | None, bytes]]:
    sim = Simulator(SimulatorConfig(customers=200, seed=seed, start_ms=int(time.time() * 1000) - 3_600_000))
    return [(primary_key(e["customer"]).encode(), serde.dumps(e)) for e, _ in sim.stream(n)]


def test_an_engine_started_with_a_cluster_node_down_waits_then_rides_out_a_node_restart(
    settings, kafka_bootstrap, tmp_path: Path
):
    with three_nodes() as nodes:
        s = settings.replace(
            kafka_bootstrap=kafka_bootstrap, redis_url=f"redis://{nodes[0].address}/0", redis_cluster=True,
            topic_partitions=4, models_enabled=False, retry_backoff_max_s=2.0,
        )  # fmt: skip
        ensure_topics(s)
        produce(s.kafka_bootstrap, s.input_topics[0], events(3, N))
        embedded.stop_process(nodes[0].proc)  # the node the engine is given: the slot map cannot be read
        log = open(tmp_path / "engine.log", "wb")  # noqa: SIM115 - the engine process writes it
        engine = start_engine(s, log=log)
        try:
            time.sleep(16)  # the review's engine exited after ~13 s
            assert engine.poll() is None, "the engine waits for the cluster"
            start_again(nodes[0])
            wait_committed(s, N, engine, timeout_s=180)

            # a node restarted for maintenance (its data saved) while events keep coming
            redis.Redis(host="127.0.0.1", port=nodes[1].port).shutdown(save=True)
            produce(s.kafka_bootstrap, s.input_topics[0], events(4, N))
            time.sleep(6)
            assert engine.poll() is None, "the engine waits for the node"
            start_again(nodes[1])
            wait_committed(s, 2 * N, engine, timeout_s=180)
            assert engine.poll() is None
            applied = sum(CustomerState.from_bytes("c", doc).events for doc in profiles(s).values())
            assert applied == 2 * N, "every event applied once"
        finally:
            stop_process(engine)
            log.close()
    assert b"Traceback" not in (tmp_path / "engine.log").read_bytes()
