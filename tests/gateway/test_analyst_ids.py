"""Analysts see no id made from customer data as it is: flag, decision and event ids reach them as keyed
re-hashes (``f_``, ``d_``, ``e_`` + 16 hex, HMAC with the key of their pseudonyms), the same wherever the id is
named, on every route and on push (break-test 12l: M2, the engine's unkeyed flag and decision ids let a
candidate customer id be tested offline against a pseudonym; M1, a customer id spelt in another case, without
a separator, or another customer's on a shared device, reached analysts inside event ids)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from livesignals import serde
from tests.gateway.conftest import LiveServer, NullProducer, bearer, now_ms, token
from tests.gateway.test_push import add_flag, add_update, follow
from tests.helpers import event

ANALYST = bearer(token("x", role="analyst"))
AGENT = bearer(token("a1", queues=("billing",)))
SHOWN_ID = re.compile(r"[a-z]_[0-9a-f]{16}")
ID_KEYS = ("id", "event_id", "decision_id", "event", "target_id", "flag_id")


def ids_in(doc: Any, path: str = "") -> list[tuple[str, str]]:
    """Every ``(path, value)`` of an id field (``id``, ``*_id``, ``event``) in ``doc``."""
    out: list[tuple[str, str]] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in ID_KEYS and isinstance(v, str):
                out.append((f"{path}.{k}", v))
            else:
                out += ids_in(v, f"{path}.{k}")
    elif isinstance(doc, list):
        for v in doc:
            out += ids_in(v, path + "[]")
    return out


def assert_every_id_rehashed(doc: Any) -> None:
    """Each id field holds a keyed re-hash, an identifier as analysts see it, or a masked value: nothing else."""
    for where, value in ids_in(doc):
        ok = SHOWN_ID.fullmatch(value) or re.fullmatch(r"(customer_id:p_[0-9a-f]{16}|[a-z_]+:\*\*\*)", value)
        assert ok, (where, value)


def test_flag_and_decision_ids_reach_analysts_as_keyed_rehashes_on_every_route(world, client):
    """12l, M2: ``flags.*.id``, ``decision_id`` and a pending offer's ``id`` were the engine's unkeyed digests of
    the customer key and of a flag's name, topic, partition, offset and time: with them an analyst tested
    5.35M candidates in 17 s and named the customer behind a pseudonym. Now they are keyed re-hashes."""
    t = now_ms() - 30_000
    world.apply(*[event("chat", "cust-q", t + i, event_id=f"q{i}", queue="billing", topic="refund") for i in range(3)])
    raw = client.get("/v1/customers/cust-q?timeline=50", headers=AGENT).json()
    flag_id = raw["flags"]["repeat_contact"]["id"]
    decision_id = raw["future"]["next_best_actions"]["decision_id"]
    assert flag_id and decision_id  # the engine raised a flag and decided: the ids exist
    who = world.pseudonym("cust-q")
    f, d = world.analyst_id("f", flag_id), world.analyst_id("d", decision_id)
    shown = {path: client.get(f"/v1/customers/{who}{path}", headers=ANALYST)
             for path in ("?timeline=50", "/timeline?limit=50", "/flags", "/actions")}  # fmt: skip
    for path, r in shown.items():
        assert r.status_code == 200, (path, r.text)
        assert flag_id not in r.text and decision_id not in r.text, path  # the unkeyed ids: nowhere
        assert not re.search(r"[0-9a-f]{24}", r.text), path  # nor any other engine digest (a trigger's, an offer's)
        assert_every_id_rehashed(r.json())
    doc = shown["?timeline=50"].json()
    assert doc["flags"]["repeat_contact"]["id"] == f == doc["present"]["active_flags"]["repeat_contact"]["id"]
    assert doc["history"]["recent_flags"] == [[f, "repeat_contact"]]  # a hex id shaped like a name: re-hashed
    assert doc["future"]["next_best_actions"]["decision_id"] == d == doc["predictions"]["offers_pending"][0]["id"]
    assert shown["/flags"].json()["flags"]["repeat_contact"]["id"] == f  # the same on every route: correlated
    assert shown["/actions"].json()["next_best_actions"]["decision_id"] == d
    # event ids too, the same wherever the event is named
    events = {e["id"] for e in shown["/timeline?limit=50"].json()["entries"]}
    assert events == {world.analyst_id("e", f"q{i}") for i in range(3)}
    assert doc["activity"]["open_contacts"]["chat"]["event_id"] == world.analyst_id("e", "q2")
    # agents still see the ids themselves (they send verdicts by them)
    assert client.get("/v1/customers/cust-q/flags", headers=AGENT).json()["flags"]["repeat_contact"]["id"] == flag_id


def test_a_customer_id_inside_event_ids_never_reaches_analysts_whatever_its_case_or_whose(world, client):
    """12l, M1: only the document's own customer id, in its own case and between separators, was swapped for
    its pseudonym inside event ids: ``E-ANNSMITH-2``, ``evt-annsmith1`` and, on a shared device's or a cookie's
    card, the claimants' ``app-annsmith-99`` and ``app-bob1-98`` reached analysts in clear, beside
    ``ev-p_...-3``, which told them whose pseudonym that was. Every event id is re-hashed whole now."""
    t = now_ms() - 30_000
    ann = {"customer_id": "annsmith"}
    world.apply(
        {**event("chat", "annsmith", t, event_id="evt-annsmith1", queue="billing", topic="refund"), "customer": ann},
        {**event("chat", "annsmith", t + 1, event_id="E-ANNSMITH-2", queue="billing"), "customer": ann},
        {**event("web_event", "annsmith", t + 2, event_id="ev-annsmith-3", action="page_view"),
         "customer": {**ann, "cookie_id": "ck-ann"}},
        {**event("app_event", "annsmith", t + 3, event_id="e-annsmith-login", action="login"),
         "customer": {**ann, "device_id": "dev-fam"}},
        {**event("app_event", "bob1", t + 4, event_id="e-bob1-login", action="login"),
         "customer": {"customer_id": "bob1", "device_id": "dev-fam"}},
        {**event("app_event", "x", t + 5, event_id="app-annsmith-99", action="page_view"),
         "customer": {"device_id": "dev-fam"}},
        {**event("app_event", "x", t + 6, event_id="app-bob1-98", action="page_view"),
         "customer": {"device_id": "dev-fam"}},
        {**event("web_event", "x", t + 7, event_id="ck-annsmith-5", action="page_view"),
         "customer": {"cookie_id": "ck-ann"}},
    )  # fmt: skip
    paths = ["/v1/customers/cookie_id:ck-ann?timeline=50", "/v1/customers/cookie_id:ck-ann/timeline?limit=50",
             "/v1/customers/device_id:dev-fam?timeline=50", "/v1/customers/device_id:dev-fam/timeline?limit=50",
             f"/v1/customers/{world.pseudonym('annsmith')}?timeline=50",
             f"/v1/customers/{world.pseudonym('annsmith')}/timeline?limit=50"]  # fmt: skip
    seen = 0
    for path in paths:
        r = client.get(path, headers=ANALYST)
        if r.status_code == 404:  # a card that does not exist as its own: nothing shown
            continue
        assert r.status_code == 200, (path, r.text)
        seen += 1
        for name in ("annsmith", "bob1"):
            assert name not in r.text.lower(), (path, name, r.text)
        assert_every_id_rehashed(r.json())
    assert seen >= 4, "the cards analysts reach by the cookie, the device and the pseudonym were read"
    page = client.get(f"/v1/customers/{world.pseudonym('annsmith')}/timeline?limit=50", headers=ANALYST).json()
    assert world.analyst_id("e", "E-ANNSMITH-2") in {e["id"] for e in page["entries"]}


@pytest.mark.timeout(120)
def test_pushed_flags_and_actions_carry_the_same_rehashed_ids_as_the_reads(world):
    """12l, M2 on push: a flag frame's ``flag_id`` (beside its exact ``source_timestamp``) and an actions
    frame's ``decision_id`` were the unkeyed ids. They are the re-hashes the reads show, so a desk still
    matches a pushed flag to the card's."""
    with LiveServer(world.settings, world.client, NullProducer()) as server:
        conn = follow(server, world.pseudonym("c1"), headers=ANALYST)
        add_flag(world, "customer_id:c1", "frustrated", 7)
        add_update(world, "customer_id:c1", "next_best_actions",
                   {"decision_id": "6f1e2d3c4b5a69788796a5b4", "chosen": "expert_callback", "ranked": []})  # fmt: skip
        got = conn.wait_for(2)
        conn.close()
    frames = {e["event"]: serde.loads(e["data"]) for e in got}
    assert frames["flag"]["flag"]["flag_id"] == world.analyst_id("f", "f-frustrated-7")
    assert frames["actions"]["next_best_actions"]["decision_id"] == world.analyst_id("d", "6f1e2d3c4b5a69788796a5b4")
    for frame in frames.values():
        assert "f-frustrated-7" not in serde.dumps(frame).decode() and "6f1e2d3c" not in serde.dumps(frame).decode()
        assert_every_id_rehashed(frame)


def test_analysts_may_send_no_verdict_by_the_ids_they_see(world, client):
    """12l, M2: analysts see re-hashed ids only; the one route that takes an id back (feedback) refuses their
    role before reading anything, so no re-hashed id ever needs resolving."""
    r = client.post(f"/v1/customers/{world.pseudonym('c1')}/feedback", headers={**ANALYST, "Idempotency-Key": "k1"},
                    json={"target": "flag", "target_id": world.analyst_id("f", "x"), "verdict": "relevant"})  # fmt: skip
    assert r.status_code == 403 and "analyst" in r.json()["detail"], r.text


def test_a_cookie_leading_to_an_unclaimed_device_named_by_an_email_shows_analysts_no_email(world, client):
    """12m, N1: a cookie's card names the profile it resolves to; for an unclaimed device whose id is an e-mail
    address (`device_id:ann.smith@example.com`) that key reached analysts in clear on every route and push
    frame, though the same id inside the card was masked. The key is masked as every id is: `device_id:***`."""
    t = now_ms() - 30_000
    chat = event("chat", "x", t, event_id="n1-1", queue="billing", topic="refund")
    chat["customer"] = {"cookie_id": "ck_ann2", "device_id": "ann.smith@example.com"}
    world.apply(chat)
    r = client.get("/v1/customers/cookie_id:ck_ann2", headers=ANALYST)
    assert r.status_code == 200, r.text
    assert "ann.smith" not in r.text and "example.com" not in r.text
    assert r.json()["customer"] == "device_id:***"
    for path in ("/timeline", "/flags", "/actions"):
        shown = client.get(f"/v1/customers/cookie_id:ck_ann2{path}", headers=ANALYST)
        assert shown.status_code == 200 and "ann.smith" not in shown.text, path
