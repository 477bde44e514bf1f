"""The Kafka source: partition p of every input topic and of the repartition topic in one source partition."""

from __future__ import annotations

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
