"""Broken object-level authorisation, attacked: an agent cannot read, subscribe to or send feedback for a
customer outside their assignment -- by any identifier kind, by guessed ids, with an expired, forged or
tampered token, or through another team's queue. Every attempt is denied and audited."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import quote

import jwt
import pytest

from gateway.audit import AuditLog
from tests.gateway.conftest import OTHER_SECRET, SECRET, bearer, now_ms, token
from tests.helpers import event

ROUTES = [
    ("GET", "/v1/customers/{key}", "read_360"),
    ("GET", "/v1/customers/{key}/timeline", "read_timeline"),
    ("GET", "/v1/customers/{key}/flags", "read_flags"),
    ("GET", "/v1/customers/{key}/actions", "read_actions"),
    ("POST", "/v1/customers/{key}/feedback", "feedback"),
    ("GET", "/v1/push?customer={key}", "subscribe"),
]
FEEDBACK = {"target": "flag", "target_id": "f1", "verdict": "relevant"}


def call(client, method, path, key, headers):
    url = path.format(key=quote(key, safe=":"))
    if method == "POST":
        return client.post(url, json=FEEDBACK, headers={**headers, "Idempotency-Key": "k1"})
    return client.get(url, headers=headers)


def newest_audit(world):
    return AuditLog(world.client, world.settings.key_prefix, 1000).entries(1)[0]


@pytest.fixture
def c3_everywhere(world):
    """c3 (served by a2 in queue retention) also known by email, phone, device and cookie."""
    t = now_ms() - 50_000
    world.apply(
        {
            **event("chat", "c3", t, event_id="c3-ids", agent_id="a2", queue="retention"),
            "customer": {
                "customer_id": "c3",
                "email": "bob@example.com",
                "phone": "+15550001111",
                "device_id": "dev-bob",
                "cookie_id": "ck-bob",
            },
        }
    )
    return [
        "customer_id:c3",
        "c3",
        "email:bob@example.com",
        "phone:+15550001111",
        "device_id:dev-bob",
        "cookie_id:ck-bob",
    ]


def test_an_agent_is_denied_another_agents_customer_by_every_identifier_on_every_route(world, client, c3_everywhere):
    a1 = bearer(token("a1", queues=("billing",)))
    for key in c3_everywhere:
        for method, path, action in ROUTES:
            r = call(client, method, path, key, a1)
            assert r.status_code == 403, (key, path, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            entry = newest_audit(world)
            assert (entry["who"], entry["action"], entry["allowed"]) == ("a1", action, "0"), (key, action, entry)
            resolved = AuditLog(world.client, world.settings.key_prefix, 1000).pseudonym("customer_id:c3")
            assert entry["customer"].endswith(resolved)  # the resolved customer is audited (pseudonymised)


def test_guessed_ids_ended_and_stale_contacts_are_denied(world, client):
    a1 = bearer(token("a1", queues=("billing",)))
    for key in (
        "customer_id:c4",
        "customer_id:c5",
        "customer_id:c999",
        "email:guess@example.com",
        "device_id:d2",
        "C1",
        "customer_id:c1\u200b",
    ):
        for method, path, action in ROUTES:
            r = call(client, method, path, key, a1)
            assert r.status_code in (400, 403), (key, path, r.status_code)  # 400: not an identifier at all
            assert newest_audit(world)["allowed"] == "0"


def test_the_same_agent_is_allowed_what_is_theirs(client):
    a1 = bearer(token("a1", queues=("billing",)))
    for key in ("c1", "email:ann@example.com", "device_id:d1", "c2"):  # serving c1; c2 waits in billing
        assert client.get(f"/v1/customers/{key}", headers=a1).status_code == 200, key


def test_another_teams_queue(world, client):
    a3_retention = bearer(token("a3", queues=("retention",)))
    assert client.get("/v1/customers/c3", headers=a3_retention).status_code == 403  # assigned to a2, not a3
    assert client.get("/v1/customers/c2", headers=a3_retention).status_code == 403  # waits in billing
    a1 = bearer(token("a1", queues=("billing",)))
    r = client.get("/v1/push?queue=retention", headers=a1)
    assert r.status_code == 403
    entry = newest_audit(world)
    assert (entry["action"], entry["customer"], entry["allowed"]) == ("subscribe", "queue:retention", "0")
    sup_billing = bearer(token("s1", role="supervisor", queues=("billing",)))
    assert client.get("/v1/customers/c3", headers=sup_billing).status_code == 403
    assert client.get("/v1/customers/c1", headers=sup_billing).status_code == 200
    sup_retention = bearer(token("s2", role="supervisor", queues=("retention",)))
    assert client.get("/v1/customers/c3", headers=sup_retention).status_code == 200


def _forge(claims, header=None, secret=None):
    if secret is not None:
        return jwt.encode(claims, secret, algorithm="HS256")
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc(header or {'alg': 'none', 'typ': 'JWT'})}.{enc(claims)}."


def test_expired_forged_tampered_and_missing_tokens_are_refused_and_audited(world, client):
    now = int(time.time())
    good = {"sub": "a2", "role": "agent", "queues": ["retention"], "iss": "livesignals", "exp": now + 600}
    tampered = token("a1", queues=("billing",)).split(".")
    payload = json.loads(base64.urlsafe_b64decode(tampered[1] + "=="))
    payload.update(sub="a2", queues=["retention"])
    tampered[1] = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    bad_tokens = {
        "expired": token("a2", queues=("retention",), ttl_s=-1),
        "unknown key": token("a2", queues=("retention",), secret="attacker-" + "z" * 40),
        "alg none": _forge(good),
        "alg none, no signature part": _forge(good).rstrip("."),
        "tampered payload": ".".join(tampered),
        "no issuer": _forge({k: v for k, v in good.items() if k != "iss"}, secret=SECRET),
        "unknown role": _forge({**good, "role": "admin"}, secret=SECRET),
        "not yet valid": _forge({**good, "nbf": now + 300}, secret=SECRET),
        "garbage": "not.a.token",
    }
    for name, tok in [*bad_tokens.items(), ("missing", None)]:
        headers = bearer(tok) if tok else {}
        for method, path, action in ROUTES:
            r = call(client, method, path, "c3", headers)
            assert r.status_code == 401, (name, path, r.status_code)
            assert r.headers["www-authenticate"].startswith("Bearer")
            entry = newest_audit(world)
            assert (entry["who"], entry["action"], entry["allowed"]) == ("-", action, "0"), (name, entry)
    # the real a2 and a token signed by the second (rotation) key get in
    assert client.get("/v1/customers/c3", headers=bearer(token("a2", queues=("retention",)))).status_code == 200
    rotated = token("a2", queues=("retention",), secret=OTHER_SECRET)
    assert client.get("/v1/customers/c3", headers=bearer(rotated)).status_code == 200


def test_analysts_may_not_send_feedback_or_look_up_by_pii(world, client):
    analyst = bearer(token("x", role="analyst"))
    r = client.post("/v1/customers/c1/feedback", json=FEEDBACK, headers={**analyst, "Idempotency-Key": "k"})
    assert r.status_code == 403
    assert newest_audit(world)["reason"] == "role analyst may not feedback"
    for key in ("email:ann@example.com", "phone:+442079460958"):
        assert client.get(f"/v1/customers/{key}", headers=analyst).status_code == 403


def test_every_decision_is_audited_in_a_bounded_stream(world, client):
    settings = world.settings.replace(gateway_audit_maxlen=100)
    log = AuditLog(world.client, settings.key_prefix, settings.gateway_audit_maxlen)
    for i in range(1500):
        log.record("a1", "agent", "read_360", f"customer_id:c{i}", None, i % 2 == 0, "test")
    assert world.client.xlen(log.key) < 400  # approximate trimming: about maxlen, never the 1,500
    a1 = bearer(token("a1", queues=("billing",)))
    client.get("/v1/customers/c1", headers=a1)
    entry = newest_audit(world)
    assert entry["who"] == "a1" and entry["allowed"] == "1" and entry["customer"] == log.pseudonym("customer_id:c1")
    assert abs(int(entry["at"]) - now_ms()) < 60_000


def test_one_denied_customer_denies_the_whole_subscription(world, client):
    a1 = bearer(token("a1", queues=("billing",)))
    r = client.get("/v1/push?customer=c1&customer=c3", headers=a1)
    assert r.status_code == 403
    log = AuditLog(world.client, world.settings.key_prefix, 1000)
    c1, c3 = log.pseudonym("customer_id:c1"), log.pseudonym("customer_id:c3")
    assert [(e["customer"], e["allowed"]) for e in log.entries(2)] == [(c3, "0"), (c1, "1")]
