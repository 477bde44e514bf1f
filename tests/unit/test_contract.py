"""The event contract: every channel decodes; every kind of bad input gets its reason."""

from __future__ import annotations

import fastjsonschema
import pytest

from livesignals import serde
from livesignals.contract import CHANNELS, EVENT_TYPES, decode, load_schema
from livesignals.errors import InvalidEvent, Origin, Reason
from tests.helpers import T0, event

O = Origin("in", 0, 0)


def reason_of(value: bytes | None, now_ms: int = T0, **kw) -> Reason:
    with pytest.raises(InvalidEvent) as info:
        decode(value, O, now_ms=now_ms, **kw)
    return info.value.reason


def test_every_published_schema_is_valid_json_schema():
    for name in ("event-v1.json", "flag-v1.json", "trigger-v1.json", "decision-v1.json"):
        fastjsonschema.compile(load_schema(name), formats={"date-time": lambda _: True})


def test_the_contract_covers_every_channel_of_the_digest():
    wanted = {
        "call",
        "chat",
        "email",
        "sms",
        "social",
        "survey",
        "web_event",
        "app_event",
        "order",
        "return",
        "delivery",
        "ticket",
        "loyalty",
        "campaign",
        "profile_update",
        "consent",
        "cancellation",
        "offer_response",
    }
    assert wanted <= EVENT_TYPES
    assert {"phone", "chat", "email", "sms", "social", "web", "app", "store"} <= CHANNELS


def test_a_valid_event_decodes_with_its_customer_key_and_time():
    e = decode(serde.dumps(event("order", "c9", order_id="o1", amount=12.5)), O, now_ms=T0)
    assert (e.type, e.customer_key, e.event_time_ms, e.payload["amount"]) == (
        "order",
        "customer_id:c9",
        T0,
        12.5,
    )


def test_rfc3339_event_time_is_accepted():
    doc = event()
    doc["event_time"] = "2026-01-01T01:00:00+01:00"
    assert decode(serde.dumps(doc), O, now_ms=T0).event_time_ms == T0


@pytest.mark.parametrize(
    ("leap", "second_before"),
    [
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59Z"),
        ("2016-12-31T23:59:60.5Z", "2016-12-31T23:59:59Z"),
        ("2017-01-01T01:29:60+01:30", "2017-01-01T01:29:59+01:30"),
    ],
)
def test_a_leap_second_is_the_last_millisecond_of_its_minute(leap, second_before):
    """Issue #9: valid RFC 3339, it was dead-lettered as bad_time; epoch ms cannot name it."""
    times = []
    for text in (leap, second_before, "2017-01-01T00:00:00Z"):
        doc = event()
        doc["event_time"] = text
        times.append(decode(serde.dumps(doc), O, now_ms=T0 + 10**12).event_time_ms)
    assert times[0] == times[1] + 999 and times[0] < times[2]


@pytest.mark.parametrize("text", ["2016-12-31T23:58:60Z", "2016-12-31T23:59:61Z"])
def test_a_second_60_outside_minute_59_is_still_a_bad_time(text):
    assert reason_of(serde.dumps({**event(), "event_time": text}), now_ms=T0 + 10**12) == Reason.BAD_TIME


def test_anonymous_events_key_by_the_strongest_identifier():
    doc = event()
    doc["customer"] = {"cookie_id": "k1", "device_id": "d1"}
    assert decode(serde.dumps(doc), O, now_ms=T0).customer_key == "device_id:d1"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xfe not utf8", Reason.NOT_JSON),
        (b"{broken", Reason.NOT_JSON),
        (None, Reason.NOT_JSON),
        (b"[1, 2]", Reason.NOT_AN_OBJECT),
        (serde.dumps({**event(), "type": "teleport"}), Reason.UNKNOWN_TYPE),
        (serde.dumps({**event(), "channel": "pigeon"}), Reason.UNKNOWN_TYPE),
        (serde.dumps({**event(), "customer": {}}), Reason.NO_CUSTOMER),
        (serde.dumps({k: v for k, v in event().items() if k != "customer"}), Reason.NO_CUSTOMER),
        (serde.dumps({**event(), "schema_version": 2}), Reason.UNSUPPORTED_VERSION),
        (serde.dumps(event("order", order_id="o1", amount="lots")), Reason.SCHEMA),
        (serde.dumps(event("survey", kind="csat")), Reason.SCHEMA),
        (serde.dumps({**event(), "event_time": "yesterday"}), Reason.BAD_TIME),
        (serde.dumps({**event(), "event_time": "2026-01-01T00:00:00"}), Reason.BAD_TIME),
        (serde.dumps({**event(), "surprise": 1}), Reason.SCHEMA),
        (serde.dumps(event(t=T0 + 2 * 86_400_000)), Reason.FUTURE_TIME),
    ],
)
def test_bad_input_gets_a_precise_reason(value, reason):
    assert reason_of(value) == reason


def test_oversized_messages_are_rejected_before_parsing():
    big = serde.dumps(event(text="x" * 5000))
    assert reason_of(big, max_bytes=1000) == Reason.OVERSIZED


def test_schema_errors_name_the_field():
    with pytest.raises(InvalidEvent) as info:
        decode(serde.dumps(event("order", order_id="o1", amount="lots")), O, now_ms=T0)
    assert "payload.amount" in info.value.detail


@pytest.mark.parametrize("value", [None, 1, ["r1"], {"id": "r1"}])
def test_a_request_id_that_is_not_a_string_is_rejected_whatever_the_event_type(value):
    """``request_id`` is an id (identifier rules) in every payload but typed by the schema only in ``erase``:
    on bf662ce a chat with ``"request_id": null`` raised AttributeError out of decode (not total)."""
    raw = serde.dumps(event("chat", text="hi", request_id=value))
    with pytest.raises(InvalidEvent) as info:
        decode(raw, Origin("in", 0, 0), now_ms=T0 + 10**9)
    assert (info.value.reason, info.value.detail) == ("schema", "payload.request_id: must be string")
