"""Every kind of bad input lands in the dead-letter topic; good events around it apply."""

from __future__ import annotations

import pytest

from app.engine_process import start_engine, stop_process
from livesignals import serde
from livesignals.errors import Reason
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
        values.append((b"c1", serde.dumps(event("chat", "c1", T0 + 2 * i))))
        values.append((b"c1", bad))
    values.append((b"c1", serde.dumps(event("chat", "c1", T0 + 99))))
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
