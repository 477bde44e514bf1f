"""A scripted journey through real Kafka and Redis, read back as the agent's 360.

Anonymous web visit (device only) -> login (customer + device) -> cart left
-> complaint on social -> phone call 12 minutes later.
"""

from __future__ import annotations

import time

import pytest

from state.connection import connect
from state.keys import Keys
from state.reader import read_360
from tests.helpers import event, run_through_kafka

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
MIN = 60_000


def journey(t0: int) -> list[dict]:
    anon = {"device_id": "d-77"}
    both = {"customer_id": "c-77", "device_id": "d-77"}
    steps = [
        ({**event("web_event", t=t0, action="page_view", url="/phones"), "customer": anon}),
        ({**event("web_event", t=t0 + MIN, action="product_view", product_id="p-9"), "customer": anon}),
        ({**event("app_event", t=t0 + 3 * MIN, action="login"), "customer": both}),
        ({**event("app_event", t=t0 + 4 * MIN, action="add_to_cart", product_id="p-9"), "customer": both}),
        event("social", "c-77", t0 + 60 * MIN, text="Checkout keeps failing, I can't pay!", topic="payment",
              outcome="unresolved"),
        event("call", "c-77", t0 + 72 * MIN, direction="inbound"),
    ]  # fmt: skip
    for i, e in enumerate(steps):
        e["event_id"] = f"j-{i}"
    return steps


def test_the_agent_sees_the_whole_journey_when_the_customer_calls(kafka_settings):
    t0 = int(time.time() * 1000) - 90 * MIN
    steps = journey(t0)
    run_through_kafka(kafka_settings, steps)

    view = read_360(connect(kafka_settings), Keys(kafka_settings.key_prefix), "customer_id:c-77",
                    now_ms=t0 + 73 * MIN, channel="phone")  # fmt: skip

    # identity: the device merged, the merge recorded
    assert view["identity"]["ids"]["device_id"] == ["d-77"]
    assert view["identity"]["merged"] == ["device_id:d-77"]
    assert view["identity"]["merges"][0] == {"id": "device_id:d-77", "t": t0 + 3 * MIN, "event": "j-2"}
    # timeline: every step, anonymous ones included, newest first
    assert [e["id"] for e in view["timeline"]] == ["j-5", "j-4", "j-3", "j-2", "j-1", "j-0"]
    assert view["timeline"][1]["s"].startswith("inbound social about payment: Checkout keeps failing")
    # present: context carried from social, and why now
    carried = view["present"]["context_carried"]
    assert (carried["channel"], carried["minutes_ago"], carried["topic"]) == ("social", 13, "payment")
    assert "context_carried" in view["flags"]
    reasons = [r["reason"] for r in view["present"]["reasons"]]
    assert reasons[:2] == ["unresolved_contact", "abandoned_cart"]
    assert view["present"]["why_now"]["detail"] == "unresolved social contact about payment 13 min ago"
    # activity, history, value, windows, future slots
    assert view["activity"]["cart"]["items"] == ["p-9"]
    assert view["history"]["by_channel"] == {"web": 2, "app": 2, "social": 1, "phone": 1}
    assert view["windows"]["24h"]["channels"] == 4 and view["windows"]["1h"]["contacts"] == 2
    assert view["value"]["frequency"] == 0 and view["value"]["lifetime_value"] == 0.0
    assert view["past"]["contacts"] == 2
    assert set(view["future"]) == {"churn", "negotiation", "upsell", "mood", "next_best_actions"}


def test_a_shared_device_merges_nobody(kafka_settings):
    t0 = int(time.time() * 1000) - 60 * MIN
    shared = {"device_id": "kiosk-1"}
    steps = [
        {**event("web_event", t=t0, action="page_view"), "customer": shared, "event_id": "s-0"},
        {**event("app_event", t=t0 + MIN, action="login"), "customer": {"customer_id": "a", **shared},
         "event_id": "s-1"},
        {**event("app_event", t=t0 + 2 * MIN, action="login"), "customer": {"customer_id": "b", **shared},
         "event_id": "s-2"},
    ]  # fmt: skip
    run_through_kafka(kafka_settings, steps)
    r, keys = connect(kafka_settings), Keys(kafka_settings.key_prefix)
    for who in ("a", "b"):
        view = read_360(r, keys, f"customer_id:{who}", now_ms=t0 + 3 * MIN)
        assert view["identity"]["merged"] == []
        assert view["identity"]["shared_identifiers"] == ["device_id:kiosk-1"]
        assert [e["id"] for e in view["timeline"]] == [f"s-{1 if who == 'a' else 2}"]
