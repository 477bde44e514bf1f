"""What ``read_committed`` gets from the session's broker (outside review of #10, 10f K4; the README says so).

The engine reads its input with ``isolation.level = read_committed``, so an upstream transactional producer's
aborted events are never applied -- on Apache Kafka. The embedded broker of the demo and the tests (Tansu 0.6)
delivers the records of aborted transactions to ``read_committed`` consumers as well. This test pins both: if
Tansu starts honouring the isolation level, it fails, and the README's sentence goes.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = [pytest.mark.kafka]

APACHE_KAFKA = bool(os.environ.get("LIVESIGNALS_TEST_KAFKA"))
"""The session's broker is one the tests were given (CI: Apache Kafka), not the embedded Tansu."""


def test_read_committed_skips_aborted_records_on_apache_kafka_and_not_on_the_embedded_broker(kafka_bootstrap):
    topic = f"txn-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    plain = Producer({"bootstrap.servers": kafka_bootstrap})
    plain.produce(topic, b"plain")
    assert plain.flush(30) == 0
    txn = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"t-{topic}"})
    txn.init_transactions(30)
    txn.begin_transaction()
    txn.produce(topic, b"aborted")
    txn.flush(30)
    txn.abort_transaction(30)
    txn.begin_transaction()
    txn.produce(topic, b"committed")
    txn.commit_transaction(30)
    plain.produce(topic, b"after")
    assert plain.flush(30) == 0

    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})  # fmt: skip
    c.assign([TopicPartition(topic, 0, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while b"after" not in got and time.monotonic() < deadline:
            got += [m.value() or b"" for m in c.consume(100, 0.5) if m.error() is None]
    finally:
        c.close()
    if APACHE_KAFKA:
        assert got == [b"plain", b"committed", b"after"]
    else:  # Tansu: the aborted record too
        assert got == [b"plain", b"aborted", b"committed", b"after"]
