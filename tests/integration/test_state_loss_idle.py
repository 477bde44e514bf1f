"""A Redis restarted empty under an idle engine is noticed without new input, and rebuilt (real Kafka and Redis).

Outside review of #10, G3: detection used to happen only in a batch, so a
drained engine sat on an empty Redis (ready, 360 and KPIs empty, no STATE LOSS)
until the next message. The monitor now checks the partitions' state between
batches (:mod:`flows.state_probe`).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app import embedded
from app.engine_process import start_engine, stop_process
from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import primary_key
from operators.profile360.profile import CustomerState
from state.keys import Keys
from tests.helpers import aggregates, produce, profiles
from tests.integration.test_ownership import metric, start_redis_at, variant, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 1_200


def events_per_customer(settings):
    """Applied events per customer, from the profiles in Redis."""
    return {k: CustomerState.from_bytes(k.decode(), v).events for k, v in profiles(settings).items()}


@pytest.mark.parametrize("log_check_s", [30.0, 0.3], ids=["default", "log-checks-during-the-replay"])
def test_redis_emptied_under_an_idle_engine_is_rebuilt_without_new_input_and_a_later_event_applied_once(
    kafka_settings_module, tmp_path, log_check_s
):
    """``log-checks-during-the-replay``: break-test 10f, K1: a running check of the Kafka log (flows.log_watch)
    during the replay re-read a record from before the loss, near the log end, and the reader went on from there:
    the records in between were never applied again (232 of 3,000), lag 0, no error."""
    sim = Simulator(SimulatorConfig(customers=200, seed=13, start_ms=int(time.time() * 1000) - 3_600_000, step_ms=50))
    stream: list[tuple[bytes | None, bytes]] = [
        (primary_key(e["customer"]).encode(), serde.dumps(e)) for e, _ in sim.stream(N + 1)
    ]
    port = embedded.free_port()
    server = start_redis_at(port, tmp_path, persist=False)
    s = variant(kafka_settings_module.replace(quiet_hours="0-0", models_enabled=False),
                input_topics=(f"idle-{port}",), redis_url=f"redis://127.0.0.1:{port}/0", batch_size=200,
                metrics_port=embedded.free_port(), status_interval_s=0.5, kafka_log_check_s=log_check_s)  # fmt: skip
    from app.topics import ensure_topics

    ensure_topics(s)  # the test's own 4-partition input topic
    produce(s.kafka_bootstrap, s.input_topics[0], stream[:N])
    with open(tmp_path / "engine.log", "wb") as log:
        engine = start_engine(s, log=log)
    try:
        wait_for(s, N, [engine])  # drained: from here on the engine is idle
        before, kpis = events_per_customer(s), aggregates(s)
        assert sum(before.values()) == N and len(kpis) == 4
        stop_process(server)
        server = start_redis_at(port, tmp_path, persist=False)  # empty, and no new input follows
        wait_for(s, N, [engine], timeout_s=120.0)  # the replay, started by the monitor's check alone
        assert events_per_customer(s) == before
        assert aggregates(s) == kpis
        assert (metric(s.metrics_port, "livesignals_state_loss_noticed_idle_total") or 0) >= 1
        assert (metric(s.metrics_port, 'livesignals_state_loss_total{action="rebuilt"}') or 0) >= 1

        produce(s.kafka_bootstrap, s.input_topics[0], stream[N:])  # a later event: applied once
        wait_for(s, N + 1, [engine])
        after = events_per_customer(s)
        later = Keys(s.key_prefix).profile((stream[N][0] or b"").decode()).encode()
        assert after[later] == before.get(later, 0) + 1
        assert sum(after.values()) == N + 1
        assert engine.poll() is None
    finally:
        stop_process(engine)
        stop_process(server)
    text = Path(tmp_path / "engine.log").read_bytes()
    assert b"STATE LOSS noticed between batches" in text
