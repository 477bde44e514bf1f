"""Customer facts: how events fold into the 360's sections, persistence, replay detection."""

from __future__ import annotations

import base64
import hashlib
import pickle

from livesignals import serde
from livesignals.contract import decode
from livesignals.errors import Origin
from operators.profile360.profile import CustomerState, fingerprint
from operators.profile360.update import MAX_OPEN_ITEMS, MAX_RECENT_CONTACTS, apply_event
from tests.helpers import T0, event


def ev(doc, offset=0, partition=0):
    return decode(serde.dumps(doc), Origin("in", partition, offset), now_ms=T0 + 10**9)


def fold(docs, state=None):
    state = state or CustomerState("customer_id:c1")
    for i, d in enumerate(docs):
        apply_event(state, ev(d, i))
    return state


def test_value_history_and_touchpoints():
    s = fold([
        event("order", t=T0, order_id="o1", amount=30.0, items=[{"product_id": "p1"}]),
        event("order", t=T0 + 5, order_id="o2", amount=20.0),
        event("order", t=T0 + 6, order_id="o2", amount=20.0, status="cancelled"),
        event("return", t=T0 + 9, channel="store", order_id="o1", amount=30.0),
        event("chat", t=T0 + 7, topic="delivery", outcome="resolved"),
    ])  # fmt: skip
    assert (s.value["orders"], s.value["spend"], s.value["returns"], s.value["refunded"]) == (1, 30.0, 1, 30.0)
    assert s.value["products"] == ["p1"]
    assert s.history["by_type"] == {"order": 3, "return": 1, "chat": 1}
    assert s.history["touch"]["chat"]["topic"] == "delivery"
    assert s.history["touch"]["chat"]["outcome"] == "resolved"
    assert (s.identity["first_seen"], s.identity["last_seen"]) == (T0, T0 + 9)


def test_current_activity_opens_and_closes():
    s = fold([
        event("order", t=T0, order_id="o1", amount=10.0),
        event("delivery", t=T0 + 1, order_id="o1", status="delayed"),
        event("ticket", t=T0 + 2, channel="backoffice", case_id="k1", status="opened", topic="late parcel"),
        event("web_event", t=T0 + 3, action="add_to_cart", product_id="p9"),
        event("web_event", t=T0 + 4, action="error", error_code="PAY-402"),
    ])  # fmt: skip
    a = s.activity
    assert list(a["open_orders"]) == ["o1"] and a["deliveries"]["o1"]["status"] == "delayed"
    assert a["open_cases"]["k1"]["topic"] == "late parcel"
    assert a["cart"]["items"] == ["p9"] and a["errors"] == [[T0 + 4, "PAY-402", "web"]]
    fold([
        event("delivery", t=T0 + 10, order_id="o1", status="delivered"),
        event("ticket", t=T0 + 11, channel="backoffice", case_id="k1", status="resolved"),
        event("order", t=T0 + 12, order_id="o2", amount=5.0),
    ], s)  # fmt: skip
    assert "o1" not in a["open_orders"] and a["deliveries"] == {} and a["open_cases"] == {}
    assert "cart" not in a, "an order empties the cart"
    assert s.history["cases"] == {"opened": 1, "resolved": 1}


def test_an_older_event_does_not_replace_the_last_touch_of_its_channel():
    s = fold([event("chat", t=T0 + 100, topic="new"), event("chat", t=T0, topic="old")])
    assert s.history["touch"]["chat"]["topic"] == "new"


def test_lists_and_maps_are_bounded():
    s = fold([event("call", t=T0 + i) for i in range(MAX_RECENT_CONTACTS + 5)])
    s = fold([event("email", t=T0 + 999, direction="outbound")], s)
    assert len(s.recent_contacts) == MAX_RECENT_CONTACTS
    s = fold([event("order", t=T0 + i, order_id=f"o{i}", amount=1.0) for i in range(MAX_OPEN_ITEMS + 3)])
    assert len(s.activity["open_orders"]) == MAX_OPEN_ITEMS and "o0" not in s.activity["open_orders"]


def test_identity_links_weaker_identifiers_once_and_records_the_merge():
    doc = event("app_event", t=T0, action="login")
    doc["customer"] = {"customer_id": "c1", "device_id": "d1"}
    s = fold([doc, {**doc, "event_id": "again", "event_time": T0 + 5}])
    assert s.identity["linked"] == ["device_id:d1"]
    assert s.identity["merges"] == [{"id": "device_id:d1", "t": T0, "event": doc["event_id"]}]
    assert s.new_links == ["device_id:d1"]


def test_every_event_gets_a_timeline_entry_and_window_counts():
    s = fold([event("chat", t=T0, text="hello"), event("order", t=T0 + 1, order_id="o1", amount=3.0)])
    assert [serde.loads(m)["type"] for _, m in s.new_timeline] == ["chat", "order"]
    assert s.windows.query("events", "1h", T0 + 1) == 2
    assert s.windows.query("spend", "24h", T0 + 1)[1] == 3.0


def test_applied_offsets_detect_replays_per_partition():
    s = CustomerState("customer_id:c1")
    apply_event(s, ev(event(), offset=10, partition=2))
    assert s.already_applied(ev(event(), offset=10, partition=2))
    assert s.already_applied(ev(event(), offset=3, partition=2))
    assert not s.already_applied(ev(event(), offset=11, partition=2))
    assert not s.already_applied(ev(event(), offset=3, partition=1))


def test_redis_fields_round_trip_and_pickle():
    s = fold([
        event("order", order_id="o1", amount=9.99),
        event("consent", t=T0 + 1, purpose="marketing", granted=False),
        event("web_event", t=T0 + 2, action="product_view", product_id="p1", session_id="s1"),
    ])  # fmt: skip
    assert CustomerState.from_bytes("customer_id:c1", s.to_bytes()) == s
    assert pickle.loads(pickle.dumps(s)) == s


def test_a_stored_value_that_holds_no_profile_is_refused_and_only_a_missing_key_is_a_new_customer():
    """Outside review of #16, A4: an empty value was read as a new customer (its history then overwritten),
    a section of the wrong type failed each event later with a TypeError, a ``windows`` of the wrong shape
    raised a TypeError or KeyError the store did not catch. Each is a ValueError now (an unreadable profile)."""
    import pytest

    assert CustomerState.from_bytes("customer_id:c1", None) == CustomerState("customer_id:c1")
    for bad in (b"", b'{"events": "3"}', b'{"events": 2.5}', b'{"events": false}', b'{"identity": []}',
                b'{"recent_ids": {}}', b'{"flags": null}', b'{"windows": [1]}', b'{"windows": {"n": 1}}',
                b'{"windows": {"b": {"1h": {"x": {}}}, "n": 1}}', b'{"windows": "w"}'):  # fmt: skip
        with pytest.raises(ValueError):
            CustomerState.from_bytes("customer_id:c1", bad)
    s = CustomerState("customer_id:c1", events=2, recent_ids=["a"], recent_contacts=[[1, "chat", "t", "e"]])
    assert CustomerState.from_bytes("customer_id:c1", s.to_bytes()) == s
    assert CustomerState.from_bytes("customer_id:c1", b"{}") == CustomerState("customer_id:c1")


def test_fingerprint_is_the_url_safe_base64_of_the_ids_blake2b():
    """The inlined encoder spells every fingerprint as ``base64.urlsafe_b64encode`` does (stored in profiles)."""
    ids = [f"e{i}" for i in range(3000)] + ["", "x" * 128, "évènement-1", "\u3164"]
    expected = [base64.urlsafe_b64encode(hashlib.blake2b(i.encode(), digest_size=9).digest()).decode() for i in ids]
    assert [fingerprint(i) for i in ids] == expected
    assert any("-" in f for f in expected) and any("_" in f for f in expected)
