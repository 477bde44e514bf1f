"""The Kafka source: partition p of every input topic and of the repartition topic in one source partition."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from flows.kafka_source import KafkaPartitionSource

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
    with pytest.raises(RuntimeError, match="same partition count"):
        KafkaPartitionSource({"bootstrap.servers": kafka_bootstrap}, names).list_parts()


def test_a_missing_topic_is_named(kafka_bootstrap):
    names = (*topics(kafka_bootstrap, [4]), "no-such-topic-here")
    with pytest.raises(RuntimeError, match="no-such-topic-here"):
        KafkaPartitionSource({"bootstrap.servers": kafka_bootstrap}, names).list_parts()
