"""The audit trail cannot be flooded or made to keep personal data (break-test of issue 12, findings 2 and 7):
pseudonymous customers of a fixed size, a queue named many times audited once, trimmed by age as well as count,
and a refused token's claimed subject and source kept."""

from __future__ import annotations

import time

from gateway.audit import AuditLog
from state.erasure import ErasureLedger
from state.keys import Keys
from tests.gateway.conftest import OTHER_SECRET, bearer, token

A1 = bearer(token("a1", queues=("billing",)))


def log_of(world, **kw) -> AuditLog:
    return AuditLog(world.client, world.settings.key_prefix, 1000, **kw)


def test_customers_are_pseudonyms_the_erasure_ledger_can_find(world, client):
    assert client.get("/v1/customers/email:ann@example.com", headers=A1).status_code == 200
    entry = log_of(world).entries(1)[0]
    ledger = ErasureLedger(world.client, Keys(world.settings.key_prefix))
    assert entry["customer"] == f"email#{ledger.subject('email:ann@example.com')} -> " \
                                f"customer_id#{ledger.subject('customer_id:c1')}"  # fmt: skip
    raw = b"".join(v for _, fields in world.client.xrange(log_of(world).key) for v in fields.values())
    assert b"ann@example.com" not in raw and b":c1" not in raw


def test_an_attacker_sets_neither_the_size_nor_the_number_of_entries(world, client):
    log = log_of(world)
    before = world.client.xlen(log.key)
    junk = "customer_id:" + "Z" * 116
    assert client.get(f"/v1/customers/{junk}", headers={"Authorization": "Bearer x"}).status_code == 401
    assert len(log.entries(1)[0]["customer"]) < 50  # a fixed-size pseudonym, not the caller's 128 characters
    query = "&".join(["queue=billing"] * 400 + ["queue=retention"])
    assert client.get(f"/v1/push?{query}", headers=A1).status_code == 403
    assert world.client.xlen(log.key) - before == 3  # the 401, billing once, retention once


def test_the_trail_is_trimmed_by_age_as_well_as_by_count(world):
    log = log_of(world, max_age_s=3600)
    old_ms = int(time.time() * 1000) - 2 * 86_400_000
    for i in range(1000):
        world.client.xadd(log.key, {"at": old_ms + i, "who": "old"}, id=f"{old_ms + i}-0")
    log.record("a1", "agent", "read_360", "customer_id:c1", None, True, "test")
    left_old = sum(1 for _, fields in world.client.xrange(log.key) if fields.get(b"who") == b"old")
    assert left_old < 200  # approximate trimming drops whole nodes: the old entries go, the new one stays
    assert log.entries(1)[0]["who"] == "a1"


def test_a_refused_token_keeps_the_subject_it_claims_and_where_it_came_from(world, client):
    forged = token("a2", queues=("retention",), secret=OTHER_SECRET[::-1])
    assert client.get("/v1/customers/c3", headers=bearer(forged)).status_code == 401
    entry = log_of(world).entries(1)[0]
    assert (entry["who"], entry["claimed"], entry["source"]) == ("-", "a2", "testclient")


def test_trimming_by_age_is_sent_at_most_once_a_second(world):
    """A read's audit append carried an XTRIM MINID every time: one more command to pack, send and parse per
    read. The count bound (MAXLEN ~) still rides on every XADD."""
    from gateway.audit import TRIM_EVERY_S

    log = log_of(world, max_age_s=3600)
    before = world.client.info("commandstats").get("cmdstat_xtrim", {}).get("calls", 0)
    started = time.monotonic()
    for i in range(50):
        log.record("a1", "agent", "read_360", f"customer_id:c{i}", None, True, "test")
    elapsed = time.monotonic() - started
    trims = world.client.info("commandstats").get("cmdstat_xtrim", {}).get("calls", 0) - before
    assert 1 <= trims <= elapsed / TRIM_EVERY_S + 1
