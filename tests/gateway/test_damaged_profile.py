"""The agent desktop answers a customer whose stored profile it cannot read (a damaged frame, an empty value,
JSON that is not a profile, a section of the wrong type) as one it holds nothing for, after the access
decision and its audit: an agent gets 403 and the denial is audited (break-test 16c, C1: HTTP 500, unaudited),
an analyst, whom any customer is granted, gets 404 (no empty card), on every route."""

from __future__ import annotations

import pytest

from gateway.audit import AuditLog
from livesignals import documents
from tests.gateway.conftest import bearer, token

A1 = bearer(token("a1", queues=("billing",)))  # serving c1 on chat, before the damage
A2 = bearer(token("a2", queues=("retention",)))  # never assigned c1
ANALYST = bearer(token("x", role="analyst"))
ROUTES = ("", "/timeline", "/flags", "/actions")


def damages(stored: bytes) -> list[bytes]:
    return [stored[:-5], b"", b"null", b'{"events": "x"}', b'{"activity": []}']


@pytest.mark.parametrize("which", range(5))
def test_a_damaged_profile_is_answered_as_one_held_nothing_for_after_the_decision_and_its_audit(world, client, which):
    key = world.keys.profile("customer_id:c1")
    stored = world.client.get(key)
    assert documents.is_compressed(stored)
    log = AuditLog(world.client, world.settings.key_prefix, 1000)
    pseudonym_c1, pseudonym_nobody = world.pseudonym("c1"), world.pseudonym("nobody")
    for route in ROUTES:
        assert client.get(f"/v1/customers/c1{route}", headers=A1).status_code == 200  # readable: a1 serves c1
    world.client.set(key, damages(stored)[which])
    for route in ROUTES:
        for headers in (A1, A2):
            before = world.client.xlen(log.key)
            damaged = client.get(f"/v1/customers/c1{route}", headers=headers)
            assert damaged.status_code == 403, damaged.text
            entry = log.entries(1)[0]
            assert world.client.xlen(log.key) == before + 1 and entry["allowed"] == "0"
            assert entry["reason"] == "not assigned to you"
            nobody = client.get(f"/v1/customers/nobody{route}", headers=headers)
            assert (nobody.status_code, nobody.json()["detail"]) == (403, damaged.json()["detail"])
        damaged = client.get(f"/v1/customers/{pseudonym_c1}{route}", headers=ANALYST)
        assert damaged.status_code == 404, damaged.text
        assert log.entries(1)[0]["allowed"] == "1"  # granted (analysts see any customer, masked) and audited
        nobody = client.get(f"/v1/customers/{pseudonym_nobody}{route}", headers=ANALYST)
        assert (nobody.status_code, nobody.json()["detail"]) == (404, damaged.json()["detail"])
    assert world.client.get(key) == damages(stored)[which]  # the desk never writes a profile
