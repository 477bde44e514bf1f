"""After a log reset, the README's remedy (a new ``key_prefix``, the same consumer group and output topics) publishes
every output of the new log, each under an id no output of the old log had (#10: break-test 10f, K2).

The new log numbers its records from 0 again. Ids made of the input position alone repeated the old outputs' ids
(here, the same events again: every flag id). And the consumer group's offsets still belong to the old log: a
rebuild that took them for "outputs already published" would publish nothing of the new log below them (the
fresh start finds Redis behind the group: a STATE LOSS, replayed from 0).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, TopicPartition

from app.engine_process import start_engine, stop_process
from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import primary_key
from tests.helpers import consume_all, produce, wait_committed
from tests.integration.test_log_reset_topic import _recreate

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 600


def ids(settings, topic: str) -> Counter[str]:
    """How many records of ``topic`` carry each ``ls.id`` (read to the end)."""
    records = consume_all(settings.kafka_bootstrap, topic, 10**9, timeout_s=3)
    return Counter((dict(m.headers() or []).get("ls.id") or b"").decode() for m in records)


def test_a_fresh_start_on_a_reset_log_publishes_its_outputs_under_new_ids(kafka_settings):
    s = kafka_settings.replace(models_enabled=False, quiet_hours="0-0", policy_clock="stream")
    topic = s.input_topics[0]
    sim = Simulator(SimulatorConfig(customers=150, seed=23, start_ms=int(time.time() * 1000) - 3_600_000, step_ms=50))
    stream = [(primary_key(e["customer"]).encode(), serde.dumps(e)) for e, _ in sim.stream(N)]
    produce(s.kafka_bootstrap, topic, stream)
    engine = start_engine(s, workers=1)
    try:
        wait_committed(s, N, engine, timeout_s=240)
    finally:
        stop_process(engine)
    old_flags, old_decisions = ids(s, s.flags_topic), ids(s, s.decisions_topic)
    assert old_flags and old_decisions and set(old_flags.values()) == {1}

    group = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": s.consumer_group})
    try:
        kept = group.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
        assert all(tp.offset > 0 for tp in kept)
        _recreate(s.kafka_bootstrap, topic, 4)  # a log reset: the same events again, from offset 0, written later
        produce(s.kafka_bootstrap, topic, stream)
        # an unclean leader election keeps the group's offsets (a deleted topic's are dropped): as such a reset
        group.commit(offsets=kept, asynchronous=False)
    finally:
        group.close()
    fresh = s.replace(key_prefix=s.key_prefix + "new")  # the README's remedy; same group, same output topics
    engine = start_engine(fresh, workers=1)
    try:
        wait_committed(fresh, N, engine, timeout_s=240)
    finally:
        stop_process(engine)
    flags, decisions = ids(s, s.flags_topic), ids(s, s.decisions_topic)
    assert sum(flags.values()) == 2 * sum(old_flags.values()), "every flag of the new log published"
    assert set(flags.values()) == {1}, "no new flag under an old flag's id"
    assert sum(decisions.values()) > sum(old_decisions.values()) and set(decisions.values()) == {1}
