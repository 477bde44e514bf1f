"""The Kafka source: partition p of every input topic and of the repartition topic in one source partition."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from app import embedded
from app.engine_process import start_engine, stop_process
from app.topics import ensure_topics
from flows.claims import EXIT_BAD_CONFIG
from flows.kafka_source import KafkaPartitionSource, count_problem

pytestmark = [pytest.mark.kafka]


def topics(bootstrap: str, counts: list[int]) -> tuple[str, ...]:
    names = tuple(f"src-{uuid.uuid4().hex[:8]}" for _ in counts)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(n, c, 1) for n, c in zip(names, counts, strict=True)]).values():
        f.result()
    deadline = time.monotonic() + 30  # Apache Kafka: a created topic can take a moment to show in metadata
    while time.monotonic() < deadline:
        listed = admin.list_topics(timeout=10).topics
        if all(n in listed and len(listed[n].partitions) == c for n, c in zip(names, counts, strict=True)):
            break
        time.sleep(0.2)
    return names


def test_one_source_partition_per_partition_number_across_topics(kafka_bootstrap):
    names = topics(kafka_bootstrap, [4, 4])
    assert KafkaPartitionSource({"bootstrap.servers": kafka_bootstrap}, names).list_parts() == ["0", "1", "2", "3"]


def test_topics_with_different_partition_counts_are_refused_with_a_clear_message(kafka_bootstrap):
    names = topics(kafka_bootstrap, [4, 2])
    problem = count_problem(KafkaPartitionSource({"bootstrap.servers": kafka_bootstrap}, names)._partition_counts())
    assert problem is not None and "same partition count" in problem


def test_a_missing_topic_is_named(kafka_bootstrap):
    names = (*topics(kafka_bootstrap, [4]), "no-such-topic-here")
    problem = count_problem(KafkaPartitionSource({"bootstrap.servers": kafka_bootstrap}, names)._partition_counts())
    assert problem is not None and "no-such-topic-here" in problem


def test_mixed_partition_counts_stop_the_engine_with_exit_2_and_one_line(settings, kafka_bootstrap, tmp_path):
    # break-test 10h L6: exit 1 inside a 20-line Bytewax traceback; a supervisor restarting on failure looped
    s = settings.replace(kafka_bootstrap=kafka_bootstrap, topic_partitions=8, metrics_port=embedded.free_port())
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(s.repartition_topic, 4, 1)])[s.repartition_topic].result()
    ensure_topics(s)  # the input topic with 8 partitions, the repartition topic left at 4
    log_path = tmp_path / "engine.log"
    with open(log_path, "wb") as log:
        engine = start_engine(s, log=log)
    try:
        assert engine.wait(120) == EXIT_BAD_CONFIG
    finally:
        stop_process(engine)
    text = log_path.read_text()
    lines = [line for line in text.splitlines() if "same partition count" in line]
    assert len(lines) == 1 and "CONFIGURATION ERROR" in lines[0] and s.repartition_topic in lines[0], text
    assert "Traceback" not in text


@pytest.fixture
def measured_bound():
    """The process's batch bound at 1 ms an event (as if the engine had measured it), reset afterwards."""
    from flows.batch_bound import BOUND

    BOUND.reset()
    BOUND.observe(1000, 1.0)
    yield BOUND
    BOUND.reset()


def _read_all(reader, total: int) -> list[list]:
    batches: list[list] = []
    deadline = time.monotonic() + 60
    while sum(len(b) for b in batches) < total and time.monotonic() < deadline:
        got = reader.next_batch()
        if got:
            batches.append(got)
    return batches


@pytest.mark.parametrize(("batch_max_s", "largest"), [(0.2, 200), (0.0, 450)])
def test_a_batch_is_bounded_by_the_engines_measured_time_as_well_as_its_size(
    kafka_bootstrap, measured_bound, batch_max_s, largest
):
    """batch_max_s 0.2 at 1 ms an event: at most 200 events a batch, every one read once and in order;
    0: the size alone (batch_size 450) -- a backlog of 1,000 events."""
    _bounded_read(kafka_bootstrap, batch_max_s, largest)


def test_before_any_measurement_a_backlog_is_read_in_batches_just_large_enough_to_measure(kafka_bootstrap):
    """A start on a backlog: nothing measured yet, so no batch of seconds of work (MIN_EVENTS at most)."""
    from flows.batch_bound import BOUND, MIN_EVENTS

    BOUND.reset()
    _bounded_read(kafka_bootstrap, 0.25, MIN_EVENTS)


def _bounded_read(kafka_bootstrap: str, batch_max_s: float, largest: int) -> None:
    from confluent_kafka import Producer

    from state.ownership import Claim, Ownership

    (topic,) = topics(kafka_bootstrap, [1])
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(1000):
        producer.produce(topic, f"e{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    ownership = Ownership(claimer=lambda p: Claim(p, "e", "s", {topic: None}))
    source = KafkaPartitionSource(
        {"bootstrap.servers": kafka_bootstrap}, (topic,), 450, ownership, batch_max_s=batch_max_s
    )
    reader = source.build_part("kafka_in", "0", None)
    try:
        batches = _read_all(reader, 1000)
    finally:
        reader.close()
    assert [m.origin.offset for b in batches for m in b] == list(range(1000))
    assert max(len(b) for b in batches) == largest
