"""The OpenAPI document lists the statuses each route answers, and only those (break-test 12b, B15): every
route is driven to each error it can give, and the statuses seen must equal the ones documented -- for every
documented operation, the 413 of a body over the cap and the 431 of a head over the bound (answered before any
route) and /healthz's 503 included (12d, D6); a 413 carries the security headers like every answer; a malformed
Last-Event-ID is looked at only after the token."""

from __future__ import annotations

from collections import defaultdict

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.headers_timeout import MAX_HEAD_BYTES
from gateway.openapi import document
from tests.gateway.conftest import LiveServer, NullProducer, bearer, token
from tests.gateway.test_head_size import send_head

pytestmark = pytest.mark.kafka

A1 = bearer(token("a1", queues=("billing",)))
ANALYST = bearer(token("x", role="analyst"))
NONE: dict[str, str] = {}
READS = {"/v1/customers/{key}": "", "/v1/customers/{key}/timeline": "/timeline",
         "/v1/customers/{key}/flags": "/flags", "/v1/customers/{key}/actions": "/actions"}  # fmt: skip


def documented() -> dict[tuple[str, str], set[int]]:
    out = {}
    for path, methods in document()["paths"].items():
        for method, op in methods.items():
            out[(method, path)] = {int(code) for code in op["responses"] if int(code) >= 400}
    return out


def test_every_route_answers_exactly_the_errors_it_documents(kworld, kclient):
    seen: dict[tuple[str, str], set[int]] = defaultdict(set)
    for path, tail in READS.items():
        for key, headers in (("c1", NONE), ("nope:x", A1), ("c3", A1), ("customer_id:nobody", ANALYST)):
            seen[("get", path)].add(kclient.get(f"/v1/customers/{key}{tail}", headers=headers).status_code)
    seen[("get", "/v1/customers/{key}/timeline")].add(
        kclient.get("/v1/customers/c1/timeline?cursor=zz", headers=A1).status_code
    )
    kworld.give_targets("customer_id:c1", flags=("f1", "f2"))
    fb = "/v1/customers/c1/feedback"
    verdict = {"target": "flag", "target_id": "f1", "verdict": "relevant"}

    def post(client, body, key="k1", headers=A1, url=fb, **kw):
        return client.post(url, json=body, headers={**headers, "Idempotency-Key": key}, **kw).status_code

    feedback = seen[("post", "/v1/customers/{key}/feedback")]
    feedback |= {post(kclient, verdict, headers=NONE), post(kclient, verdict, url="/v1/customers/c3/feedback")}
    feedback |= {post(kclient, verdict), post(kclient, {**verdict, "verdict": "not_relevant"})}  # 202, then 409
    feedback |= {post(kclient, {**verdict, "target_id": "made-up"}, key="k2"), post(kclient, [], key="k3")}
    big = kclient.post(fb, content=b"x" * (kworld.settings.gateway_body_max_bytes + 1),
                       headers={**A1, "Idempotency-Key": "k4", "Content-Type": "application/json"})  # fmt: skip
    feedback.add(big.status_code)
    with TestClient(create_app(kworld.settings, client=kworld.client, producer=NullProducer())) as down:
        feedback.add(post(down, {**verdict, "target_id": "f2"}, key="k5"))  # Kafka not confirming: 503
    s = kworld.settings.replace(gateway_push_subscribes_per_min=1)
    with TestClient(create_app(s, client=kworld.client, producer=NullProducer(), hub_block_ms=200)) as push:
        seen[("get", "/v1/push")] |= {
            push.get("/v1/push?customer=c1").status_code,  # no token
            push.get("/v1/push?customer=c1", headers={**A1, "Last-Event-ID": "zz"}).status_code,
            push.get("/v1/push", headers=A1).status_code,  # nothing to follow
            push.get("/v1/push?customer=c3", headers=A1).status_code,
            push.get("/v1/push?customer=c3", headers=A1).status_code,  # the second subscription this minute
        }
    s = kworld.settings.replace(gateway_audited_per_min=1)
    with TestClient(create_app(s, client=kworld.client, producer=NullProducer(), hub_block_ms=200)) as limited:
        for path, tail in READS.items():  # one customer request a minute: the second is a 429
            seen[("get", path)] |= {limited.get(f"/v1/customers/c1{tail}", headers=bearer(token(f"r{tail}"))).status_code
                                    for _ in range(2)}  # fmt: skip
        feedback |= {post(limited, verdict, headers=bearer(token("f9")), key=f"k{i}") for i in range(2)}
    s = kworld.settings
    app = create_app(s, client=kworld.client, producer=NullProducer(), hub_block_ms=200)
    with TestClient(app) as any_route:
        for method, path in documented():  # a declared body over the cap, on every operation: 413
            url = path.replace("{key}", "c1")
            over = any_route.request(
                method.upper(),
                url,
                content=b"x" * (s.gateway_body_max_bytes + 1),
                headers={**A1, "Idempotency-Key": "k9", "Content-Type": "application/json"},
            )
            seen[(method, path)].add(over.status_code)
            if method == "get" and "{key}" not in path and path != "/v1/push":
                seen[(method, path)].add(any_route.get(url).status_code)
        app.state.hub.stop()  # the push reader stopped: /healthz says so
        seen[("get", "/healthz")].add(any_route.get("/healthz").status_code)
    with LiveServer(s, kworld.client, NullProducer()) as server:  # a head over the bound, as `serve` runs: 431
        for method, path in documented():
            head = f"{method.upper()} {path.replace('{key}', 'c1')} HTTP/1.1\r\nHost: x\r\nX-Pad: ".encode()
            answer = send_head(server.port, head + b"a" * (2 * MAX_HEAD_BYTES) + b"\r\n\r\n")
            seen[(method, path)].add(int(answer[9:12]))
    errors = {route: {code for code in codes if code >= 400} for route, codes in seen.items()}
    docs = documented()
    assert set(errors) == set(docs)  # every documented operation was driven
    assert docs == errors


def test_a_413_carries_the_security_headers(kclient, kworld):
    r = kclient.post("/v1/customers/c1/feedback", content=b"x" * (kworld.settings.gateway_body_max_bytes + 1),
                     headers={**A1, "Idempotency-Key": "k"})  # fmt: skip
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    assert r.headers["cache-control"] == "no-store" and r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_a_bad_last_event_id_is_looked_at_only_after_the_token(kclient):
    audit = kclient.app.state.service.audit
    before = audit.entries(1)
    r = kclient.get("/v1/push?customer=c1", headers={"Last-Event-ID": "zz"})
    assert r.status_code == 401  # no token: a 401, audited, whatever else is wrong
    entry = audit.entries(1)[0]
    assert entry != (before[0] if before else None) and entry["action"] == "subscribe" and entry["allowed"] == "0"
    assert kclient.get("/v1/push?customer=c1", headers={**A1, "Last-Event-ID": "zz"}).status_code == 400
