"""The token is checked before a request's query string is parsed or its customers read (break-test 12f, F4:
a tokenless ``/v1/push`` naming 2,000 customers, or a 360 with 4,000 query parameters, cost the service 10-16
refusals' CPU before its 401). Counted, never timed: starlette's query parsing and the service's identifier
canonicalisation, around one tokenless request each."""

from __future__ import annotations

from typing import Any

import pytest
import starlette.datastructures

from gateway import api
from tests.gateway.conftest import bearer, token

MANY = "&".join(f"customer=email:{i}@x.co" for i in range(2000))


@pytest.fixture
def counted(monkeypatch) -> dict[str, int]:
    calls = {"parse_qsl": 0, "customer_key": 0}
    real_parse, real_key = starlette.datastructures.parse_qsl, api.customer_key

    def parse_qsl(*args: Any, **kwargs: Any) -> Any:
        calls["parse_qsl"] += 1
        return real_parse(*args, **kwargs)

    def customer_key(raw: str) -> str:
        calls["customer_key"] += 1
        return real_key(raw)

    monkeypatch.setattr(starlette.datastructures, "parse_qsl", parse_qsl)
    monkeypatch.setattr(api, "customer_key", customer_key)
    return calls


def test_a_tokenless_push_naming_thousands_of_customers_is_refused_before_they_are_read(client, counted):
    r = client.get(f"/v1/push?{MANY}")
    assert r.status_code == 401
    assert counted == {"parse_qsl": 0, "customer_key": 1}  # the audit's name for the first one only
    entry = client.app.state.service.audit.entries(1)[0]
    assert (entry["action"], entry["allowed"], entry["customer"].split("#")[0]) == ("subscribe", "0", "email")


def test_a_tokenless_360_with_thousands_of_parameters_is_refused_before_they_are_parsed(client, counted):
    assert client.get(f"/v1/customers/c1?{MANY}&timeline=5").status_code == 401
    assert counted["parse_qsl"] == 0


def test_with_a_token_both_are_read_as_before(client):
    a1 = bearer(token("a1", queues=("billing",)))
    assert client.get("/v1/customers/c1?timeline=2&channel=chat", headers=a1).json()["access"]["why"]
    r = client.get(f"/v1/push?{MANY}", headers=a1)
    assert r.status_code == 400 and "at most" in r.json()["detail"]  # too many customers, after the token
