"""A chat keyed by a cookie or device that a customer once claimed (logged in with) opens that cookie's own,
anonymous profile for the desk serving it -- never the claimant's 360 (break-test 12d, D7: it opened nothing,
for anyone, since the identifier resolved to the customer, whose own contacts do not include it). Every
route agrees: the 360, timeline, flags, actions, feedback and push follow the identifier as its own key."""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote

from starlette.requests import Request

from gateway import stream
from gateway.audit import AuditLog
from livesignals import serde
from state import reader
from tests.gateway.conftest import bearer, now_ms, token
from tests.gateway.test_probe_denials import counted, one_request  # noqa: F401 (a fixture)
from tests.helpers import event

A8 = bearer(token("a8", queues=("billing",)))
U8 = {"customer_id": "u8", "email": "vera.u8@example.com", "phone": "+447700900123", "cookie_id": "ck-u8"}


def _claimed_cookie_chat(world, agent: str | None = None, t: int | None = None) -> None:
    """u8 logged in once with cookie ck-u8 (name and address on file, u8's own chat served by a2); later a
    chat keyed only by the cookie comes in to billing (assigned to ``agent``, or waiting)."""
    t = now_ms() - 30_000 if t is None else t
    world.apply(
        {**event("web_event", "u8", t, event_id="u8-login", action="login"), "customer": U8},
        event("profile_update", "u8", t + 1, event_id="u8-pu", fields={"name": "Vera Secret", "address": "9 Elm Row"}),
        event("chat", "u8", t + 2, event_id="u8-own", agent_id="a2", queue="retention", text="my own chat"),
        {**event("web_event", "x", t + 3, event_id="ck-pv", action="page_view", url="https://shop.example/p/7"),
         "customer": {"cookie_id": "ck-u8"}},
        {**event("chat", "x", t + 4, event_id="ck-chat", queue="billing", topic="delivery", text="where is it?",
                 **({"agent_id": agent} if agent else {})),
         "customer": {"cookie_id": "ck-u8"}},
    )  # fmt: skip


def _no_claimant(text: str) -> None:
    for secret in ("customer_id:u8", '"u8"', "Vera", "Elm Row", "vera.u8", "447700900123", "my own chat"):
        assert secret not in text, (secret, text)


def test_the_queue_opens_the_claimed_cookies_own_profile_and_nothing_of_its_claimant(world, client):
    _claimed_cookie_chat(world)
    assert reader.resolve(world.client, world.keys, "cookie_id:ck-u8") == "customer_id:u8"  # it is claimed
    r = client.get("/v1/customers/cookie_id:ck-u8", headers=A8)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["customer"] == "cookie_id:ck-u8" and doc["known"] is True
    assert doc["access"]["why"] == "waiting in your queue billing"  # the words an unclaimed cookie gets
    assert doc["identity"]["ids"] == {"cookie_id": ["ck-u8"]} and doc["identity"]["merged"] == []
    assert {e["id"] for e in doc["timeline"]} == {"ck-pv", "ck-chat"}  # what the cookie did alone
    _no_claimant(r.text)
    for route in ("timeline", "flags", "actions"):
        r = client.get(f"/v1/customers/cookie_id:ck-u8/{route}", headers=A8)
        assert r.status_code == 200 and r.json()["customer"] == "cookie_id:ck-u8", (route, r.text)
        _no_claimant(r.text)
    # the claimant stays closed to the queue, by every identifier of theirs
    for key in ("u8", "email:vera.u8@example.com", "phone:+447700900123"):
        assert client.get(f"/v1/customers/{quote(key, safe=':')}", headers=A8).status_code == 403, key
    # the trail names the cookie as read, resolved to itself, and says why
    entry = AuditLog(world.client, world.settings.key_prefix, 1000).entries(10)
    reads = [e for e in entry if e["action"] == "read_360" and e["allowed"] == "1"]
    assert reads and reads[0]["reason"] == "waiting in your queue billing: cookie_id's own profile, not its claimant's"
    pseudonym = AuditLog(world.client, world.settings.key_prefix, 1000).pseudonym("cookie_id:ck-u8")
    assert reads[0]["customer"].endswith(pseudonym) and "->" not in reads[0]["customer"], reads[0]


def test_a_push_subscription_follows_the_cookie_itself(world, client):
    _claimed_cookie_chat(world, agent="a8")
    service = client.app.state.service
    scope = {"type": "http", "method": "GET", "path": "/v1/push", "query_string": b"customer=cookie_id:ck-u8",
             "headers": [(b"authorization", A8["Authorization"].encode())], "client": ("10.0.0.8", 1)}  # fmt: skip
    sub, principal = stream._authorise(service, Request(scope), ["cookie_id:ck-u8"], [], client.app.state.hub)
    assert sub.customers == {"cookie_id:ck-u8": "cookie_id:ck-u8"}  # never customer_id:u8
    assert stream._still_allowed(service, principal, sub)  # re-checked on the cookie's own contacts


def test_others_are_still_refused_and_the_claimant_desk_still_gets_the_customer(world, client):
    _claimed_cookie_chat(world, agent="a8")
    a9 = bearer(token("a9", queues=("billing",)))  # same queue, but the cookie's chat is a8's
    assert client.get("/v1/customers/cookie_id:ck-u8", headers=a9).status_code == 403
    sales = bearer(token("a5", queues=("sales",)))
    assert client.get("/v1/customers/cookie_id:ck-u8", headers=sales).status_code == 403
    # a2 serves u8 itself: asked by the cookie, a2 gets u8's 360 as before (the customer's own contact grants)
    r = client.get("/v1/customers/cookie_id:ck-u8", headers=bearer(token("a2", queues=("retention",))))
    assert r.status_code == 200 and r.json()["customer"] == "customer_id:u8", r.text


def test_a_stale_anonymous_contact_opens_nothing(world, client):
    _claimed_cookie_chat(world, agent="a8", t=now_ms() - world.settings.gateway_contact_open_s * 1000 - 60_000)
    assert client.get("/v1/customers/cookie_id:ck-u8", headers=A8).status_code == 403


def test_asking_by_a_claimed_cookie_is_denied_at_the_cost_of_an_unknown_one(counted):  # noqa: F811
    world, client = counted
    _claimed_cookie_chat(world, agent="a8")
    a9 = bearer(token("a9", queues=("sales",)))
    rounds, server = {}, {}
    for key in ("cookie_id:ck-u8", "cookie_id:nobody-ck", "customer_id:u8"):
        status, rounds[key], server[key] = one_request(client, f"/v1/customers/{key}", a9)
        assert status == 403, key
    assert rounds["cookie_id:ck-u8"] == rounds["cookie_id:nobody-ck"]
    assert server["cookie_id:ck-u8"] == server["cookie_id:nobody-ck"]  # as Redis counted them
    assert Counter(n for r in rounds["cookie_id:ck-u8"] for n in r)["get"] == 1 + reader.DENIAL_SLOTS
    stored = serde.loads(world.client.get(world.keys.profile("customer_id:u8")))
    assert "cookie_id:ck-u8" in stored["identity"]["linked"]


def test_feedback_is_checked_against_the_cookies_own_profile(world, client):
    _claimed_cookie_chat(world, agent="a8")
    world.give_targets("cookie_id:ck-u8", flags=("f-cookie",))
    world.give_targets("customer_id:u8", flags=("f-claimant",))
    url, body = "/v1/customers/cookie_id:ck-u8/feedback", {"target": "flag", "verdict": "relevant"}
    claimant = client.post(url, json={**body, "target_id": "f-claimant"}, headers={**A8, "Idempotency-Key": "c1"})
    assert claimant.status_code == 422, claimant.text  # u8's flag is not the cookie's
    own = client.post(url, json={**body, "target_id": "f-cookie"}, headers={**A8, "Idempotency-Key": "c2"})
    assert own.status_code == 503 and "no Kafka in this test" in own.text, own.text  # accepted, then sent
