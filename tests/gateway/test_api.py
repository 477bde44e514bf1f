"""The read API against real Redis: the 360 by any identifier, the timeline paged, flags, actions,
problem+json errors, the OpenAPI document, PII masking by role."""

from __future__ import annotations

from urllib.parse import quote

from starlette.testclient import TestClient

from operators.engine import Engine
from state.store import ProfileStore
from tests.fuzzing import ListPublisher
from tests.gateway.conftest import bearer, now_ms, token
from tests.helpers import event

A1 = bearer(token("a1", queues=("billing",)))


def test_the_360_by_customer_id_and_by_every_linked_identifier(client):
    by_id = client.get("/v1/customers/customer_id:c1", headers=A1)
    assert by_id.status_code == 200, by_id.text
    doc = by_id.json()
    assert doc["customer"] == "customer_id:c1"
    for section in (
        "identity",
        "activity",
        "history",
        "value",
        "flags",
        "past",
        "present",
        "future",
        "windows",
        "timeline",
    ):
        assert section in doc
    assert doc["activity"]["open_contacts"]["chat"]["agent_id"] == "a1"
    assert doc["access"]["why"] == "serving on chat"
    for other in ("email:ann@example.com", "phone:+442079460958", "device_id:d1", "c1"):
        r = client.get(f"/v1/customers/{other}", headers=A1)
        assert r.status_code == 200, (other, r.text)
        assert r.json()["customer"] == "customer_id:c1"


def test_context_carried_for_the_channel_the_agent_is_on(client):
    doc = client.get("/v1/customers/c1?channel=phone", headers=A1).json()
    assert "context_carried" in doc["present"]


def test_an_unknown_customer_is_404_for_who_may_see_all_and_403_for_an_agent(client):
    analyst = bearer(token("x", role="analyst"))
    r = client.get("/v1/customers/customer_id:nobody", headers=analyst)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 404 and r.json()["title"] == "Not Found"
    r = client.get("/v1/customers/customer_id:nobody", headers=A1)
    assert r.status_code == 403  # the same answer as a customer that exists: ids cannot be probed


def test_bad_identifiers_are_problems(client):
    for bad in ("passport:123", "customer_id:a\u200bb", "email:"):
        r = client.get(f"/v1/customers/{bad}", headers=A1)
        assert r.status_code == 400, bad
        assert r.headers["content-type"] == "application/problem+json"


def test_the_timeline_pages_without_gaps_or_repeats(world, client):
    t = now_ms() - 30_000
    world.apply(
        *[event("web_event", "c1", t + i // 3, event_id=f"w{i}", action="page_view", url=f"/p{i}") for i in range(25)]
    )
    seen, cursor, pages = [], None, 0
    while True:
        r = client.get(
            "/v1/customers/c1/timeline", params={"limit": 4, **({"cursor": cursor} if cursor else {})}, headers=A1
        )
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [e["id"] for e in page["entries"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 27  # 25 page views, the chat and the profile update
    assert pages == 7
    assert client.get("/v1/customers/c1/timeline?cursor=oops", headers=A1).status_code == 400


def test_flags_with_evidence_and_actions_with_reasons(world, client):
    t = now_ms() - 20_000
    world.apply(
        *[
            event(
                "chat",
                "c1",
                t + i,
                event_id=f"rc{i}",
                agent_id="a1",
                queue="billing",
                topic="billing",
                text="still broken",
            )
            for i in range(3)
        ]
    )
    flags = client.get("/v1/customers/c1/flags", headers=A1).json()["flags"]
    assert "repeat_contact" in flags
    assert flags["repeat_contact"]["evidence"]
    actions = client.get("/v1/customers/c1/actions", headers=A1).json()
    assert "next_best_actions" in actions
    nba = actions["next_best_actions"]
    if nba is not None:
        assert all("reason" in a for a in nba["ranked"])


def test_analysts_see_no_pii(world, client):
    analyst = bearer(token("x", role="analyst"))
    doc = client.get(f"/v1/customers/{world.pseudonym('c1')}?timeline=50", headers=analyst).json()
    text = str(doc)
    for pii in ("ann@example.com", "442079460958", "Ann Example", "1 High St", "charged twice", "7946"):
        assert pii not in text, pii
    assert doc["identity"]["attributes"]["timezone"] == "Europe/London"
    assert doc["identity"]["ids"]["customer_id"] == [world.pseudonym("c1").removeprefix("customer_id:")]
    # and may not look customers up by PII at all
    assert client.get("/v1/customers/email:ann@example.com", headers=analyst).status_code == 403
    # agents serving the customer do see it
    assert "ann@example.com" in str(client.get("/v1/customers/c1", headers=A1).json())


def test_openapi_describes_every_route(client):
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    paths = set(doc["paths"])
    for route in client.app.routes:
        path = route.path.replace("{key:path}", "{key}")
        if path in ("/", "/assets/{name}"):
            continue
        assert path in paths, path


def test_the_page_and_its_assets_are_served(client):
    assert "agent card" in client.get("/agent").text
    assert client.get("/assets/agent.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/assets/../../etc/passwd").status_code == 404


def test_newer_entries_never_shift_a_page(world, client):
    t = now_ms() - 40_000
    world.apply(*[event("web_event", "c1", t + i, event_id=f"v{i}", action="page_view", url="/x") for i in range(6)])
    first = client.get("/v1/customers/c1/timeline?limit=3", headers=A1).json()
    world.apply(
        *[
            event("web_event", "c1", now_ms() - 1000 + i, event_id=f"new{i}", action="page_view", url="/y")
            for i in range(4)
        ]
    )
    second = client.get(f"/v1/customers/c1/timeline?limit=3&cursor={first['next']}", headers=A1).json()
    assert [e["id"] for e in first["entries"]] == ["v5", "v4", "v3"]
    assert [e["id"] for e in second["entries"]] == ["v2", "v1", "v0"]


def test_a_shared_identifier_resolves_to_no_one(world, client):
    t = now_ms() - 30_000
    world.apply(
        {
            **event("web_event", "c1", t, event_id="s1", action="login"),
            "customer": {"customer_id": "c1", "device_id": "kiosk"},
        },
        {
            **event("web_event", "c3", t + 1, event_id="s2", action="login"),
            "customer": {"customer_id": "c3", "device_id": "kiosk"},
        },
    )
    analyst = bearer(token("x", role="analyst"))
    r = client.get("/v1/customers/device_id:kiosk", headers=analyst)
    assert r.status_code == 404  # resolved to c1 or c3 it would be found: it stays the (empty) kiosk itself
    assert world.client.scard(world.keys.owners("device_id:kiosk")) == 2
    assert client.get("/v1/customers/device_id:kiosk", headers=A1).status_code == 403  # not c1's, though a1 serves c1


def test_a_call_known_only_by_phone_opens_the_customer_once_identified(world, client):
    """Was: a call keyed by the phone number alone opened the customer who claimed it. A caller id is not a
    credential (break-test 12c, C6: spoofable); the call opens the customer once its events name them."""
    t = now_ms() - 30_000
    world.apply(
        {
            **event("web_event", "c6", t, event_id="l1", action="login"),
            "customer": {"customer_id": "c6", "phone": "+15559990000"},
        },
        {
            **event("call", "c6", t + 1, event_id="ivr", agent_id="a1", queue="billing"),
            "customer": {"phone": "+15559990000"},
        },
    )
    for key in ("c6", "phone:+15559990000"):
        assert client.get(f"/v1/customers/{quote(key, safe=':')}", headers=A1).status_code == 403, key
    world.apply(
        {
            **event("call", "c6", t + 2, event_id="verified", agent_id="a1", queue="billing"),
            "customer": {"customer_id": "c6", "phone": "+15559990000"},
        },
    )
    for key in ("c6", "phone:+15559990000"):
        r = client.get(f"/v1/customers/{quote(key, safe=':')}", headers=A1)
        assert r.status_code == 200, (key, r.text)
        assert r.json()["customer"] == "customer_id:c6"
    assert client.get("/v1/customers/c6", headers=bearer(token("a9", queues=("other",)))).status_code == 403


def test_flags_carry_their_relevance_null_before_any_verdict_then_the_models_estimate(settings, redis_client):
    """Flag relevance (issue 12): the chance agents find a flag relevant, as estimated when it was raised by
    the flag_relevance model that agents' verdicts teach; null before any verdict on that flag's name."""
    from gateway.app import create_app
    from tests.gateway.conftest import NullProducer, world_for

    world = world_for(settings, redis_client)
    s = world.settings.replace(models_enabled=True)
    world.engine = Engine(s, ProfileStore(redis_client, world.keys, cache_size=0), ListPublisher())
    t = now_ms() - 30_000

    def repeat(customer: str, agent: str, start: int) -> None:
        world.apply(*[event("chat", customer, start + i, event_id=f"{customer}-r{i}", agent_id=agent,
                            queue="billing", topic="billing") for i in range(3)])  # fmt: skip

    repeat("c1", "a1", t)
    with TestClient(create_app(s, client=redis_client, producer=NullProducer())) as http:
        first = http.get("/v1/customers/c1/flags", headers=A1).json()["flags"]["repeat_contact"]
        assert first["relevance"] is None
        verdict = event("agent_feedback", "c1", t + 10, channel="backoffice", event_id="v1",
                        target_id=first["id"], kind="flag", label="relevant", agent_id="a1")  # fmt: skip
        world.apply(verdict)
        repeat("c2", "a1", t + 20)  # the same flag for another customer, after the verdict
        later = http.get("/v1/customers/c2/flags", headers=A1).json()["flags"]["repeat_contact"]
    assert isinstance(later["relevance"], float) and 0.0 <= later["relevance"] <= 1.0


# --- outside review (findings-12.md) -----------------------------------------------------------------


def test_odd_numbers_are_a_400_not_a_500(client):
    """#10: '²' passes str.isdigit but not int(); a 5,000-digit limit hit Python's int limit; a stream id
    beyond 64 bits reached Redis; a token with exp Infinity or NaN raised."""
    import json

    import jwt

    from tests.gateway.conftest import SECRET

    for url in ("/v1/customers/c1/timeline?limit=%C2%B2", "/v1/customers/c1?timeline=%C2%B2",
                "/v1/customers/c1/timeline?limit=" + "9" * 5000):  # fmt: skip
        r = client.get(url, headers=A1)
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", url
    r = client.get("/v1/push?customer=c1", headers={**A1, "Last-Event-ID": "0-99999999999999999999"})
    assert r.status_code == 400
    for exp in ("Infinity", "NaN", "1e300"):
        body = json.dumps({"sub": "a1", "role": "agent", "queues": ["billing"], "iss": "livesignals", "nbf": 0})
        claims = json.loads(body[:-1] + f', "exp": {exp}}}')
        tok = jwt.encode(claims, SECRET, algorithm="HS256")
        r = client.get("/v1/customers/c1", headers=bearer(tok))
        assert r.status_code == 401, exp


def test_a_405_says_which_methods_the_path_takes(client):
    """Sixth break-test, F5: the problem+json 405 dropped Starlette's Allow header."""
    r = client.request("DELETE", "/v1/push", headers=A1)
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "HEAD"}, r.headers
    assert r.headers["content-type"] == "application/problem+json"


def test_every_error_is_problem_json_and_every_answer_carries_the_security_headers(client):
    """#12: unknown routes and methods answered text/plain; the page could be framed; PII was cacheable."""
    for method, url in (("GET", "/v2/x"), ("DELETE", "/v1/customers/c1")):
        r = client.request(method, url, headers=A1)
        assert r.status_code in (404, 405) and r.headers["content-type"] == "application/problem+json"
    page = client.get("/agent")
    assert (
        page.headers["x-frame-options"] == "DENY"
        and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    )
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"] == "no-referrer"
    assert client.get("/v1/customers/c1", headers=A1).headers["cache-control"] == "no-store"


def test_the_audit_stores_control_characters_escaped(client, world):
    """#21: terminal escapes, CR, NUL and a direction override in a path reached the audit verbatim."""
    r = client.get("/v1/customers/c1%1b%5b2K%0d%e2%80%aeFAKE%00x", headers=bearer("x"))
    assert r.status_code == 401
    entry = world.client.xrevrange(f"{world.keys.prefix}:audit", count=1)[0][1]
    assert all(v.decode().isprintable() for v in entry.values())  # the customer is a pseudonym; no raw escape
