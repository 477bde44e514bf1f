"""The second outside break-test of the agent desktop service (findings-12b.md): B2 metric labels from the path,
B3 a stream entry whose doc is not a JSON object, B4 one customer named many times in one subscription."""

from __future__ import annotations

import secrets

import httpx
import pytest

from gateway.app import ROUTE_NAMES
from gateway.audit import AuditLog
from livesignals import documents, metrics
from tests.gateway.conftest import LiveServer, NullProducer, bearer, token
from tests.gateway.test_push import add_flag, flags_position, follow

A1 = bearer(token("a1", queues=("billing",)))


@pytest.fixture
def server(world):
    with LiveServer(world.settings, world.client, NullProducer()) as s:
        yield s


def route_labels() -> set[str]:
    return {s.labels["route"] for m in metrics.GATEWAY_REQUESTS.collect() for s in m.samples}


def test_unknown_paths_add_no_metric_label(client):
    """B2: each /v1/<anything> 404 became a new `route` label, kept for ever (memory, /metrics size)."""
    for _ in range(30):
        assert client.get(f"/v1/{secrets.token_hex(64)}").status_code == 404
    assert client.get("/v1/customers/c1", headers=A1).status_code == 200
    assert client.get("/nowhere/at/all").status_code == 404
    assert route_labels() <= ROUTE_NAMES | {"other"}
    page = client.get("/metrics").text
    assert 'route="other"' in page and 'route="customer"' in page


def test_a_doc_that_is_no_json_object_is_skipped_and_push_goes_on(world, server):
    """B3: a doc that was not JSON (flags) or not an object (updates) cut every connection that would get it,
    and each resume replayed it and was cut again."""
    conn = follow(server, "c1")
    queue = follow(server, headers=bearer(token("s1", role="supervisor", queues=("billing",))), queues=("billing",))
    first = add_flag(world, "customer_id:c1", "a", 1)
    skipped = metrics.GATEWAY_PUSH_SKIPPED._value.get()
    for customer in ("customer_id:c1", "customer_id:c2"):  # c2 waits in billing: the queue follower's
        world.client.xadd(world.keys.flags_stream, {"customer": customer, "flag": "x", "doc": "not json {"})
        world.client.xadd(world.keys.updates_stream, {"customer": customer, "kind": "mood", "doc": "[1, 2]"})
        world.client.xadd(world.keys.updates_stream, {"customer": customer, "kind": "next_best_actions",
                                                      "doc": '{"kind": "next_best_actions", "next_best_actions": 7}'})  # fmt: skip
    last = add_flag(world, "customer_id:c1", "b", 2)
    c2_flag = add_flag(world, "customer_id:c2", "c", 3)
    got = [e for e in conn.wait_for(2) if e["event"] == "flag"]
    assert [flags_position(e) for e in got] == [first, last]
    assert c2_flag in [flags_position(e) for e in queue.wait_for(3) if e["event"] == "flag"]
    assert metrics.GATEWAY_PUSH_SKIPPED._value.get() - skipped >= 4
    conn.close()
    queue.close()
    resumed = follow(server, "c1", last_id=got[0]["id"])  # the resume gets past the bad entries
    assert [flags_position(e) for e in resumed.wait_for(1) if e["event"] == "flag"] == [last]
    resumed.close()
    assert httpx.get(f"{server.url}/healthz").json()["push_reader"] is True


def test_a_customer_named_many_times_is_authorised_and_audited_once(world, client):
    """B4: `customer=` repeated 50 times meant 50 profile loads and 50 audit entries per push request."""
    log = AuditLog(world.client, world.settings.key_prefix, 1000)
    before = world.client.xlen(log.key)
    names = ["c1", "customer_id:c1"] * 24 + ["c3"]  # c3 is a2's: the request is refused before any stream
    r = client.get("/v1/push?" + "&".join(f"customer={n}" for n in names), headers=A1)
    assert r.status_code == 403
    assert world.client.xlen(log.key) - before == 2  # c1 once (allowed), c3 once (denied)


def test_queue_followers_cost_the_push_reader_no_full_profile_decode(world):
    """B5 (in part): with a queue followed, the reader built every batch customer's whole state (windows
    included) only to learn its open contacts; it now takes them from the profile's JSON."""
    import sys

    from operators.profile360.profile import CustomerState
    from state import reader

    keys = [f"customer_id:c{i}" for i in range(1, 6)] + ["customer_id:nobody"]
    calls: list[str] = []

    def profile(frame, what, arg):
        if what == "call" and frame.f_code.co_name in ("from_json", "from_bytes"):
            calls.append(frame.f_code.co_qualname)

    sys.setprofile(profile)
    try:
        got = reader.read_open_contacts(world.client, world.keys, keys)
    finally:
        sys.setprofile(None)
    assert calls == []
    for key in keys:  # the same contacts a full decode gives
        row = documents.read(world.client.get(world.keys.profile(key)))
        contacts = CustomerState.from_bytes(key, row).activity.get("open_contacts", {}) if row else {}
        assert got[key] == [{"key": key, "channel": ch, **c} for ch, c in contacts.items()]
    assert got["customer_id:c1"] and got["customer_id:c1"][0]["agent_id"] == "a1"
