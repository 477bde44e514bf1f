"""Dead letters always fit, and a record Kafka refuses for good never blocks a partition.

Against the session's real broker: the producer's own ``message.max.bytes`` is
lowered to make records too large, and (where the broker enforces it, as Apache
Kafka does) a topic's ``max.message.bytes``.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from flows.publisher import KafkaPublisher
from livesignals import metrics
from livesignals.errors import DeadLetter, Origin, Reason
from operators.ports import OutRecord
from tests.helpers import consume_all

pytestmark = pytest.mark.kafka


def _headers(message) -> dict[str, bytes]:
    return dict(message.headers() or [])


def _dead_letter(size: int, offset: int = 7) -> tuple[bytes, OutRecord]:
    original = (b"0123456789" * (size // 10 + 1))[:size]
    d = DeadLetter(original, b"k", Reason.OVERSIZED, "too big", Origin("in-x", 3, offset, 42))
    return original, OutRecord("unused", d.key, d.value, d.headers())


def _counter(metric, label: str) -> float:
    return metric.labels(label)._value.get()


def test_a_dead_letter_carries_a_bounded_prefix_with_the_original_size_and_hash(kafka_settings):
    s = kafka_settings
    original, rec = _dead_letter(1_000_200)
    pub = KafkaPublisher(s.kafka_client_config(), dead_letter_topic=s.dead_letter_topic)
    pub.publish([OutRecord(s.dead_letter_topic, rec.key, rec.value, rec.headers)])
    (m,) = consume_all(s.kafka_bootstrap, s.dead_letter_topic, 1)
    h = _headers(m)
    assert m.value() == original[:65_536]
    assert int(h["ls.dlq.size"]) == 1_000_200 and h["ls.dlq.truncated"] == b"true"
    assert h["ls.dlq.sha256"].decode() == hashlib.sha256(original).hexdigest()


def test_a_dead_letter_larger_than_the_producer_accepts_becomes_its_minimal_record(kafka_settings):
    s = kafka_settings
    original, rec = _dead_letter(70_000)
    pub = KafkaPublisher(s.kafka_client_config(**{"message.max.bytes": 20_000}), dead_letter_topic=s.dead_letter_topic)
    ok = [OutRecord(s.flags_topic, b"c1", b'{"flag":"fine"}', [("ls.id", b"f1")])]
    pub.publish([OutRecord(s.dead_letter_topic, rec.key, rec.value, rec.headers), *ok])

    (m,) = consume_all(s.kafka_bootstrap, s.dead_letter_topic, 1)
    h = _headers(m)
    assert m.value() in (b"", None)
    assert h["ls.dlq.reason"] == b"oversized" and h["ls.dlq.minimal"] == b"MSG_SIZE_TOO_LARGE"
    assert (h["ls.dlq.topic"], h["ls.dlq.partition"], h["ls.dlq.offset"]) == (b"in-x", b"3", b"7")
    assert int(h["ls.dlq.size"]) == 70_000
    assert h["ls.dlq.sha256"].decode() == hashlib.sha256(original).hexdigest()
    assert [x.value() for x in consume_all(s.kafka_bootstrap, s.flags_topic, 1)] == [b'{"flag":"fine"}']


def test_a_flag_too_large_for_any_topic_is_named_on_the_dead_letter_topic(kafka_settings):
    s = kafka_settings
    before = _counter(metrics.DEAD_LETTERS, "unpublishable")
    huge = b'{"reason":"' + b"r" * 50_000 + b'"}'
    pub = KafkaPublisher(s.kafka_client_config(**{"message.max.bytes": 20_000}), dead_letter_topic=s.dead_letter_topic)
    pub.publish([OutRecord(s.flags_topic, b"customer_id:c1", huge, [("ls.id", b"flag-123")])])

    (m,) = consume_all(s.kafka_bootstrap, s.dead_letter_topic, 1)
    h = _headers(m)
    assert h["ls.dlq.reason"] == b"unpublishable"
    assert (h["ls.dlq.output_topic"], h["ls.dlq.output_id"]) == (s.flags_topic.encode(), b"flag-123")
    assert int(h["ls.dlq.size"]) == len(huge) and m.key() == b"customer_id:c1"
    assert h["ls.dlq.sha256"].decode() == hashlib.sha256(huge).hexdigest()
    assert _counter(metrics.DEAD_LETTERS, "unpublishable") == before + 1


def test_when_even_the_minimal_record_is_refused_a_log_line_and_a_counter_and_the_batch_goes_on(kafka_settings, caplog):
    s = kafka_settings
    before = _counter(metrics.DEAD_LETTERS_UNPUBLISHABLE, s.dead_letter_topic)
    long = b"x" * 300  # every kept header at its 256-byte bound: the minimal record is over 1000 bytes
    headers: list[tuple[str, str | bytes | None]] = [(name, long) for name in ("ls.dlq.id", "ls.dlq.reason", "ls.dlq.topic", "ls.dlq.partition",
                                         "ls.dlq.offset", "ls.dlq.timestamp", "ls.dlq.size", "ls.dlq.sha256")]  # fmt: skip
    pub = KafkaPublisher(s.kafka_client_config(**{"message.max.bytes": 1000}), dead_letter_topic=s.dead_letter_topic)
    with caplog.at_level(logging.ERROR, logger="flows.last_resort"):
        pub.publish([OutRecord(s.dead_letter_topic, None, b"v" * 5000, headers),
                     OutRecord(s.flags_topic, b"c1", b"small", [("ls.id", b"f1")])])  # fmt: skip
    assert _counter(metrics.DEAD_LETTERS_UNPUBLISHABLE, s.dead_letter_topic) == before + 1
    assert any("unpublishable record dropped" in r.getMessage() for r in caplog.records)
    assert [x.value() for x in consume_all(s.kafka_bootstrap, s.flags_topic, 1)] == [b"small"]


def test_a_topic_limit_refusing_one_record_does_not_take_its_neighbours_with_it(kafka_settings):
    """Broker-side refusal (Apache Kafka enforces a topic's max.message.bytes; skipped where it does not)."""
    s = kafka_settings
    topic = f"small-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "2000"})]).values():
        f.result()
    probe = Producer({"bootstrap.servers": s.kafka_bootstrap})
    refused = []
    probe.produce(topic, b"p" * 5000, on_delivery=lambda err, _m: refused.append(err))
    probe.flush(30)
    if refused and refused[0] is None:
        pytest.skip("this broker does not enforce a topic's max.message.bytes")
    pub = KafkaPublisher(s.kafka_client_config(), dead_letter_topic=s.dead_letter_topic)
    small = [OutRecord(topic, b"k", f"small-{i}".encode(), [("ls.id", str(i).encode())]) for i in range(10)]
    pub.publish([*small[:5], OutRecord(topic, b"k", b"B" * 5000, [("ls.id", b"big")]), *small[5:]])
    got = consume_all(s.kafka_bootstrap, topic, 10, partitions=1)
    assert sorted(m.value() for m in got) == sorted(r.value for r in small)
    (m,) = consume_all(s.kafka_bootstrap, s.dead_letter_topic, 1)
    assert _headers(m)["ls.dlq.output_id"] == b"big"
