"""Every kind of bad input lands in the dead-letter topic; good events around it apply."""

from __future__ import annotations

import hashlib

import pytest
from confluent_kafka import Producer

from app.engine_process import start_engine, stop_process
from livesignals import serde
from livesignals.errors import Reason
from livesignals.partitioner import PRODUCER_CONFIG
from tests.helpers import T0, consume_all, event, produce, profiles, wait_committed

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

BAD = {
    Reason.NOT_JSON: b"\x00\x01 binary garbage",
    Reason.NOT_AN_OBJECT: b'"just a string"',
    Reason.SCHEMA: serde.dumps(event("order", "c1", order_id="o1", amount="free")),
    Reason.UNKNOWN_TYPE: serde.dumps({**event(customer="c1"), "type": "telepathy"}),
    Reason.NO_CUSTOMER: serde.dumps({**event(customer="c1"), "customer": {}}),
    Reason.OVERSIZED: serde.dumps(event("chat", "c1", text="blah " * 1000)),
    Reason.FUTURE_TIME: serde.dumps(event("chat", "c1", t=4_102_444_800_000)),  # 2100
    Reason.BAD_TIME: serde.dumps({**event(customer="c1"), "event_time": "last tuesday"}),
}


def test_bad_inputs_are_dead_lettered_with_reason_and_origin(kafka_settings):
    s = kafka_settings.replace(max_event_bytes=2000)
    topic = s.input_topics[0]
    values: list[tuple[bytes | None, bytes]] = []
    for i, bad in enumerate(BAD.values()):
        values.append((b"customer_id:c1", serde.dumps(event("chat", "c1", T0 + 2 * i))))
        values.append((b"customer_id:c1", bad))
    values.append((b"customer_id:c1", serde.dumps(event("chat", "c1", T0 + 99))))
    produce(s.kafka_bootstrap, topic, values)

    engine = start_engine(s)
    try:
        wait_committed(s, len(values), engine)
    finally:
        stop_process(engine)

    dead = consume_all(s.kafka_bootstrap, s.dead_letter_topic, len(BAD))
    assert len(dead) == len(BAD)
    by_reason = {dict(m.headers())["ls.dlq.reason"].decode(): m for m in dead}
    assert set(by_reason) == {r.value for r in BAD}
    for reason, original in BAD.items():
        m = by_reason[reason.value]
        h = dict(m.headers())
        assert m.value() == original, "the original bytes travel untouched"
        assert h["ls.dlq.topic"].decode() == topic
        assert int(h["ls.dlq.offset"]) == [v for _, v in values].index(original)
        assert h["ls.dlq.detail"]
    (profile,) = profiles(s).values()
    assert serde.loads(profile)["events"] == len(BAD) + 1, "every good event was applied"


def test_the_reviews_1mb_message_is_dead_lettered_with_a_prefix_and_the_flow_goes_on(kafka_settings, tmp_path):
    """A ~1,000,200-byte message (over the engine's producer limit) used to stop the partition for good."""
    s = kafka_settings
    topic = s.input_topics[0]
    big = _big_message(1_000_200)
    p = Producer({"bootstrap.servers": s.kafka_bootstrap, "message.max.bytes": 2_000_000, **PRODUCER_CONFIG})
    for value in (serde.dumps(event("chat", "c1", T0)), big, serde.dumps(event("chat", "c1", T0 + 1))):
        p.produce(topic, value, b"customer_id:c1")
    assert p.flush(30) == 0

    run_once_until_committed(s, 3)
    (m,) = consume_all(s.kafka_bootstrap, s.dead_letter_topic, 1)
    h = dict(m.headers())
    assert h["ls.dlq.reason"] == b"oversized" and m.value() == big[:65_536]
    assert int(h["ls.dlq.size"]) == 1_000_200 and h["ls.dlq.sha256"].decode() == hashlib.sha256(big).hexdigest()
    (profile,) = profiles(s).values()
    assert serde.loads(profile)["events"] == 2


def test_a_dead_letter_the_engines_producer_refuses_is_replaced_by_its_minimal_record(
    kafka_settings, tmp_path, monkeypatch
):
    """The engine's producer accepts only 20,000 bytes: the dead letter's 64 KiB prefix cannot go out."""
    s = kafka_settings
    config = tmp_path / "ls.toml"
    config.write_text('[kafka_config]\n"message.max.bytes" = "20000"\n')
    monkeypatch.setenv("LIVESIGNALS_CONFIG", str(config))
    big = _big_message(70_000)
    produce(s.kafka_bootstrap, s.input_topics[0],
            [(b"customer_id:c1", big), (b"customer_id:c1", serde.dumps(event("chat", "c1", T0)))])  # fmt: skip

    run_once_until_committed(s, 2)
    (m,) = consume_all(s.kafka_bootstrap, s.dead_letter_topic, 1)
    h = dict(m.headers())
    assert (h["ls.dlq.reason"], h["ls.dlq.minimal"]) == (b"oversized", b"MSG_SIZE_TOO_LARGE")
    assert not m.value() and int(h["ls.dlq.size"]) == 70_000
    assert h["ls.dlq.sha256"].decode() == hashlib.sha256(big).hexdigest()
    (profile,) = profiles(s).values()
    assert serde.loads(profile)["events"] == 1


def _big_message(size: int) -> bytes:
    head = serde.dumps(event("chat", "c1", T0 + 5, text=""))[:-3] + b'"'
    return head + b"x" * (size - len(head) - 3) + b'"}}'


def run_once_until_committed(s, n: int) -> None:
    """Start the engine, wait until ``n`` input messages are committed, stop it: it never exited on its own."""
    engine = start_engine(s)
    try:
        wait_committed(s, n, engine)
        assert engine.poll() is None
    finally:
        stop_process(engine)
