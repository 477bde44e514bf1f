"""A rebuild after Redis lost its data publishes nothing Kafka already confirmed (real Kafka and Redis).

Issue #10, session 15: a STATE LOSS replays the partition from Kafka; the
events below the offsets committed before the loss had their outputs (flags,
triggers, decisions, reroutes, dead letters) confirmed by Kafka before that
commit, so the replay rebuilds state only, up to there (``republish_replays``
off, the default). Before, every one was published again: consumers saw each id
twice, and the reroutes came back through the repartition topic once more. Nor
does it write their flags and updates to the desks' streams again, which pushed
them live as new (break-test 10g, C1).
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from typing import Any

import pytest

from app import embedded
from app.engine_process import start_engine, stop_process
from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import primary_key
from operators.profile360.kpis import new_windows
from operators.profile360.windows import WINDOWS
from state.connection import connect
from state.keys import Keys
from state.store import ProfileStore
from tests.helpers import aggregates, consume_all, produce
from tests.integration.test_ownership import metric, start_redis_at, variant, wait_for
from tests.integration.test_state_loss_idle import events_per_customer

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 1_200


def outputs(settings) -> dict[str, Counter[str]]:
    """Per output topic, how many records carry each ``ls.id`` (read to the end)."""
    topics = (settings.flags_topic, settings.triggers_topic, settings.decisions_topic, settings.repartition_topic,
              settings.dead_letter_topic)  # fmt: skip
    out = {}
    for topic in topics:
        records = consume_all(settings.kafka_bootstrap, topic, 10**9, timeout_s=3)
        out[topic] = Counter((dict(m.headers() or []).get("ls.id") or b"").decode() for m in records)
    return out


def aggregates_as_read(settings) -> dict[bytes, Any]:
    """Each partition's KPIs as read (every metric's total per window, to 1e-6) and voice-of-the-customer counts.
    Not the stored bytes: how a partition's direct and rerouted events interleave depends on timing, which
    changes dict and bucket order and float rounding, not the figures (as in ``bench.faults_outcome.kpis``)."""
    out = {}
    for key, fields in aggregates(settings).items():
        w = new_windows(serde.loads(fields[b"kpi"]) if fields.get(b"kpi") else None)
        kpi = {window: {m: round(v, 6) for m, v in sorted(w.totals(window, w.newest_ms).items())} for window in WINDOWS}
        out[key] = (kpi, serde.loads(fields[b"voc"]) if fields.get(b"voc") else None)
    return out


def streams(settings) -> tuple[int, int]:
    """Entries in the desks' flags stream and updates stream (every entry written was also pushed live)."""
    client, keys = connect(settings), Keys(settings.key_prefix)
    return client.xlen(keys.flags_stream), client.xlen(keys.updates_stream)


def wait_settled(settings, timeout_s: float = 120.0) -> None:
    """Until the repartition topic is committed to its end too (the reroutes are applied)."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = consume_all(settings.kafka_bootstrap, settings.repartition_topic, 10**9, timeout_s=2)
        ends: dict[int, int] = {}
        for m in records:
            ends[m.partition()] = max(ends.get(m.partition(), 0), m.offset() + 1)
        done = ProfileStore(connect(settings), Keys(settings.key_prefix)).resume_offsets(settings.repartition_topic)
        if all(done.get(p, 0) >= end for p, end in ends.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"repartition topic committed {done}, ends {ends}")
        time.sleep(0.2)


@pytest.mark.parametrize("republish", [False, True], ids=["default", "republish_replays"])
def test_a_rebuild_publishes_no_output_again_and_rebuilds_the_same_state(kafka_settings_module, tmp_path, republish):
    sim = Simulator(SimulatorConfig(customers=200, seed=17, start_ms=int(time.time() * 1000) - 3_600_000, step_ms=50))
    stream = []
    for e, _ in sim.stream(N):
        key = primary_key(e["customer"])
        cookie = zlib.crc32(key.encode())
        if cookie % 4 == 0:  # a mis-keyed web tracker: these customers' events go through the repartition topic
            key = f"cookie-{cookie}"
        stream.append((key.encode(), serde.dumps(e)))
    port = embedded.free_port()
    server = start_redis_at(port, tmp_path, persist=False)
    s = variant(kafka_settings_module.replace(quiet_hours="0-0", models_enabled=False),
                input_topics=(f"rebuilt-{port}",), repartition_topic=f"rep-{port}", dead_letter_topic=f"dlq-{port}",
                redis_url=f"redis://127.0.0.1:{port}/0", batch_size=200, metrics_port=embedded.free_port(),
                status_interval_s=0.5, republish_replays=republish)  # fmt: skip
    from app.topics import ensure_topics

    ensure_topics(s)
    produce(s.kafka_bootstrap, s.input_topics[0], stream)
    with open(tmp_path / "engine.log", "wb") as log:
        engine = start_engine(s, log=log)
    try:
        wait_for(s, N, [engine])
        wait_settled(s)  # drained: every output confirmed and committed
        before, kpis, published = events_per_customer(s), aggregates_as_read(s), outputs(s)
        streamed = streams(s)
        assert all(streamed), "flags and updates in the desks' streams"
        assert sum(before.values()) == N and len(kpis) == 8  # 4 partitions x (input, repartition)
        assert published[s.flags_topic] and published[s.repartition_topic], "flags and reroutes to compare"
        assert all(n == 1 for ids in published.values() for n in ids.values() if ids)
        stop_process(server)
        server = start_redis_at(port, tmp_path, persist=False)  # empty: the monitor notices, the replay rebuilds
        wait_for(s, N, [engine], timeout_s=120.0)
        wait_settled(s)
        assert events_per_customer(s) == before
        assert aggregates_as_read(s) == kpis
        assert (metric(s.metrics_port, 'livesignals_state_loss_total{action="rebuilt"}') or 0) >= 1
        again = outputs(s)
        skipped = metric(s.metrics_port, "livesignals_replay_not_republished_total") or 0
        if republish:  # as before session 15: every output once more, and the desks' streams written again
            assert again[s.flags_topic] == published[s.flags_topic] + published[s.flags_topic]
            assert skipped == 0
            flagged, updated = streams(s)  # updates: one per batch that changed a mood or decision (batching differs)
            assert flagged == streamed[0] and updated > 0
        else:
            assert again == published
            assert skipped >= N
            assert streams(s) == (0, 0), "nothing written or pushed to the desks again (break-test 10g, C1)"
        assert engine.poll() is None
    finally:
        stop_process(engine)
        stop_process(server)
