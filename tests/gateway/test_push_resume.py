"""A connection's Last-Event-ID moves with the streams (findings-12b B11): a desk following a quiet customer
resumes instead of being told ``reset`` after many entries of other customers, and the 360 hands the page
the streams' position read before the profile, so a flag raised between the read and the subscription
arrives. Real Redis and a real HTTP server."""

from __future__ import annotations

import time

import httpx
import pytest

from gateway import positions, push
from livesignals import serde
from tests.gateway.conftest import LiveServer, NullProducer, now_ms
from tests.gateway.test_push import A1, add_flag, add_update, flags_of, flags_position, follow
from tests.helpers import event


@pytest.fixture
def server(world):
    with LiveServer(world.settings, world.client, NullProducer()) as s:
        yield s


def test_an_idle_connection_is_handed_the_streams_position(world, server):
    conn = follow(server, "c1")
    assert conn.status == 200
    last = [add_flag(world, f"customer_id:o{i}", "o", i) for i in range(3)][-1]
    assert conn.wait_for_id(lambda got: got.split(".")[0] == last).split(".")[0] == last
    assert conn.events == []  # an id without an event: nothing dispatched
    conn.close()


def test_a_quiet_customers_desk_resumes_after_many_entries_of_others_instead_of_a_reset(world, monkeypatch):
    monkeypatch.setattr(push, "CATCH_UP_MAX", 50)
    monkeypatch.setattr(push, "POSITION_EVERY", 20)
    settings = world.settings.replace(gateway_push_keepalive_s=600.0)  # no keep-alive: the markers move the id
    with LiveServer(settings, world.client, NullProducer()) as server:
        conn = follow(server, "c1")
        add_flag(world, "customer_id:c1", "a", 0)
        got = conn.wait_for(1)
        assert flags_of(got) == [("customer_id:c1", "f-a-0")]
        own = got[0]["id"]
        pipe = world.client.pipeline()
        for i in range(60):  # more than CATCH_UP_MAX entries of other customers
            pipe.xadd(world.keys.flags_stream, {"customer": f"customer_id:o{i}", "flag": "b", "doc": b"{}"})
        pipe.execute()
        resume_from = conn.wait_for_id(lambda got: got != own)  # moved by a position marker
        conn.close()
        assert resume_from != own
        again = follow(server, "c1", last_id=resume_from)
        add_flag(world, "customer_id:c1", "a", 1)
        got = again.wait_for(1)
        assert [e["event"] for e in got] == ["flag"] and flags_of(got) == [("customer_id:c1", "f-a-1")]
        again.close()


def test_a_flag_raised_between_the_360_read_and_the_subscription_is_delivered(world, server):
    before = add_flag(world, "customer_id:c1", "a", 0)
    r = httpx.get(f"{server.url}/v1/customers/c1", headers=A1)
    assert r.status_code == 200
    position = r.json()["stream_id"]
    assert position.split(".")[0] == before  # the streams' position when the 360 was read
    add_flag(world, "customer_id:c1", "b", 1)  # after the read, before the subscription
    conn = follow(server, "c1", last_id=position)
    got = conn.wait_for(1)
    assert flags_of(got) == [("customer_id:c1", "f-b-1")]  # nothing the 360 already showed
    conn.close()


def test_a_client_too_far_behind_is_told_reset_without_any_entry_read(world, server, monkeypatch):
    """findings-12c C4: a resume with an old id read (and parsed) CATCH_UP_MAX + 1 entries of each stream before
    answering reset; now the hub knows how far behind it is from the ids it handed over, and none is read."""
    monkeypatch.setattr(push, "CATCH_UP_MAX", 50)
    first = add_flag(world, "customer_id:c1", "a", 0)
    pipe = world.client.pipeline()
    for i in range(60):
        pipe.xadd(world.keys.flags_stream, {"customer": "customer_id:c2", "flag": "b", "doc": b"{}"})
    newest = pipe.execute()[-1].decode()
    hub = server.app.state.hub
    for _ in range(300):  # until the hub has handed them over (a wait, not a timed assertion)
        if hub.position.flags == newest:
            break
        time.sleep(0.05)
    reads: list[dict] = []
    real = world.client.xrevrange

    def counted(*a, **k):
        if str(k.get("min", "")).startswith("("):  # a catch-up read (not a newest-id probe)
            reads.append(k)
        return real(*a, **k)

    monkeypatch.setattr(world.client, "xrevrange", counted)
    conn = follow(server, "c1", last_id=first)
    got = conn.wait_for(1)
    assert got[0]["event"] == "reset" and reads == []
    conn.close()


def test_a_reader_that_completes_no_read_is_unhealthy(world, server, monkeypatch):
    """findings-12c: /healthz stayed 200 while the reader could not read (Redis paused): only a dead thread
    counted."""
    import redis

    assert httpx.get(f"{server.url}/healthz").status_code == 200
    monkeypatch.setattr(push, "STALE_S", 0.5)
    hub = server.app.state.hub

    def unreachable(*a, **k):
        raise redis.ConnectionError("paused")

    monkeypatch.setattr(hub.client, "xread", unreachable)
    for _ in range(300):  # until no read has completed for longer than the bound (a wait, not a timed assertion)
        r = httpx.get(f"{server.url}/healthz")
        if r.status_code != 200:
            break
        time.sleep(0.05)
    assert r.status_code == 503 and r.json()["push_reader"] is False and hub.health()["push_read_s_ago"] >= 1.0


def test_a_linked_identifiers_mood_and_flags_are_not_pushed_as_the_customers(world, server):
    """findings-12c C15: the card showed the anonymous profile's mood live and the customer's on reload; its
    flags too (now not pushed either: the 360, /flags and feedback show the customer's own only)."""
    t = now_ms() - 30_000
    world.apply(
        {**event("chat", "x", t, event_id="anon", agent_id="a1", queue="billing", text="hi"),
         "customer": {"device_id": "d9"}},
        {**event("web_event", "c3", t + 10, event_id="login", action="login"),
         "customer": {"customer_id": "c3", "device_id": "d9"}},
        {**event("chat", "x", t + 20, event_id="anon2", agent_id="a1", queue="billing", text="still me"),
         "customer": {"device_id": "d9"}},
        event("chat", "c3", t + 30, event_id="own", agent_id="a1", queue="billing", text="it is me"),
    )  # fmt: skip  # the customer's own contact grants a1 (a linked device's does not: 12c C6)
    start = add_flag(world, "customer_id:c5", "z", 0)
    conn = follow(server, "c3")
    assert conn.status == 200
    add_update(world, "device_id:d9", "mood", {"last": -0.9, "n": 4})
    add_flag(world, "device_id:d9", "a", 0)  # a linked identifier's flag: not the customer's (12c C15)
    add_update(world, "customer_id:c3", "mood", {"last": 0.5, "n": 2})
    got = conn.wait_for(1)
    assert [(e["event"], serde.loads(e["data"])["customer"]) for e in got] == [("mood", "customer_id:c3")]
    assert serde.loads(got[0]["data"])["mood"]["last"] == 0.5
    conn.close()
    again = follow(server, "c3", last_id=start)  # a replay: the same
    assert [e["event"] for e in again.wait_for(1)] == ["mood"]
    again.close()


def test_a_process_started_after_many_entries_answers_an_old_id_reset_without_reading_them(world, monkeypatch):
    """Break-test 12d, D3: a far-behind resume was answered from memory only by a process that had seen
    CATCH_UP_MAX entries itself; after a restart (or in a new worker) it read 2 x CATCH_UP_MAX + 1 entries."""
    monkeypatch.setattr(push, "CATCH_UP_MAX", 50)
    first = add_flag(world, "customer_id:c1", "a", 0)
    pipe = world.client.pipeline()
    for _ in range(60):
        pipe.xadd(world.keys.flags_stream, {"customer": "customer_id:c2", "flag": "b", "doc": b"{}"})
    pipe.execute()
    reads: list[dict] = []
    real = world.client.xrevrange

    def counted(*a, **k):
        reads.append(k)
        return real(*a, **k)

    monkeypatch.setattr(world.client, "xrevrange", counted)
    with LiveServer(world.settings, world.client, NullProducer()) as server:  # started after the entries
        conn = follow(server, "c1", last_id=first)
        got = conn.wait_for(1)
        conn.close()
    assert got[0]["event"] == "reset" and [k for k in reads if "min" in k] == []  # no catch-up read


def test_a_resume_just_inside_the_bound_reads_only_the_followed_customers_entries(world, monkeypatch):
    """Break-test 12d, D4: an id just inside CATCH_UP_MAX made every resume read (and decode) every entry
    since it, docs and all, whatever the connection followed; now a connection that follows customers only
    reads its customers' entries, by id."""
    monkeypatch.setattr(push, "CATCH_UP_MAX", 50)
    with LiveServer(world.settings, world.client, NullProducer()) as server:
        add_flag(world, "customer_id:o0", "b", 0)
        start = positions.stream_position(world.client, world.keys.flags_stream, world.keys.updates_stream)
        own = []
        for i in range(45):  # 45 entries behind: inside the bound; two of them c1's
            own += [add_flag(world, "customer_id:c1", "a", i)] if i in (10, 30) else []
            world.client.xadd(world.keys.flags_stream, {"customer": f"customer_id:o{i}", "flag": "b", "doc": b"{}"})
        reads: list[dict] = []
        real = world.client.xrevrange

        def counted(*a, **k):
            reads.append(k)
            return real(*a, **k)

        monkeypatch.setattr(world.client, "xrevrange", counted)
        time.sleep(0.5)  # the hub has handed every entry over
        conn = follow(server, "c1", last_id=start)
        got = [e for e in conn.wait_for(2) if e["event"] == "flag"]
        conn.close()
    assert [flags_position(e) for e in got] == own  # both of c1's, in order
    assert [k for k in reads if "min" in k] == []  # not a read of every entry since the id
