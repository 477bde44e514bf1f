"""Kafka outputs are confirmed: delivered records are readable, failures are raised."""

from __future__ import annotations

import pytest

from app.embedded import free_port
from flows.publisher import DeliveryError, KafkaPublisher
from operators.ports import OutRecord
from tests.helpers import consume_all

pytestmark = pytest.mark.kafka


def test_published_records_are_confirmed_and_readable(kafka_settings):
    pub = KafkaPublisher(kafka_settings.kafka_client_config())
    topic = kafka_settings.triggers_topic
    pub.publish([OutRecord(topic, f"c{i}".encode(), f"v{i}".encode(), [("ls.id", b"x")]) for i in range(500)])
    got = consume_all(kafka_settings.kafka_bootstrap, topic, 500)
    assert sorted(m.value() for m in got) == sorted(f"v{i}".encode() for i in range(500))


def test_an_unreachable_broker_raises_instead_of_losing_records():
    pub = KafkaPublisher(
        {"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": 1500},
        timeout_s=10,
        attempts=2,
    )
    with pytest.raises(DeliveryError):
        pub.publish([OutRecord("t", b"k", b"v")])
