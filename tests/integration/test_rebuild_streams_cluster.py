"""A Cluster master flushed under an engine: the rebuild writes no flag or update again to the desks' streams, which
survived on another master (#10, break-test 10g, C1).

The replay below the offsets the engine had committed rebuilds state only. Before, it appended every flag of the
history a second time to ``ls:flags`` (new stream ids after the genuine ones: 90 entries became 180) and to
``{ls:flags}:updates``, each pushed live to the desks as new.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

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


def streams(client, keys: Keys) -> tuple[Counter[bytes], int]:
    """Flag ids in the flags stream (with how many entries each), and the updates stream's length."""
    flags = Counter(fields[b"flag_id"] for _, fields in client.xrange(keys.flags_stream))
    return flags, client.xlen(keys.updates_stream)


def test_a_master_flushed_under_the_engine_leaves_the_surviving_desk_streams_as_they_were(kafka_settings):
    sim = Simulator(SimulatorConfig(customers=200, seed=41, start_ms=int(time.time() * 1000) - 3_600_000, step_ms=50))
    stream = [(primary_key(e["customer"]).encode(), serde.dumps(e)) for e, _ in sim.stream(N)]
    with three_nodes() as nodes:
        s = kafka_settings.replace(redis_url=f"redis://{nodes[0].address}/0", redis_cluster=True, batch_size=200,
                                   models_enabled=False, quiet_hours="0-0", status_interval_s=0.5,
                                   metrics_port=embedded.free_port())  # fmt: skip
        produce(s.kafka_bootstrap, s.input_topics[0], stream)
        engine = subprocess.Popen([sys.executable, "-P", "-m", "app.cli", "run"], env=engine_env(s),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            wait_for(s, N, [engine])  # drained
            time.sleep(1.0)
            client, keys = connect(s), Keys(s.key_prefix)
            before, kpis, desks = events_per_customer(s), aggregates(s), streams(client, keys)
            assert desks[0] and desks[1] and set(desks[0].values()) == {1}
            kept = {client.get_node_from_key(k).name for k in (keys.flags_stream, keys.updates_stream)}
            victim = next(n.address for n in nodes if n.address not in kept)
            host, port = victim.rsplit(":", 1)
            redis.Redis(host=host, port=int(port)).flushall()  # its profiles (and markers) gone; streams survive
            deadline = time.monotonic() + 180
            while (metric(s.metrics_port, 'livesignals_state_loss_total{action="rebuilt"}') or 0) < 1:
                assert time.monotonic() < deadline and engine.poll() is None, "no rebuild"
                time.sleep(0.2)
            wait_for(s, N, [engine], timeout_s=180.0)
            deadline = time.monotonic() + 180
            while events_per_customer(s) != before:  # the replay rebuilds every lost profile
                assert time.monotonic() < deadline and engine.poll() is None, "not rebuilt"
                time.sleep(0.5)
            time.sleep(1.0)
            assert aggregates(s) == kpis
            assert streams(client, keys) == desks, "no flag or update written to the desks' streams again"
            assert (metric(s.metrics_port, "livesignals_replay_not_republished_total") or 0) > 0
            assert engine.poll() is None
        finally:
            stop_process(engine)
