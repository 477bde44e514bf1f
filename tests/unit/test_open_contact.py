"""The 360 records who serves the customer now: the open contact per channel, its agent and queue."""

from __future__ import annotations

from livesignals import serde
from livesignals.contract import decode
from livesignals.errors import Origin
from operators.profile360 import update
from operators.profile360.profile import CustomerState
from operators.profile360.update import apply_event
from tests.helpers import T0, event


def _apply(state: CustomerState, doc: dict, offset: int = 0) -> None:
    apply_event(state, decode(serde.dumps(doc), Origin("in", 0, offset), now_ms=T0 + 10**9))


def test_a_contact_with_an_agent_opens_and_an_outcome_closes_it():
    s = CustomerState("customer_id:c1")
    _apply(s, event("chat", t=T0, agent_id="a7", queue="billing", text="hi"))
    assert s.activity["open_contacts"] == {
        "chat": {"agent_id": "a7", "queue": "billing", "t": T0, "event_id": f"e-c1-{T0}-chat", "since": T0}
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


def test_an_outcome_ends_its_contact_whatever_the_order_of_nearby_timestamps():
    """Break-test 12b, B10: the agent's "resolved" (desktop clock) stamped half a second before the customer's
    last "thanks" (chat platform clock) was dropped as older than the contact, and the agent kept the customer
    (full PII) for 4 h. In every arrival order of the contact's events, the outcome ends it."""
    import itertools

    docs = [
        event("chat", t=T0, event_id="hi", agent_id="a7", queue="billing", text="my bill is wrong"),
        event("chat", t=T0 + 2000, event_id="bye", queue="billing", text="ok thanks bye"),
        event("chat", t=T0 + 1500, event_id="end", agent_id="a7", queue="billing", outcome="resolved"),
    ]
    for order in itertools.permutations(docs):
        s = CustomerState("customer_id:c1")
        for i, doc in enumerate(order):
            _apply(s, doc, i)
        assert "open_contacts" not in s.activity, [d["event_id"] for d in order]
        assert s.activity["contacts_ended"]["chat"] == {"agent_id": "a7", "queue": "billing", "t": T0 + 1500}


def test_after_an_end_a_new_contact_opens_and_an_earlier_contacts_outcome_ends_nothing():
    grace = update.CONTACT_END_GRACE_MS
    s = CustomerState("customer_id:c1")
    _apply(s, event("chat", t=T0, agent_id="a7", queue="billing", text="hi"))
    _apply(s, event("chat", t=T0 + 100, agent_id="a7", queue="billing", outcome="resolved"), 1)
    t1 = T0 + 100 + 10 * grace
    _apply(s, event("chat", t=t1, agent_id="a8", queue="billing", text="new question"), 2)
    assert s.activity["open_contacts"]["chat"]["agent_id"] == "a8"
    # late outcomes of earlier contacts: another agent's, and one from long before this contact opened
    _apply(s, event("chat", t=T0 + 150, event_id="old1", agent_id="a7", queue="billing", outcome="resolved"), 3)
    _apply(s, event("chat", t=T0 + 150, event_id="old2", agent_id="a8", queue="billing", outcome="resolved"), 4)
    assert s.activity["open_contacts"]["chat"]["agent_id"] == "a8"
    _apply(s, event("chat", t=t1 + 50, event_id="end", agent_id="a8", queue="billing", outcome="resolved"), 5)
    assert "open_contacts" not in s.activity
    # the same agent and queue again: within the grace a tail of the ended contact, past it a new contact
    later = t1 + 50 + grace + 1
    _apply(s, event("chat", t=later - 2, event_id="tail", queue="billing", text="thanks"), 6)
    assert "open_contacts" not in s.activity
    _apply(s, event("chat", t=later, event_id="again", agent_id="a8", queue="billing", text="one more thing"), 7)
    assert s.activity["open_contacts"]["chat"]["since"] == later


def test_an_event_older_than_the_end_never_reopens_the_channel():
    s = CustomerState("customer_id:c1")
    _apply(s, event("chat", t=T0 + 1000, agent_id="a7", queue="billing", outcome="resolved"))
    _apply(s, event("chat", t=T0 + 10, event_id="stale", agent_id="a9", queue="sales", text="hello?"), 1)
    assert "open_contacts" not in s.activity


def test_an_outcome_naming_neither_agent_nor_queue_ends_the_contact():
    """Break-test 12c, C11: ``{"direction": "outbound", "outcome": "resolved"}`` was ignored for access."""
    s = CustomerState("customer_id:c1")
    _apply(s, event("chat", t=T0, agent_id="a7", queue="billing", text="hi"))
    _apply(s, event("chat", t=T0 + 10, direction="outbound", outcome="resolved"), 1)
    assert "open_contacts" not in s.activity
    # in the other order as well (the outcome stamped before the customer's last message)
    s = CustomerState("customer_id:c1")
    _apply(s, event("chat", t=T0, agent_id="a7", queue="billing", text="hi"))
    _apply(s, event("chat", t=T0 + 20, queue="billing", text="thanks"), 1)
    _apply(s, event("chat", t=T0 + 10, direction="outbound", outcome="resolved"), 2)
    assert "open_contacts" not in s.activity


def test_a_message_long_after_an_unreported_end_opens_a_new_unassigned_contact():
    """Break-test 12c, C10: a customer writing again hours later (no agent named) went back to whoever served
    them then, hidden from the queue."""
    s = CustomerState("customer_id:c1")
    _apply(s, event("chat", t=T0, agent_id="a7", queue="billing", text="hi"))  # never ended
    later = T0 + update.CONTACT_IDLE_MS + 1
    _apply(s, event("chat", t=later, queue="billing", text="me again"), 1)
    contact = s.activity["open_contacts"]["chat"]
    assert (contact["agent_id"], contact["queue"], contact["since"]) == (None, "billing", later)
