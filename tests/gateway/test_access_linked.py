"""An anonymous contact on an identifier that a customer claims later grants nothing of that customer's 360
(break-test of issue 12, finding 15); one that goes on after the claim does, and says so in the audit."""

from __future__ import annotations

from livesignals import serde
from tests.gateway.conftest import bearer, now_ms, token
from tests.helpers import event

A1 = bearer(token("a1", queues=("billing",)))


def test_an_anonymous_chat_does_not_open_whoever_later_logs_in_on_the_device(world, client):
    t = now_ms() - 30_000
    world.apply(
        {**event("chat", "x", t, event_id="anon", agent_id="a1", queue="billing", text="hi"),
         "customer": {"device_id": "d9"}},
        {**event("web_event", "c3", t + 10, event_id="login", action="login"),
         "customer": {"customer_id": "c3", "device_id": "d9"}},
    )  # fmt: skip
    for key in ("c3", "device_id:d9"):
        r = client.get(f"/v1/customers/{key}", headers=A1)
        assert r.status_code == 403, (key, r.text)  # c3 is served by a2; a1 only chatted with the device before
    # the anonymous chat goes on after the login: it is c3's now, and the audit says where the grant came from
    world.apply(
        {**event("chat", "x", t + 20, event_id="anon2", agent_id="a1", queue="billing", text="still me"),
         "customer": {"device_id": "d9"}},
    )  # fmt: skip
    r = client.get("/v1/customers/c3", headers=A1)
    assert r.status_code == 200, r.text
    assert r.json()["access"]["why"] == "serving on chat via a linked device_id"
    entry = client.app.state.service.audit.entries(1)[0]
    assert entry["reason"] == "serving on chat via a linked device_id" and "d9" not in entry["reason"]


def test_a_claim_whose_merge_record_was_trimmed_grants_nothing(world, client):
    """B9 (break-test 12b): the profile keeps more links (MAX_LINKED) than merge records (MAX_MERGES); once
    the device's record is trimmed its claim time is unknown, and an unknown claim time fails closed."""
    from operators.profile360.update import MAX_LINKED, MAX_MERGES

    t = now_ms() - 30_000
    world.apply(
        {**event("chat", "x", t, event_id="anon6", agent_id="a1", queue="billing", text="hi"),
         "customer": {"device_id": "dz6"}},
        {**event("web_event", "c6", t + 10, event_id="login6", action="login"),
         "customer": {"customer_id": "c6", "device_id": "dz6"}},
    )  # fmt: skip
    assert client.get("/v1/customers/c6", headers=A1).status_code == 403
    more = MAX_MERGES + 1  # > 20 further links: the device's merge record is trimmed, its link is kept
    assert MAX_MERGES < more + 1 <= MAX_LINKED
    world.apply(*[
        {**event("web_event", "c6", t + 20 + i, event_id=f"login6-{i}", action="login"),
         "customer": {"customer_id": "c6", "cookie_id": f"k6-{i}"}}
        for i in range(more)
    ])  # fmt: skip
    identity = serde.loads(world.client.get(world.keys.profile("customer_id:c6")))["identity"]
    assert "device_id:dz6" in identity["linked"]
    assert not [m for m in identity["merges"] if "dz6" in m["id"]]  # the claim time is gone
    for key in ("c6", "device_id:dz6"):
        r = client.get(f"/v1/customers/{key}", headers=A1)
        assert r.status_code == 403, (key, r.text)
