"""The lag monitor on real Kafka: a topic with fewer partitions than the source (the repartition
topic often has) is skipped, not reported as Kafka not answering -- which would hold /readyz at 503."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from flows.monitor import Monitor
from livesignals import metrics
from state.ownership import Claim, Ownership

pytestmark = [pytest.mark.kafka]


def _create(bootstrap: str, topics: dict[str, int]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()]).values():
        future.result(30)


def test_a_topic_with_fewer_partitions_is_skipped_and_kafka_stays_reachable(kafka_settings):
    wide, narrow = f"ls.wide.{uuid.uuid4().hex[:8]}", f"ls.narrow.{uuid.uuid4().hex[:8]}"
    _create(kafka_settings.kafka_bootstrap, {wide: 4, narrow: 1})
    ownership = Ownership(claimer=lambda p: Claim(p, "e", "s", {wide: None, narrow: None}))
    for p in range(4):
        ownership.claim(p)
    watch = Monitor(kafka_settings, ownership, (wide, narrow))
    for _ in range(60):  # metadata and leaders of just-created topics can take a moment on Apache Kafka
        if watch._read_lag() and len(watch._lags) == 5:
            break
        time.sleep(0.5)
    assert watch._read_lag() is True
    assert sorted(watch._lags) == sorted([*((wide, p) for p in range(4)), (narrow, 0)])
    sample = metrics.CONSUMER_LAG.labels(narrow, "0")._value.get()
    assert sample == 0


def test_lag_counts_the_backlog_on_every_broker_from_the_log_end_the_source_fetched(kafka_settings):
    """The embedded broker (Tansu) answers ListOffsets with 1 for every partition, so a monitor that only
    asked Kafka reported lag 0 over a backlog of 100 (session 16). The source passes on the log end its
    fetch responses carry (``Ownership.note_log_end``); on Apache Kafka both agree."""
    from confluent_kafka import Producer

    from flows.kafka_source import KafkaPartitionSource

    topic = f"ls.lag.{uuid.uuid4().hex[:8]}"
    _create(kafka_settings.kafka_bootstrap, {topic: 4})
    producer = Producer({"bootstrap.servers": kafka_settings.kafka_bootstrap})
    for i in range(100):
        producer.produce(topic, f"e{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    ownership = Ownership(claimer=lambda p: Claim(p, "e", "s", {topic: None}))
    source = KafkaPartitionSource({"bootstrap.servers": kafka_settings.kafka_bootstrap}, (topic,), 10, ownership)
    reader = source.build_part("kafka_in", "0", None)
    try:
        got: list = []
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got = reader.next_batch()
        assert len(got) == 10  # read ten, none committed: the whole log is still to apply
        time.sleep(0.3)
        reader.next_batch()  # passes the fetched log end on (a few times a second)
        watch = Monitor(kafka_settings, ownership, (topic,))
        assert watch._read_lag() is True
        assert watch._lags[(topic, 0)] == 100
        assert metrics.CONSUMER_LAG.labels(topic, "0")._value.get() == 100
    finally:
        reader.close()


def test_lag_during_a_replay_follows_what_redis_holds_not_the_consumer_group(kafka_settings):
    """The README: while a replay runs the group stays where it was before the loss (a replay never moves
    its offsets back), and ``livesignals_consumer_lag_messages`` shows the replay's progress -- the lag is
    the log end minus the offset this engine committed to Redis, whatever the group says."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = f"ls.replaylag.{uuid.uuid4().hex[:8]}"
    _create(kafka_settings.kafka_bootstrap, {topic: 4})
    producer = Producer({"bootstrap.servers": kafka_settings.kafka_bootstrap})
    for i in range(100):
        producer.produce(topic, f"e{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    group = Consumer({"bootstrap.servers": kafka_settings.kafka_bootstrap, "group.id": kafka_settings.consumer_group,
                      "enable.auto.commit": False})  # fmt: skip
    try:
        group.commit(offsets=[TopicPartition(topic, 0, 100)], asynchronous=False)  # before the loss: all applied
    finally:
        group.close()
    ownership = Ownership(claimer=lambda p: Claim(p, "e", "s", {topic: 40}))  # the replay has committed 40 so far
    ownership.claim(0)
    ownership.note_log_end(
        0, topic, 100
    )  # as the source's fetches pass it on (the embedded broker's ListOffsets says 1)
    watch = Monitor(kafka_settings, ownership, (topic,))
    for _ in range(60):  # metadata of a just-created topic can take a moment on Apache Kafka
        if watch._read_lag():
            break
        time.sleep(0.5)
    assert watch._lags[(topic, 0)] == 60
    assert metrics.CONSUMER_LAG.labels(topic, "0")._value.get() == 60
    ownership.get(0).offsets[topic] = 90  # type: ignore[union-attr]  # the replay moved on: so does the lag
    assert watch._read_lag() is True
    assert watch._lags[(topic, 0)] == 10
