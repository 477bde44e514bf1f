"""Customer state: how events fold in, persistence mapping, replay detection."""

from __future__ import annotations

import pickle

from livesignals import serde
from livesignals.contract import decode
from livesignals.errors import Origin
from operators.profile import MAX_RECENT_CONTACTS, CustomerState, apply_event
from tests.helpers import T0, event


def ev(doc, offset=0, partition=0):
    return decode(serde.dumps(doc), Origin("in", partition, offset), now_ms=T0 + 10**9)


def test_counts_spend_and_last_touch_per_channel():
    s = CustomerState("customer_id:c1")
    docs = [
        event("order", t=T0, order_id="o1", amount=30.0),
        event("order", t=T0 + 5, order_id="o2", amount=20.0, status="cancelled"),
        event("return", t=T0 + 9, channel="store", order_id="o1", amount=30.0),
        event("chat", t=T0 + 7, topic="delivery"),
    ]
    for i, d in enumerate(docs):
        apply_event(s, ev(d, i))
    assert (s.events, s.orders, s.spend, s.returns, s.refunded) == (4, 1, 30.0, 1, 30.0)
    assert s.counts_by_type == {"order": 2, "return": 1, "chat": 1}
    assert s.counts_by_channel == {"web": 2, "store": 1, "chat": 1}
    assert s.last_by_channel["chat"]["topic"] == "delivery"
    assert (s.first_seen_ms, s.last_seen_ms, s.last_order_ms) == (T0, T0 + 9, T0)


def test_an_older_event_does_not_replace_the_last_touch_of_its_channel():
    s = CustomerState("customer_id:c1")
    apply_event(s, ev(event("chat", t=T0 + 100, topic="new"), 0))
    apply_event(s, ev(event("chat", t=T0, topic="old"), 1))
    assert s.last_by_channel["chat"]["topic"] == "new"


def test_recent_contacts_are_bounded_and_only_inbound():
    s = CustomerState("customer_id:c1")
    for i in range(MAX_RECENT_CONTACTS + 5):
        apply_event(s, ev(event("call", t=T0 + i), i))
    apply_event(s, ev(event("email", t=T0 + 999, direction="outbound"), 99))
    assert len(s.recent_contacts) == MAX_RECENT_CONTACTS
    assert s.recent_contacts[-1][0] == T0 + MAX_RECENT_CONTACTS + 4


def test_applied_offsets_detect_replays_per_partition():
    s = CustomerState("customer_id:c1")
    apply_event(s, ev(event(), offset=10, partition=2))
    assert s.already_applied(ev(event(), offset=10, partition=2))
    assert s.already_applied(ev(event(), offset=3, partition=2))
    assert not s.already_applied(ev(event(), offset=11, partition=2))
    assert not s.already_applied(ev(event(), offset=3, partition=1))


def test_redis_fields_round_trip_and_pickle():
    s = CustomerState("customer_id:c1")
    apply_event(s, ev(event("order", order_id="o1", amount=9.99), 4))
    apply_event(s, ev(event("consent", purpose="marketing", granted=False), 5))
    fields: dict[bytes | str, bytes | str] = {
        k.encode(): v.encode() for k, v in s.to_fields().items()
    }
    assert CustomerState.from_fields("customer_id:c1", fields) == s
    assert pickle.loads(pickle.dumps(s)) == s
