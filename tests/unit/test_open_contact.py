"""The 360 records who serves the customer now: the open contact per channel, its agent and queue."""

from __future__ import annotations

from livesignals import serde
from livesignals.contract import decode
from livesignals.errors import Origin
from operators.profile360.profile import CustomerState
from operators.profile360.update import apply_event
from tests.helpers import T0, event


def _apply(state: CustomerState, doc: dict, offset: int = 0) -> None:
    apply_event(state, decode(serde.dumps(doc), Origin("in", 0, offset), now_ms=T0 + 10**9))


def test_a_contact_with_an_agent_opens_and_an_outcome_closes_it():
    s = CustomerState("customer_id:c1")
    _apply(s, event("chat", t=T0, agent_id="a7", queue="billing", text="hi"))
    assert s.activity["open_contacts"] == {
        "chat": {"agent_id": "a7", "queue": "billing", "t": T0, "event_id": f"e-c1-{T0}-chat"}
    }
    _apply(s, event("call", t=T0 + 5, queue="delivery"), 1)  # waiting in a queue, no agent yet
    assert s.activity["open_contacts"]["phone"]["agent_id"] is None
    _apply(s, event("chat", t=T0 + 10, agent_id="a7", queue="billing", outcome="resolved"), 2)
    assert set(s.activity["open_contacts"]) == {"phone"}
    _apply(s, event("call", t=T0 + 20, agent_id="a8", queue="delivery", outcome="abandoned"), 3)
    assert "open_contacts" not in s.activity


def test_transfers_move_the_contact_and_late_events_do_not_override():
    s = CustomerState("customer_id:c1")
    _apply(s, event("chat", t=T0 + 100, agent_id="a1", queue="billing"))
    _apply(s, event("chat", t=T0 + 200, agent_id="a2", queue="retention", outcome="transferred"), 1)
    _apply(s, event("chat", t=T0 + 50, event_id="late", agent_id="a9", queue="x", outcome="resolved"), 2)
    assert s.activity["open_contacts"]["chat"]["agent_id"] == "a2"
    assert s.activity["open_contacts"]["chat"]["queue"] == "retention"


def test_agent_and_queue_follow_the_identifier_rules():
    bad = event("chat", agent_id="a\u200b1")
    try:
        decode(serde.dumps(bad), Origin("in", 0, 0), now_ms=T0)
    except Exception as exc:
        assert getattr(exc, "reason", None) == "bad_identifier"
    else:
        raise AssertionError("an agent id with a zero-width space was accepted")


def test_contacts_without_agent_or_queue_change_nothing():
    s = CustomerState("customer_id:c1")
    _apply(s, event("chat", text="hello"))
    assert "open_contacts" not in s.activity


def test_a_message_without_an_agent_keeps_the_serving_agent():
    """Outside review of #12: the customer writing again (``queue``, no ``agent_id``, as chat platforms send it)
    reset the assignment to "waiting unassigned", so every agent of the queue could read the customer."""
    s = CustomerState("customer_id:c1")
    _apply(s, event("chat", t=T0, agent_id="a8", queue="billing", direction="outbound"))
    _apply(s, event("chat", t=T0 + 10, queue="billing", direction="inbound", text="still there?"), 1)
    contact = s.activity["open_contacts"]["chat"]
    assert (contact["agent_id"], contact["queue"], contact["t"]) == ("a8", "billing", T0 + 10)
    _apply(s, event("chat", t=T0 + 20, queue="retention"), 2)  # moved to another queue: waiting there
    moved = s.activity["open_contacts"]["chat"]
    assert (moved["agent_id"], moved["queue"], moved["t"]) == (None, "retention", T0 + 20)
