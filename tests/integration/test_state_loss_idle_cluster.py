"""A Redis Cluster master restarted empty under an idle ``livesignals run`` is noticed without new input (#10, G3).

``test_state_loss_idle.py`` covers a single Redis; ``test_state_loss_check.py`` the check itself on a Cluster,
in process. Here the whole engine runs as an operator starts it (the CLI, one Bytewax process, four
partitions) on three masters; once it has drained its input, the master holding most partition metas loses
everything (``FLUSHALL``: a restart without persistence). The monitor's pass notices the missing node marker
and meta, the partitions are rebuilt from Kafka to the profiles and KPIs they had, and a later event is
applied once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from app import embedded
from app.engine_process import engine_env, stop_process
from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import primary_key
from state.connection import connect
from state.keys import Keys
from tests.helpers import aggregates, produce
from tests.integration.cluster import three_nodes
from tests.integration.test_ownership import metric, wait_for
from tests.integration.test_state_loss_idle import events_per_customer

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 1_200


def test_a_cluster_master_emptied_under_an_idle_cli_engine_is_rebuilt_without_new_input(kafka_settings, tmp_path):
    sim = Simulator(SimulatorConfig(customers=200, seed=17, start_ms=int(time.time() * 1000) - 3_600_000, step_ms=50))
    stream: list[tuple[bytes | None, bytes]] = [
        (primary_key(e["customer"]).encode(), serde.dumps(e)) for e, _ in sim.stream(N + 1)
    ]
    with three_nodes() as nodes:
        s = kafka_settings.replace(redis_url=f"redis://{nodes[0].address}/0", redis_cluster=True, batch_size=200,
                                   models_enabled=False, quiet_hours="0-0", status_interval_s=0.5,
                                   metrics_port=embedded.free_port())  # fmt: skip
        produce(s.kafka_bootstrap, s.input_topics[0], stream[:N])
        log_path = tmp_path / "engine.log"
        with open(log_path, "wb") as log:
            engine = subprocess.Popen([sys.executable, "-P", "-m", "app.cli", "run"], env=engine_env(s), stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            wait_for(s, N, [engine])  # drained: from here on the engine is idle
            time.sleep(1.0)
            before, kpis = events_per_customer(s), aggregates(s)
            assert sum(before.values()) == N and len(kpis) == 4
            client, keys = connect(s), Keys(s.key_prefix)
            metas = [client.get_node_from_key(keys.partition_meta(p)).name for p in range(4)]
            victim = max(set(metas), key=metas.count)
            host, port = victim.rsplit(":", 1)
            redis.Redis(host=host, port=int(port)).flushall()  # restarted empty; no new input follows
            wait_for(s, N, [engine], timeout_s=180.0)  # the replay, started by the monitor's check alone
            time.sleep(1.0)
            assert events_per_customer(s) == before
            assert aggregates(s) == kpis
            assert (metric(s.metrics_port, "livesignals_state_loss_noticed_idle_total") or 0) >= 1

            produce(s.kafka_bootstrap, s.input_topics[0], stream[N:])  # a later event: applied once
            wait_for(s, N + 1, [engine])
            time.sleep(1.0)
            after = events_per_customer(s)
            later = Keys(s.key_prefix).profile((stream[N][0] or b"").decode()).encode()
            assert after[later] == before.get(later, 0) + 1
            assert sum(after.values()) == N + 1
            assert engine.poll() is None
        finally:
            stop_process(engine)
    assert b"STATE LOSS noticed between batches" in Path(log_path).read_bytes()
