"""A push subscription is audited once per customer and only when it is made (break-test 12c, C13): a
customer named by several identifier kinds in one request (``c1``, ``device_id:d1``, ``email:...``) is read
and audited once, and a request refused 429 at the connection cap is audited as a refusal, not a subscription.
Real Redis, a real HTTP server."""

from __future__ import annotations

import threading

import httpx
from prometheus_client import REGISTRY

from gateway import positions
from tests.gateway.conftest import LiveServer, NullProducer, bearer, now_ms, token
from tests.gateway.test_push import A1, add_flag, flags_of, follow
from tests.helpers import event


def _subscribes(world) -> list[dict[str, str]]:
    rows = [
        {k.decode(): v.decode() for k, v in f.items()} for _, f in world.client.xrange(f"{world.keys.prefix}:audit")
    ]
    return [r for r in rows if r["action"] == "subscribe"]


def _gets(world) -> int:
    return world.client.info("commandstats").get("cmdstat_get", {}).get("calls", 0)


def test_a_customer_named_by_three_identifier_kinds_is_read_and_audited_once(world):
    with LiveServer(world.settings, world.client, NullProducer()) as server:
        alone = follow(server, "c1")  # also warms what is read once per process (the privacy secret)
        assert alone.status == 200
        alone.close()
        before, audited_before = _gets(world), len(_subscribes(world))
        conn = follow(server, "c1")
        assert conn.status == 200
        one_name = _gets(world) - before
        conn.close()
        before, audited_before = _gets(world), len(_subscribes(world))
        conn = follow(server, "c1", "device_id:d1", "email:ann@example.com")  # all three are c1's (conftest)
        assert conn.status == 200
        assert _gets(world) - before == one_name  # c1 (and its linked identifiers) read once, not three times
        entries = _subscribes(world)[audited_before:]
        assert [(e["who"], e["allowed"]) for e in entries] == [("a1", "1")], entries
        conn.close()


def test_a_push_refused_at_the_connection_cap_is_not_audited_as_a_subscription(world):
    settings = world.settings.replace(gateway_push_max_connections=2)
    with LiveServer(settings, world.client, NullProducer()) as server:
        conns = [follow(server, "c1") for _ in range(2)]
        assert [c.status for c in conns] == [200, 200]
        before = len(_subscribes(world))
        refused = [httpx.get(f"{server.url}/v1/push?customer=c1", headers=A1).status_code for _ in range(5)]
        assert refused == [429] * 5
        added = _subscribes(world)[before:]  # nothing audited as subscribed: no subscription was made
        assert len(added) == 5 and all(e["allowed"] == "0" and e["reason"].startswith("rate limited") for e in added)
        for c in conns:
            c.close()


def _queue_flags(world, n: int) -> str:
    """``n`` customers waiting unassigned in billing, one flag each (the entry carries the open contact);
    returns the streams' position before them."""
    add_flag(world, "customer_id:other", "x", 0)  # the streams hold an entry: a position that is not 0-0
    start = positions.stream_position(world.client, world.keys.flags_stream, world.keys.updates_stream)
    t = now_ms() - 10_000
    world.apply(*[event("chat", f"q{i}", t + i, event_id=f"q{i}", queue="billing", text="hi") for i in range(n)])
    for i in range(n):
        add_flag(world, f"customer_id:q{i}", "frustrated", i, contacts=[["chat", None, "billing", now_ms()]])
    return start


def _pushes(world) -> int:
    rows = world.client.xrange(f"{world.keys.prefix}:audit:queues")  # queue deliveries: their own stream (G2)
    return sum(1 for _, f in rows if f.get(b"action") == b"push")


def _replay(server, start: str, n: int, headers=A1):
    conn = follow(server, queues=("billing",), last_id=start, headers=headers)
    assert conn.status == 200
    got = conn.wait_for(n, timeout=10.0)
    conn.close()
    return got


def test_re_opening_a_queue_stream_does_not_audit_its_customers_again(world):
    """Break-test 12d, D1: each new queue connection audited every customer of its replay again (an agent
    wrote 36 times gateway_audited_per_min by re-opening /v1/push?queue=billing with an old Last-Event-ID)."""
    start = _queue_flags(world, 5)
    with LiveServer(world.settings, world.client, NullProducer()) as server:
        for _ in range(4):
            assert len(flags_of(_replay(server, start, 5))) == 5  # every customer's flag, each time
    assert 5 <= _pushes(world) <= 10  # once per customer and caller a minute (twice if a minute turned), not 20


def test_queue_volume_never_hides_customers_nor_costs_the_desk_its_own_reads(world):
    """Break-test 12e, E2: D1's bound counted queue deliveries against the caller's own read budget, so an
    outsider opening many anonymous chats hid real customers from every follower of the queue and made the
    desk's own 360 answer 429. Queue deliveries now have a budget of their own; beyond it every customer is
    still shown, the audit trail gets one entry for the rest (bounded), and the desk's reads are untouched."""
    settings = world.settings.replace(gateway_queue_audited_per_min=4, gateway_audited_per_min=3)
    start = _queue_flags(world, 12)
    before = REGISTRY.get_sample_value("livesignals_gateway_push_over_rate_total") or 0.0
    with LiveServer(settings, world.client, NullProducer()) as server:
        got = _replay(server, start, 12)
        reads = [httpx.get(f"{server.url}/v1/customers/c1", headers=A1).status_code for _ in range(3)]
    shown, audited = len(flags_of(got)), _pushes(world)
    assert shown == 12, "every queue customer shown"
    assert 5 <= audited <= 10, audited  # 4 one by one and one for the rest (twice if a minute turned): not 12
    assert (REGISTRY.get_sample_value("livesignals_gateway_push_over_rate_total") or 0.0) - before >= 12 - audited
    assert 429 not in reads, reads  # the desk's own reads are its own budget


def test_customers_shown_past_the_queue_bound_are_still_named_in_the_trail(world):
    """Break-test 12f, F3: past gateway_queue_audited_per_min, one aggregate entry per caller and minute named
    the queue only, so the customers a desk was shown beyond the bound were named nowhere. They are now named
    in batches (gateway.queue_audit), a bounded number of entries."""
    settings = world.settings.replace(gateway_queue_audited_per_min=4)
    start = _queue_flags(world, 12)
    with LiveServer(settings, world.client, NullProducer()) as server:
        assert len(flags_of(_replay(server, start, 12))) == 12
        audit = server.app.state.service.audit_writer.audit
    rows = [{k.decode(): v.decode() for k, v in f.items()} for _, f in world.client.xrange(audit.key)]
    pushes = [r for r in rows if r["action"] == "push"]
    named = {r["customer"] for r in pushes} | {n for r in pushes for n in r.get("customers", "").split()}
    assert {audit.pseudonym(f"customer_id:q{i}") for i in range(12)} <= named  # every customer shown is named
    assert len(pushes) <= 4 + 2 * 2  # 4 one by one, a batch for the rest (per minute: twice if one turned)


def test_queue_deliveries_are_audited_off_the_delivery_path_in_batches(world, monkeypatch):
    """Break-test 12f, F6: each queue delivery's audit took a thread hop and an XADD round trip on the delivery
    path (~0.6-0.8 ms of the process's core per frame: 20 desks fell tens of seconds behind an outsider's 1,500
    chats). The delivery now decides in memory; one writer thread appends the entries, many per round trip."""
    from gateway import stream
    from gateway.audit import AuditLog

    hops, writes = [], []
    real_hop, real_many, real_record = stream.run_in_threadpool, AuditLog.append_many, AuditLog.record

    async def hop(fn, *args, **kwargs):
        hops.append(getattr(fn, "__name__", "?"))
        return await real_hop(fn, *args, **kwargs)

    def many(self, rows):
        writes.append((threading.current_thread().name, len(rows)))
        return real_many(self, rows)

    def record(self, who, role, action, *args, **kwargs):
        assert action != "push", "a queue delivery's entry written on the delivery path"
        return real_record(self, who, role, action, *args, **kwargs)

    monkeypatch.setattr(AuditLog, "append_many", many)
    monkeypatch.setattr(AuditLog, "record", record)
    with LiveServer(world.settings, world.client, NullProducer()) as server:
        conn = follow(server, queues=("billing",))
        assert conn.status == 200
        monkeypatch.setattr(stream, "run_in_threadpool", hop)
        for i in range(30):
            add_flag(world, f"customer_id:w{i}", "f", i, contacts=[["chat", None, "billing", now_ms()]])
        got = conn.wait_for(30, timeout=15.0)
        conn.close()
    assert len(flags_of(got)) == 30
    assert hops == [], hops  # no thread hop per frame
    # 30 customers and the desk's roster entry for the queue (break-test 12h, H3)
    assert {name for name, _ in writes} == {"audit-writer"} and sum(n for _, n in writes) == 30 + 1, writes


def test_a_full_pair_table_does_not_lift_the_bound_on_queue_entries(world, client):
    """Break-test 12f, F5: past AuditedInWindow's max_pairs, first() answers True without remembering, and the
    one aggregate entry per caller and minute was remembered in that table: every delivery past the caller's
    bound wrote an aggregate entry (2,000 pairs, 10 desks, 2,000 customers: 20,000 entries). The entries past
    the bound are now batches counted per caller (gateway.queue_audit), outside that table."""
    from gateway import stream
    from gateway.auth import Principal
    from gateway.queue_audit import MAX_BATCHES
    from gateway.refusals import AuditedInWindow

    service = client.app.state.service
    service.queue_audited = AuditedInWindow(max_pairs=2_000)
    handed: list[str] = []
    service.audit_writer.record = lambda *args, **kwargs: handed.append(args[0])
    per_min = world.settings.gateway_queue_audited_per_min
    for d in range(10):
        desk = Principal(f"desk{d}", "agent", ("billing",), 2**31)
        for c in range(2_000):
            stream._audit_queue_delivery(service, desk, f"customer_id:k{c}", set(), "billing")
        stream._flush_names(service, frozenset({"billing"}), False)
    bound = 2 * (per_min + MAX_BATCHES + 1)  # a minute's bound, twice if a minute turned during the test
    assert max(handed.count(f"desk{d}") for d in range(10)) <= bound  # the old code: 2,000 each


def test_queue_deliveries_never_evict_the_trails_denials(world):
    """Break-test 12g, G2: queue deliveries shared the count-trimmed trail with reads and denials, so an
    outsider's anonymous chats times the desks following a queue flushed the denials out of it. They now have
    a stream of their own, ``<prefix>:audit:queues``, with its own bound."""
    settings = world.settings.replace(gateway_audit_maxlen=50, gateway_queue_audit_maxlen=50)
    trail = f"{world.keys.prefix}:audit"
    start = _queue_flags(world, 250)
    with LiveServer(settings, world.client, NullProducer()) as server:
        assert httpx.get(f"{server.url}/v1/customers/c3", headers=A1).status_code == 403  # the denial to keep
        denial = world.client.xrevrange(trail, count=1)[0][0]
        assert len(flags_of(_replay(server, start, 250))) == 250
    assert world.client.xrange(trail, min=denial, max=denial), "the denial was evicted"
    assert not [f for _, f in world.client.xrange(trail) if f.get(b"action") == b"push"]
    assert _pushes(world) > 0  # in their own stream


def test_queue_entries_grow_with_the_customers_not_with_desks_times_customers(world, client):
    """Break-test 12h, H3: each desk following a queue wrote its own entry per customer shown, so
    ``<prefix>:audit:queues`` grew with desks x customers (outsiders choose the customers: at 1,000 desks it
    covered under 2 minutes). Now one entry per queue, customer and minute, and one roster entry per desk and
    minute; who was shown customer X through queue Q stays answerable."""
    from gateway import stream
    from gateway.auth import Principal
    from gateway.queue_audit import MAX_BATCHES

    service = client.app.state.service
    handed: list[tuple[str, str, str, dict]] = []
    service.audit_writer.record = lambda who, role, action, asked, *a, **kw: handed.append((who, action, asked, kw))
    desks, customers = 40, 300
    for d in range(desks):
        desk = Principal(f"desk{d}", "agent", ("billing", "retention"), 2**31)
        for c in range(customers):
            stream._audit_queue_delivery(service, desk, f"customer_id:k{c}", set(), "billing")
        stream._audit_queue_delivery(service, desk, "customer_id:r1", set(), "retention")
        stream._flush_names(service, frozenset({"billing", "retention"}), False)
    pushes = [h for h in handed if h[1] == "push"]
    roster = [h for h in handed if h[1] == "queue_follow"]
    per_min = world.settings.gateway_queue_audited_per_min
    # twice if a minute turned during the test; the old code: desks x customers (12,040)
    assert len(pushes) <= 2 * (min(customers, per_min) + 1 + MAX_BATCHES + 1), len(pushes)
    assert len(roster) <= 2 * 2 * desks, len(roster)
    assert {(h[2], h[3]["queue"]) for h in pushes if h[2] == "customer_id:r1"} == {
        ("customer_id:r1", "queue:retention")
    }
    shown_k7 = {h[3]["queue"] for h in pushes if h[2] == "customer_id:k7"}
    assert shown_k7 == {"queue:billing"}
    assert {h[0] for h in roster if h[2] == "queue:billing"} == {f"desk{d}" for d in range(desks)}


def test_a_desk_following_two_queues_is_audited_under_the_queue_that_showed_the_customer(world):
    """The customer entry names the queue the customer waits in, not every queue the desk follows."""
    start = _queue_flags(world, 3)
    with LiveServer(world.settings, world.client, NullProducer()) as server:
        two = bearer(token("a1", queues=("billing", "retention")))
        conn = follow(server, queues=("billing", "retention"), last_id=start, headers=two)
        assert conn.status == 200
        assert len(flags_of(conn.wait_for(3, timeout=10.0))) == 3
        add_flag(world, "customer_id:live1", "f", 0, contacts=[["chat", None, "billing", now_ms()]])
        assert len(flags_of(conn.wait_for(4, timeout=10.0))) == 4  # the three replayed and the live one
        conn.close()
        audit = server.app.state.service.audit_writer.audit
    rows = [{k.decode(): v.decode() for k, v in f.items()} for _, f in world.client.xrange(audit.key)]
    pushes = [r for r in rows if r["action"] == "push"]
    assert len(pushes) == 4 and {r["queue"] for r in pushes} == {"queue:billing"}, pushes
    assert [r["who"] for r in rows if r["action"] == "queue_follow"] == ["a1"]
