"""Live push against real Redis and a real HTTP server: flags arrive for the customers followed (and only
those), one stream reader per process whatever the connections, resume after a disconnect misses nothing
still retained, queues followed by the access rule."""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from gateway.audit import AuditLog
from livesignals import serde
from tests.gateway.conftest import LiveServer, NullProducer, bearer, now_ms, token
from tests.helpers import event

A1 = bearer(token("a1", queues=("billing",)))


def add_flag(world, customer: str, name: str, i: int, contacts: list | None = None) -> str:
    """A flag entry exactly as the engine's store appends it (state/store.py: _with_flags); ``contacts``: the
    customer's open contacts it carries, ``[[channel, agent, queue, t], ...]`` (state.entry_contacts), or none
    (an entry of an engine before them)."""
    doc = {
        "schema_version": 1,
        "flag_id": f"f-{name}-{i}",
        "customer": customer,
        "flag": name,
        "severity": "warning",
        "reason": f"test {i}",
        "evidence": [f"e{i}"],
        "raised_at": now_ms(),
        "expires_at": now_ms() + 60_000,
        "state": "raised",
        "relevance": None,
    }
    fields = {"flag_id": doc["flag_id"], "customer": customer, "flag": name, "doc": serde.dumps(doc)}
    if contacts is not None:
        fields["contacts"] = serde.dumps(contacts)
    return world.client.xadd(world.keys.flags_stream, fields).decode()


class Events:
    """Reads one SSE connection in a thread; events in arrival order."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: list[dict[str, Any]] = []
        self.last_id = ""
        """The client's Last-Event-ID: the id of the last block that had one (an event or a position)."""
        self.status = 0
        self.ready = threading.Event()
        self.got = threading.Condition()
        self._client = httpx.Client(timeout=httpx.Timeout(30.0, read=60.0))
        self._stop = False
        self.thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self.thread.start()
        assert self.ready.wait(20), "no response"

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as r:
                self.status = r.status_code
                self.ready.set()
                current: dict[str, Any] = {}
                for line in r.iter_lines():
                    if self._stop:
                        return
                    if line == "":
                        with self.got:
                            if "event" in current:
                                self.events.append(current)
                            self.last_id = current.get("id", self.last_id)
                            self.got.notify_all()
                        current = {}
                    elif not line.startswith(":"):
                        field, _, value = line.partition(": ")
                        current[field] = value
        except (httpx.HTTPError, RuntimeError):
            pass
        finally:
            self.ready.set()

    def wait_for(self, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        with self.got:
            self.got.wait_for(lambda: len(self.events) >= n, timeout=timeout)
        return list(self.events)

    def wait_for_id(self, ok: Any, timeout: float = 15.0) -> str:
        """The client's Last-Event-ID once ``ok(it)`` holds (or as it is after ``timeout``)."""
        with self.got:
            self.got.wait_for(lambda: bool(self.last_id) and ok(self.last_id), timeout=timeout)
        return self.last_id

    def close(self) -> None:
        self._stop = True
        self._client.close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(world):
    with LiveServer(world.settings, world.client, NullProducer()) as s:
        yield s


def follow(server, *customers: str, headers=A1, last_id: str | None = None, queues=()) -> Events:
    query = "&".join([*(f"customer={quote(c, safe=':')}" for c in customers), *(f"queue={q}" for q in queues)])
    h = {**headers, **({"Last-Event-ID": last_id} if last_id else {})}
    return Events(f"{server.url}/v1/push?{query}", h)


def flags_position(e) -> str:
    """The flags-stream part of an event id (``<flags entry id>.<updates entry id>``, gateway.push.Cursor)."""
    return e["id"].split(".")[0]


def add_update(world, customer: str, kind: str, value: dict) -> str:
    """An updates entry exactly as the engine's store appends it (state/store.py: _updates)."""
    doc = {"customer": customer, "kind": kind, kind: value}
    entry = world.client.xadd(world.keys.updates_stream, {"customer": customer, "kind": kind,
                                                          "doc": serde.dumps(doc)})  # fmt: skip
    return entry.decode()


def flags_of(events):
    return [
        (serde.loads(e["data"])["customer"], serde.loads(e["data"])["flag"]["flag_id"])
        for e in events
        if e["event"] == "flag"
    ]


def test_a_flag_raised_by_the_engine_reaches_the_agent_following_the_customer(world, server):
    conn = follow(server, "email:ann@example.com")  # any identifier: resolved to customer_id:c1
    other = follow(server, "c2")
    assert conn.status == 200 and other.status == 200
    t = now_ms() - 10_000
    world.apply(
        *[
            event(
                "chat",
                "c1",
                t + i,
                event_id=f"rep{i}",
                agent_id="a1",
                queue="billing",
                topic="billing",
                text="it is still broken",
            )
            for i in range(3)
        ]
    )
    got = conn.wait_for(1)
    assert ("customer_id:c1", got[0] and serde.loads(got[0]["data"])["flag"]["flag_id"]) in flags_of(got)
    assert any(serde.loads(e["data"])["flag"]["flag"] == "repeat_contact" for e in got)
    assert other.wait_for(1, timeout=1.5) == []  # c2's connection hears nothing of c1
    conn.close()
    other.close()


def test_fan_out_by_customer_with_one_reader_per_process(world, server):
    conns = {c: follow(server, c) for c in ("c1", "c2")}
    conns["c1-again"] = follow(server, "c1")
    add_flag(world, "customer_id:c3", "x", 0)  # nobody here may follow c3
    for i in range(3):
        add_flag(world, "customer_id:c1", "a", i)
        add_flag(world, "customer_id:c2", "b", i)
    assert [f for _, f in flags_of(conns["c1"].wait_for(3))] == ["f-a-0", "f-a-1", "f-a-2"]
    assert [f for _, f in flags_of(conns["c1-again"].wait_for(3))] == ["f-a-0", "f-a-1", "f-a-2"]
    assert [f for _, f in flags_of(conns["c2"].wait_for(3))] == ["f-b-0", "f-b-1", "f-b-2"]
    assert sum(t.name == "flag-hub" for t in threading.enumerate()) == 1
    assert server.app.state.hub.connections() == 3
    for c in conns.values():
        c.close()


def test_resume_with_last_event_id_misses_nothing_and_repeats_nothing(world, server):
    conn = follow(server, "c1")
    first = [add_flag(world, "customer_id:c1", "a", i) for i in range(2)]
    got = conn.wait_for(2)
    assert [flags_position(e) for e in got] == first
    conn.close()
    missed = []
    for i in range(2, 6):  # while disconnected: 4 for c1, interleaved with others
        missed.append(add_flag(world, "customer_id:c1", "a", i))
        add_flag(world, "customer_id:c2", "b", i)
    again = follow(server, "c1", last_id=first[-1])
    live = add_flag(world, "customer_id:c1", "a", 6)
    got = again.wait_for(5)
    assert [flags_position(e) for e in got] == [*missed, live]
    again.close()


def test_a_last_event_id_older_than_the_stream_keeps_says_reset(world, server):
    for i in range(3):
        add_flag(world, "customer_id:c1", "a", i)
    world.client.xtrim(world.keys.flags_stream, maxlen=1, approximate=False)
    conn = follow(server, "c1", last_id="1-0")
    got = conn.wait_for(2)
    assert got[0]["event"] == "reset"
    assert [f for _, f in flags_of(got)] == ["f-a-2"]
    conn.close()


def test_a_queue_delivers_flags_of_customers_the_follower_may_see(world, server):
    sup = bearer(token("s1", role="supervisor", queues=("billing",)))
    conn = follow(server, headers=sup, queues=("billing",))
    assert conn.status == 200
    add_flag(world, "customer_id:c3", "x", 0)  # queue retention: not delivered
    add_flag(world, "customer_id:c2", "b", 0)  # waits in billing
    add_flag(world, "customer_id:c1", "a", 0)  # served in billing
    got = conn.wait_for(2)
    assert sorted(flags_of(got)) == [("customer_id:c1", "f-a-0"), ("customer_id:c2", "f-b-0")]
    conn.close()


def test_a_bad_last_event_id_is_a_problem(server):
    r = httpx.get(f"{server.url}/v1/push?customer=c1", headers={**A1, "Last-Event-ID": "drop table"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"


def test_a_stream_ends_when_its_token_expires(world, server):
    conn = follow(server, "c1", headers=bearer(token("a1", queues=("billing",), ttl_s=2)))
    got = conn.wait_for(1, timeout=10)
    assert [e["event"] for e in got] == ["bye"]
    conn.close()


def test_analysts_get_flags_without_pii(world, server):
    conn = follow(server, world.pseudonym("c1"), headers=bearer(token("x", role="analyst")))
    doc = {
        "schema_version": 1,
        "flag_id": "f-pii",
        "customer": "customer_id:c1",
        "flag": "frustrated",
        "severity": "warning",
        "reason": "wrote from ann@example.com",
        "evidence": ["e1"],
        "raised_at": 1,
        "expires_at": 2,
    }
    world.client.xadd(
        world.keys.flags_stream,
        {"flag_id": "f-pii", "customer": "customer_id:c1", "flag": "frustrated", "doc": serde.dumps(doc)},
    )
    got = conn.wait_for(1)
    assert "ann@example.com" not in got[0]["data"] and "***" in got[0]["data"]
    # the customer as its pseudonym, in the frame and in the flag (break-test 12k, K2)
    assert got[0]["data"].count(world.pseudonym("c1")) == 2 and "customer_id:c1" not in got[0]["data"]
    conn.close()


def test_a_stream_ends_when_the_contact_ends(world):
    settings = world.settings.replace(gateway_push_recheck_s=0.3)
    with LiveServer(settings, world.client, NullProducer()) as server:
        conn = follow(server, "c1")
        assert conn.wait_for(1, timeout=1.0) == []  # still serving: nothing ends
        world.apply(
            event("chat", "c1", now_ms() - 1000, event_id="end", agent_id="a1", queue="billing", outcome="resolved")
        )
        got = conn.wait_for(1, timeout=10)
        assert got[0]["event"] == "bye" and "access ended" in got[0]["data"]
        entry = world.client.xrevrange(f"{settings.key_prefix}:audit", count=1)[0][1]
        assert entry[b"allowed"] == b"0" and entry[b"reason"].startswith(b"access ended")
        conn.close()


MOOD = {"last": -0.8, "avg": -0.5, "trend": -0.2, "n": 3, "t": 1}


def test_mood_changes_and_new_actions_are_pushed_to_followers_only(world, server):
    conn = follow(server, "email:ann@example.com")  # resolved to customer_id:c1
    other = follow(server, "c2")
    add_update(world, "customer_id:c3", "mood", MOOD)  # nobody here may follow c3
    add_update(world, "customer_id:c1", "mood", MOOD)
    got = conn.wait_for(1)
    assert got[0]["event"] == "mood"
    assert serde.loads(got[0]["data"]) == {"customer": "customer_id:c1", "mood": MOOD}
    # a real decision by the engine (three contacts about billing: a flag, then an action)
    t = now_ms() - 10_000
    world.apply(*[event("chat", "c1", t + i, event_id=f"nba{i}", agent_id="a1", queue="billing", topic="billing")
                  for i in range(3)])  # fmt: skip
    got = conn.wait_for(3)
    actions = [serde.loads(e["data"]) for e in got if e["event"] == "actions"]
    assert actions and actions[-1]["customer"] == "customer_id:c1"
    ranked = actions[-1]["next_best_actions"]["ranked"]
    assert ranked and all({"action", "score", "propensity", "reason"} <= set(a) for a in ranked)
    assert other.wait_for(1, timeout=1.5) == []
    conn.close()
    other.close()


def test_resume_covers_flags_and_updates_together(world, server):
    conn = follow(server, "c1")
    add_flag(world, "customer_id:c1", "a", 0)
    add_update(world, "customer_id:c1", "mood", MOOD)
    got = conn.wait_for(2)
    assert [e["event"] for e in got] == ["flag", "mood"]
    last = got[-1]["id"]
    conn.close()
    missed = [("flag", add_flag(world, "customer_id:c1", "a", 1)),
              ("mood", add_update(world, "customer_id:c1", "mood", {**MOOD, "n": 4})),
              ("flag", add_flag(world, "customer_id:c1", "a", 2))]  # fmt: skip
    add_update(world, "customer_id:c2", "mood", MOOD)  # not c1's
    again = follow(server, "c1", last_id=last)
    live = add_update(world, "customer_id:c1", "mood", {**MOOD, "n": 5})
    got = again.wait_for(4)
    # each stream's own order (entries of the two streams in the same millisecond have no order between them)
    assert [flags_position(e) for e in got if e["event"] == "flag"] == [missed[0][1], missed[2][1]]
    assert [serde.loads(e["data"])["mood"]["n"] for e in got if e["event"] == "mood"] == [4, 5]
    assert got[-1]["id"].split(".")[1] == live
    assert again.wait_for(5, timeout=1.5)[4:] == []  # nothing twice
    again.close()


def test_a_bad_composite_last_event_id_is_a_problem(server):
    for bad in ("1-0.", "1-0.2-0.3-0", "1-0.x"):
        r = httpx.get(f"{server.url}/v1/push?customer=c1", headers={**A1, "Last-Event-ID": bad})
        assert r.status_code == 400, bad


# --- outside review (findings-12.md) -----------------------------------------------------------------


def test_a_malformed_stream_entry_is_skipped_and_push_goes_on(world, server):
    """#22: an entry without doc ended the reader thread for good (every connection silent, health green)."""
    conn = follow(server, "c1")
    world.client.xadd(world.keys.flags_stream, {"customer": "customer_id:c1", "note": "no doc field"})
    world.client.xadd(world.keys.updates_stream, {"customer": b"\xff\xfe", "kind": "mood", "doc": b"{}"})
    after = add_flag(world, "customer_id:c1", "a", 1)
    got = conn.wait_for(1)
    assert [flags_position(e) for e in got] == [after]
    health = httpx.get(f"{server.url}/healthz")
    assert health.status_code == 200 and health.json()["push_reader"] is True
    conn.close()


def test_a_client_too_far_behind_gets_a_reset_from_one_bounded_read(world, server, monkeypatch):
    """#3: Last-Event-ID 0-0 (or any old id) made one request scan the whole retained stream."""
    from gateway import push

    monkeypatch.setattr(push, "CATCH_UP_MAX", 50)
    reads: list[tuple] = []
    real = world.client.xrange

    def counted(*a, **k):
        reads.append(a)
        return real(*a, **k)

    monkeypatch.setattr(world.client, "xrange", counted)
    first = add_flag(world, "customer_id:c1", "a", 0)
    pipe = world.client.pipeline()
    for i in range(60):
        pipe.xadd(world.keys.flags_stream, {"customer": "customer_id:c2", "flag": "b", "doc": b"{}"})
    pipe.execute()
    conn = follow(server, "c1", last_id=first)
    got = conn.wait_for(1)
    assert got[0]["event"] == "reset" and reads == []  # no chunked scan
    conn.close()


def test_an_old_id_on_a_stream_never_trimmed_is_no_reset(world, server):
    """#18: Last-Event-ID 1-0 got a reset although nothing was trimmed."""
    ids = [add_flag(world, "customer_id:c1", "a", i) for i in range(2)]
    conn = follow(server, "c1", last_id="1-0")
    got = conn.wait_for(2)
    assert [e["event"] for e in got] == ["flag", "flag"] and [flags_position(e) for e in got] == ids
    conn.close()


def _audited_pushes(world) -> list[tuple[str, str]]:
    rows = world.client.xrange(f"{world.keys.prefix}:audit:queues")  # queue deliveries: a stream of their own
    return [(f[b"who"].decode(), f[b"customer"].decode()) for _, f in rows if f.get(b"action") == b"push"]


def test_flags_delivered_through_a_queue_are_audited_per_customer(world, server):
    """#8: a queue follower's deliveries named no customer in the audit (only ``queue:billing``)."""
    sup = bearer(token("s1", role="supervisor", queues=("billing",)))
    conn = follow(server, headers=sup, queues=("billing",))
    add_flag(world, "customer_id:c2", "b", 0)
    add_flag(world, "customer_id:c2", "b", 1)
    add_flag(world, "customer_id:c1", "a", 0)
    conn.wait_for(3)
    log = AuditLog(world.client, world.settings.key_prefix, 1000)
    expected = [("s1", log.pseudonym("customer_id:c1")), ("s1", log.pseudonym("customer_id:c2"))]
    deadline = time.monotonic() + 10  # queue deliveries are audited by a writer thread, within ~0.2 s (F6)
    while len(_audited_pushes(world)) < len(expected) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a third (wrong) entry would have been written by now
    assert sorted(_audited_pushes(world)) == sorted(expected)  # once per customer (pseudonymised, as every one)
    conn.close()


def test_push_connections_per_caller_are_capped(world):
    """#9: one token could open as many streams as the process had file descriptors."""
    settings = world.settings.replace(gateway_push_max_connections=2)
    with LiveServer(settings, world.client, NullProducer()) as server:
        conns = [follow(server, "c1") for _ in range(2)]
        assert [c.status for c in conns] == [200, 200]
        r = httpx.get(f"{server.url}/v1/push?customer=c1", headers=A1)
        assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json"
        other = follow(server, "c1", headers=bearer(token("a9", role="supervisor", queues=("billing",))))
        assert other.status == 200  # another caller is not affected
        for c in [*conns, other]:
            c.close()


def test_a_client_that_stops_reading_is_cut_when_a_write_waits_too_long():
    """#11: a stalled connection kept its stream (and kept receiving after its token expired)."""
    import asyncio
    import time

    from gateway.stream import PushResponse

    async def events():
        for i in range(3):
            yield b"data: %d\n\n" % i

    sent: list[dict] = []

    async def send(message):
        sent.append(message)
        if message.get("body"):
            await asyncio.sleep(3600)  # the client reads nothing more

    async def run() -> float:
        response = PushResponse(events(), time.time() + 600, 0.3, media_type="text/event-stream")
        started = time.monotonic()
        await asyncio.wait_for(response.stream_response(send), 10)
        return time.monotonic() - started

    took = asyncio.run(run())
    assert took < 5 and [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[-1]["more_body"] is True  # never completed: the server closes the connection
