"""The benchmarks' producer sends at once: a latency benchmark never counts librdkafka's start-up as the engine's.

A fresh idempotent producer holds its first records until it has a producer id (about half a second here),
while Kafka stamps them when produced; ``bench.latency`` times flags from that stamp, so the first half
second of every live run's flags carried the wait (its p99 at 25 % load: 431 ms with them, 225 ms without).
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.common import ready_producer
from livesignals.partitioner import PRODUCER_CONFIG

pytestmark = pytest.mark.kafka


def _first_record_latency(producer: Producer, topic: str) -> float:
    """Seconds from produce() to the broker's confirmation of one record (librdkafka's own measure)."""
    latencies: list[float] = []
    producer.produce(topic, b"x", b"k", on_delivery=lambda err, msg: latencies.append(msg.latency() or 0.0))
    producer.flush(30)
    return latencies[0]


def test_the_benchmark_producer_has_its_id_before_the_first_record(kafka_bootstrap):
    topic = f"bench.ready.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    fresh = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5, "enable.idempotence": True,
                      **PRODUCER_CONFIG})  # fmt: skip
    held = _first_record_latency(fresh, topic)
    ready = _first_record_latency(ready_producer(kafka_bootstrap), topic)
    # both measured in this run: the fresh one waits for its producer id, the ready one does not
    assert ready < held / 2, (ready, held)
