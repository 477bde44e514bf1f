"""A cookie or device someone claimed (a customer logged in with it) is part of that customer's 360: its own
profile's contacts grant nobody, whichever identifier leads to it and however many claimed it (break-test 12f,
F2: (a) a chat carrying the claimed device plus a fresh cookie opened the device's profile through the cookie;
(b) a copied cookie linked to another device became "shared", so it resolved to itself, and a chat on it
opened it; (c) a queue's followers were pushed the claimed device's entries). Real engine, real Redis."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest

from gateway import positions
from livesignals import serde
from state import reader
from tests.gateway.conftest import LiveServer, NullProducer, bearer, now_ms, token
from tests.gateway.test_bola import ROUTES, call
from tests.gateway.test_push import add_flag, flags_of, follow
from tests.helpers import event

A7 = bearer(token("a7", queues=("billing",)))
SUP = bearer(token("s1", role="supervisor", queues=("billing",)))


def _victim_device(world, t: int) -> None:
    """v1 used the app on device dv1 anonymously, logged in on it, and used it again without logging in."""
    world.apply(
        {**event("web_event", "x", t, event_id="dv-before", action="search", url="https://shop.example/s?q=before"),
         "customer": {"device_id": "dv1"}},
        {**event("web_event", "v1", t + 1, event_id="v1-login", action="login"),
         "customer": {"customer_id": "v1", "device_id": "dv1"}},
        {**event("web_event", "x", t + 2, event_id="dv-after", action="search", url="https://shop.example/s?q=after"),
         "customer": {"device_id": "dv1"}},
    )  # fmt: skip


def _refused_everywhere(client, key: str, headers) -> None:
    for method, path, _ in ROUTES:
        r = call(client, method, path, key, headers)
        assert r.status_code == 403, (key, path, r.status_code, r.text)
        assert "dv-before" not in r.text and "dv-after" not in r.text


def test_a_claimed_device_does_not_open_through_a_cookie_it_claimed(world, client):
    t = now_ms() - 30_000
    _victim_device(world, t)
    world.apply(  # the outsider: a chat carrying the victim's device id and a fresh cookie, waiting in billing
        {**event("chat", "x", t + 3, event_id="evil", queue="billing", text="hello, I need help"),
         "customer": {"device_id": "dv1", "cookie_id": "ck-evil1"}},
    )  # fmt: skip
    assert reader.resolve(world.client, world.keys, "cookie_id:ck-evil1") == "device_id:dv1"  # one hop
    for key in ("customer_id:v1", "device_id:dv1", "cookie_id:ck-evil1"):
        _refused_everywhere(client, key, A7)
        _refused_everywhere(client, key, SUP)


def test_a_copied_cookie_made_shared_does_not_open(world, client):
    t = now_ms() - 30_000
    world.apply(
        {**event("web_event", "x", t, event_id="ck-before", action="page_view"), "customer": {"cookie_id": "ck-w1"}},
        {**event("web_event", "w1", t + 1, event_id="w1-login", action="login"),
         "customer": {"customer_id": "w1", "cookie_id": "ck-w1"}},
        # the outsider links the copied cookie to a device of its own: the cookie now has two claimants
        {**event("web_event", "x", t + 2, event_id="att-link", action="app_open"),
         "customer": {"device_id": "dev-att1", "cookie_id": "ck-w1"}},
        {**event("chat", "x", t + 3, event_id="att-chat", queue="billing", text="hello"),
         "customer": {"cookie_id": "ck-w1"}},
    )  # fmt: skip
    assert reader.resolve(world.client, world.keys, "cookie_id:ck-w1") == "cookie_id:ck-w1"  # shared: itself
    for key in ("customer_id:w1", "cookie_id:ck-w1"):
        for headers in (A7, SUP):
            r = client.get(f"/v1/customers/{quote(key, safe=':')}", headers=headers)
            assert r.status_code == 403 and "ck-before" not in r.text, (key, r.text)


def test_an_unclaimed_cookie_still_opens_for_its_queue(world, client):
    """The other side: nobody claimed the cookie, so its chat opens what it did (README, 12c)."""
    world.apply(
        {**event("chat", "x", now_ms() - 1000, event_id="anon", queue="billing", text="hi"),
         "customer": {"cookie_id": "ck-nobody"}},
    )  # fmt: skip
    r = client.get("/v1/customers/cookie_id:ck-nobody", headers=A7)
    assert r.status_code == 200 and r.json()["access"]["why"] == "waiting in your queue billing", r.text


@pytest.fixture
def server(world):
    with LiveServer(world.settings, world.client, NullProducer()) as s:
        yield s


def test_a_queue_is_not_pushed_a_claimed_devices_entries_live_or_on_resume(world, server):
    t = now_ms() - 30_000
    _victim_device(world, t)
    world.apply(  # three chats waiting in billing: on the claimed device, an unclaimed cookie, a customer
        *[{**event("chat", "x", t + 10 + i, event_id=f"w{i}", queue="billing", text="hello"), "customer": ids}
          for i, ids in enumerate(({"device_id": "dv1"}, {"cookie_id": "ck-free"}, {"customer_id": "q1"}))],
    )  # fmt: skip
    start = positions.stream_position(world.client, world.keys.flags_stream, world.keys.updates_stream)
    conn = follow(server, headers=SUP, queues=("billing",))
    assert conn.status == 200
    waiting = [["chat", None, "billing", now_ms()]]
    for key, name in (("device_id:dv1", "claimed"), ("cookie_id:ck-free", "free"), ("customer_id:q1", "own")):
        add_flag(world, key, name, 0, contacts=waiting)
    expected = [("cookie_id:ck-free", "f-free-0"), ("customer_id:q1", "f-own-0")]
    for connection in (conn, follow(server, headers=SUP, queues=("billing",), last_id=start)):  # live, resumed
        deadline = time.time() + 15
        while len(flags_of(connection.events)) < 2 and time.time() < deadline:
            connection.wait_for(len(connection.events) + 1, timeout=1.0)
        assert flags_of(connection.events) == expected, connection.events
        customers = {serde.loads(e["data"]).get("customer") for e in connection.events if e.get("data")}
        assert "device_id:dv1" not in customers, connection.events
        connection.close()
