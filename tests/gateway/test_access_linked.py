"""A contact keyed by an identifier a customer claimed (a cookie, a device, a phone) grants nothing of that
customer's 360, before or after the claim: none of these is a credential (break-tests of issue 12: finding 15,
12b B9, 12c C6). A contact opens the customer once its events name them."""

from __future__ import annotations

from livesignals import documents, serde
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
    # the anonymous chat goes on after the login: still nothing (12c, C6: whoever carries the device id, or a
    # copy of the cookie, is not shown that customer's 360) ...
    world.apply(
        {**event("chat", "x", t + 20, event_id="anon2", agent_id="a1", queue="billing", text="still me"),
         "customer": {"device_id": "d9"}},
    )  # fmt: skip
    for key in ("c3", "device_id:d9"):
        assert client.get(f"/v1/customers/{key}", headers=A1).status_code == 403, key
    # ... until the contact names the customer (identified): then it is c3's own contact
    world.apply(
        {**event("chat", "c3", t + 30, event_id="anon3", agent_id="a1", queue="billing", text="logged in"),
         "customer": {"customer_id": "c3", "device_id": "d9"}},
    )  # fmt: skip
    r = client.get("/v1/customers/c3", headers=A1)
    assert r.status_code == 200, r.text
    assert r.json()["access"]["why"] == "serving on chat"


def test_a_chat_carrying_a_copied_cookie_opens_nobody(world, client):
    """12c, C6: y2 logged in once with cookie ck-y2; an anonymous chat carrying only that cookie, assigned to a1
    (or waiting in a1's queue), gave a1 y2's name, e-mail and phone."""
    t = now_ms() - 30_000
    world.apply(
        {**event("web_event", "c7", t, event_id="login7", action="login"),
         "customer": {"customer_id": "c7", "email": "bob.c7@example.com", "cookie_id": "ck-c7"}},
        {**event("chat", "x", t + 10, event_id="spoof", agent_id="a1", queue="billing", text="my address?"),
         "customer": {"cookie_id": "ck-c7"}},
        {**event("chat", "x", t + 20, event_id="spoof2", queue="billing", text="anyone?"),
         "customer": {"cookie_id": "ck-c7"}},
    )  # fmt: skip
    a2 = bearer(token("a2", queues=("billing",)))
    for headers in (A1, a2):
        for key in ("c7", "cookie_id:ck-c7", "email:bob.c7@example.com"):
            r = client.get(f"/v1/customers/{key}", headers=headers)
            assert r.status_code == 403 and "identity" not in r.text, (key, r.text)


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
    identity = serde.loads(documents.decode(world.client.get(world.keys.profile("customer_id:c6"))))["identity"]
    assert "device_id:dz6" in identity["linked"]
    assert not [m for m in identity["merges"] if "dz6" in m["id"]]  # the claim time is gone
    for key in ("c6", "device_id:dz6"):
        r = client.get(f"/v1/customers/{key}", headers=A1)
        assert r.status_code == 403, (key, r.text)


def test_an_email_typed_into_a_pre_chat_form_opens_nobody(world, client):
    """12c, C16: a chat keyed by a typed e-mail gave its agent the full 360 of the customer owning the address,
    or of the e-mail's own profile (a survey answered from it, with a home address); and a cookie linked to the
    e-mail by any unauthenticated form event opened it too."""
    t = now_ms() - 30_000
    world.apply(
        {**event("web_event", "c9", t, event_id="l9", action="login"),
         "customer": {"customer_id": "c9", "email": "vic.c9@example.com"}},
        {**event("survey", "x", t + 1, event_id="sv9", kind="csat", score=2, comment="7 Birch Road again"),
         "customer": {"email": "solo.c9@example.com"}},
        {**event("web_event", "x", t + 2, event_id="nl9", action="newsletter_signup"),
         "customer": {"email": "solo.c9@example.com", "cookie_id": "ck-att9"}},
        {**event("chat", "x", t + 10, event_id="pre1", agent_id="a1", queue="billing", text="what's on file?"),
         "customer": {"email": "vic.c9@example.com"}},
        {**event("chat", "x", t + 11, event_id="pre2", agent_id="a1", queue="billing", text="my address?"),
         "customer": {"email": "solo.c9@example.com"}},
        {**event("chat", "x", t + 12, event_id="pre3", agent_id="a1", queue="billing", text="hi"),
         "customer": {"cookie_id": "ck-att9"}},
    )  # fmt: skip
    for key in ("c9", "email:vic.c9@example.com", "email:solo.c9@example.com"):
        r = client.get(f"/v1/customers/{key}", headers=A1)
        assert r.status_code == 403 and "Birch" not in r.text, (key, r.text)
    # the attacker's own cookie resolves to the e-mail's profile it was linked to: nothing either
    assert client.get("/v1/customers/cookie_id:ck-att9", headers=A1).status_code == 403


def test_an_anonymous_visitors_chat_opens_what_that_cookie_did(world, client):
    """The other side of the rule: a cookie nobody claimed is its own profile, and its chat's agent sees it."""
    t = now_ms() - 30_000
    world.apply(
        {**event("web_event", "x", t, event_id="v1", action="page_view"), "customer": {"cookie_id": "ck-anon"}},
        {**event("chat", "x", t + 1, event_id="ac1", agent_id="a1", queue="billing", text="hello"),
         "customer": {"cookie_id": "ck-anon"}},
    )  # fmt: skip
    r = client.get("/v1/customers/cookie_id:ck-anon", headers=A1)
    assert r.status_code == 200 and r.json()["access"]["why"] == "serving on chat", r.text
