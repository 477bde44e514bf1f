"""A linked identifier's flags are not the customer's, everywhere alike (break-test 12c, C15): they were
pushed live on the customer's card, but absent from its 360 and ``/flags``, and a verdict on them was a 422.
After C6/C16 (a contact on a linked identifier grants nothing of the customer), the one rule is: the card,
the 360, ``/flags``, push and feedback show the customer's own flags only. Real Redis, a real HTTP server."""

from __future__ import annotations

import time

import httpx
import pytest

from gateway import positions
from livesignals import documents, serde
from tests.gateway.conftest import LiveServer, NullProducer, now_ms
from tests.gateway.test_push import A1, add_flag, flags_of, follow
from tests.helpers import event


@pytest.fixture
def server(world):
    with LiveServer(world.settings, world.client, NullProducer()) as s:
        yield s


def _linked_flag(world) -> tuple[str, str]:
    """c3 logs in on device d9, which chats anonymously about a refund three times (before and after the
    login): d9's profile raises repeat_contact. c3's own chat is a1's. Returns (the streams' position before
    any of it, d9's flag id)."""
    start = positions.stream_position(world.client, world.keys.flags_stream, world.keys.updates_stream)
    t = now_ms() - 30_000
    anon = {"customer": {"device_id": "d9"}}
    world.apply(
        {**event("chat", "x", t, event_id="anon0", queue="billing", topic="refund", text="hi"), **anon},
        {**event("web_event", "c3", t + 10, event_id="login", action="login"),
         "customer": {"customer_id": "c3", "device_id": "d9"}},
        *[{**event("chat", "x", t + 20 + i, event_id=f"anon{i + 1}", queue="billing", topic="refund"), **anon}
          for i in range(3)],
        event("chat", "c3", t + 30, event_id="own", agent_id="a1", queue="billing", text="it is me"),
    )  # fmt: skip
    flags = serde.loads(documents.decode(world.client.get(world.keys.profile("device_id:d9"))))["flags"]
    assert "repeat_contact" in flags, flags  # the linked identifier did raise a flag
    return start, flags["repeat_contact"]["id"]


def test_a_linked_identifiers_flag_is_in_neither_the_360_nor_flags_nor_push_and_a_verdict_on_it_is_422(world, server):
    start, linked_flag = _linked_flag(world)
    with httpx.Client(base_url=server.url) as http:
        card = http.get("/v1/customers/c3?timeline=50", headers=A1)
        assert card.status_code == 200, card.text
        assert card.json()["identity"]["merged"] == ["device_id:d9"]  # linked and merged into the 360
        assert linked_flag not in card.text  # ... but its flags are not the customer's
        flags = http.get("/v1/customers/c3/flags", headers=A1)
        assert flags.status_code == 200 and linked_flag not in flags.text
        verdict = http.post("/v1/customers/c3/feedback", headers={**A1, "Idempotency-Key": "lf-1"},
                            json={"target": "flag", "target_id": linked_flag, "verdict": "relevant"})  # fmt: skip
        assert verdict.status_code == 422, verdict.text
    conn = follow(server, "c3", last_id=start)  # a replay from before d9's flag was raised, then live
    assert conn.status == 200
    add_flag(world, "device_id:d9", "live", 0)  # live: a linked identifier's flag
    add_flag(world, "customer_id:c3", "own", 0)  # live: the customer's own, after both
    deadline = time.time() + 15
    while not flags_of(conn.events) and time.time() < deadline:
        conn.wait_for(len(conn.events) + 1, timeout=1.0)
    assert flags_of(conn.events) == [("customer_id:c3", "f-own-0")], conn.events  # the first flag: its own
    conn.close()
