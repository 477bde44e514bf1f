"""A refused caller cannot flush the audit trail: at most N refusal entries per minute, by address and by
claimed subject; beyond, one summarising entry per window and a metric (the clock is the test's)."""

from __future__ import annotations

import time

import jwt
import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.audit import AuditLog
from gateway.refusals import SUMMARY_ACTION, RefusalBudget
from livesignals import metrics
from livesignals.settings import Settings
from livesignals.settings_check import SettingsError
from tests.gateway.conftest import SECRET, NullProducer, bearer, token

LIMIT = 5


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(world):
    return create_app(world.settings.replace(gateway_audit_refusals_per_min=LIMIT), client=world.client,
                      producer=NullProducer(), hub_block_ms=200)  # fmt: skip


@pytest.fixture
def clock(app) -> Clock:
    c = Clock()
    app.state.service.refusals.clock = c
    return c


def caller(app, address: str) -> TestClient:
    """A client calling from ``address`` (no lifespan: reads need no push reader)."""
    return TestClient(app, client=(address, 4000))


def audit(world) -> list[dict[str, str]]:
    return list(reversed(AuditLog(world.client, world.settings.key_prefix, 1000).entries(1000)))


def unaudited(limit: str) -> float:
    return metrics.GATEWAY_REFUSALS_UNAUDITED.labels(limit)._value.get()


def expired_token(sub: str, secret: str = SECRET) -> str:
    now = int(time.time())
    claims = {"sub": sub, "role": "agent", "queues": [], "iss": "livesignals", "exp": now - 5}
    return jwt.encode(claims, secret, algorithm="HS256")


def forged_token(sub: str) -> str:
    """A token naming ``sub`` that its bearer could make without the secret (its signature does not verify):
    before break-test 12j (J6) these tests used genuine expired tokens, pooled with forgeries then."""
    return expired_token(sub, secret="not-the-deployment-secret-at-all-32b")


def test_one_address_writes_at_most_the_bound_then_one_summary_per_window(world, app, clock):
    before = unaudited("source")
    c = caller(app, "10.0.0.7")
    for _ in range(LIMIT + 20):
        assert c.get("/v1/customers/c1").status_code == 401  # no token at all
    entries = audit(world)
    refusals = [e for e in entries if e["action"] == "read_360"]
    summaries = [e for e in entries if e["action"] == SUMMARY_ACTION]
    assert len(refusals) == LIMIT and len(summaries) == 1
    assert summaries[0]["source"] == "10.0.0.7" and summaries[0]["allowed"] == "0"
    assert unaudited("source") - before == 20
    clock.now += 60  # the next minute: written again, and summarised again past the bound
    for _ in range(LIMIT + 2):
        c.get("/v1/customers/c1")
    entries = audit(world)
    assert len([e for e in entries if e["action"] == "read_360"]) == 2 * LIMIT
    assert len([e for e in entries if e["action"] == SUMMARY_ACTION]) == 2


def test_one_claimed_subject_from_many_addresses_is_bounded_too(world, app, clock):
    before = unaudited("subject")
    for i in range(LIMIT + 4):
        c = caller(app, f"10.1.0.{i}")
        assert c.get("/v1/customers/c1", headers=bearer(forged_token("mallory"))).status_code == 401
    entries = audit(world)
    assert len([e for e in entries if e["action"] == "read_360"]) == LIMIT
    (summary,) = [e for e in entries if e["action"] == SUMMARY_ACTION]
    assert summary["claimed"] == "mallory"
    assert unaudited("subject") - before == 4


def test_an_authenticated_callers_cheap_refusals_are_bounded_but_its_denials_and_reads_are_all_audited(
    world, app, clock
):
    """Fourth break-test, D5: a verified agent spent its own refusal budget with malformed ids, then probed
    customers with no entry naming them. Its denials on customers are now written like its reads (bounded
    by gateway_audited_per_min); the budget bounds the cheap refusals (malformed ids, roles, tokens)."""
    a1 = bearer(token("a1", queues=("billing",)))
    c = caller(app, "10.2.0.1")
    for i in range(LIMIT + 3):
        assert c.get(f"/v1/customers/nokind:x{i}", headers=a1).status_code == 400  # cheap: budgeted
    for _ in range(LIMIT + 3):
        assert c.get("/v1/customers/c3", headers=a1).status_code == 403  # c3 is a2's: every probe written
    for _ in range(3):
        assert c.get("/v1/customers/c1", headers=a1).status_code == 200
    entries = audit(world)
    denied = [e for e in entries if e["action"] == "read_360" and e["allowed"] == "0"]
    allowed = [e for e in entries if e["action"] == "read_360" and e["allowed"] == "1"]
    malformed, probes = denied[:LIMIT], denied[LIMIT:]
    assert len(malformed) == LIMIT and len(probes) == LIMIT + 3 and len(allowed) == 3
    assert all(e["source"] == "10.2.0.1" and e["who"] == "a1" for e in denied)
    assert len({e["customer"] for e in probes}) == 1 and "nokind" not in probes[0]["customer"]
    (summary,) = [e for e in entries if e["action"] == SUMMARY_ACTION]
    assert summary["who"] == "a1"


def test_other_callers_keep_their_own_budget(world, app, clock):
    noisy, other = caller(app, "10.3.0.1"), caller(app, "10.3.0.2")
    for _ in range(LIMIT + 5):
        noisy.get("/v1/customers/c1")
    assert other.get("/v1/customers/c1").status_code == 401
    entries = audit(world)
    assert [e["source"] for e in entries if e["action"] == "read_360"].count("10.3.0.2") == 1


def test_the_table_of_callers_is_bounded():
    budget = RefusalBudget(1, clock=lambda: 0.0)
    import gateway.refusals as refusals

    for i in range(refusals.MAX_CALLERS + 10):
        budget.admit(f"10.{i}", "-")
    assert len(budget._counts) <= refusals.MAX_CALLERS + 1


@pytest.mark.parametrize("bad", [0, -1, "many"])
def test_the_setting_is_validated(bad):
    with pytest.raises(SettingsError):
        Settings(gateway_audit_refusals_per_min=bad)


def test_an_authenticated_callers_denied_queue_subscriptions_are_all_audited(world, app, clock):
    """Fifth break-test, E1 (D5's variant): after spending its own refusal budget with malformed ids, an agent
    tried other teams' queues with no entry written. Like its denials on customers, they are now all audited
    (bounded by gateway_audited_per_min)."""
    a1 = bearer(token("a1", queues=("billing",)))
    c = caller(app, "10.2.0.9")
    for i in range(LIMIT + 3):
        assert c.get(f"/v1/customers/nokind:x{i}", headers=a1).status_code == 400  # the budget spent
    for team in range(4):
        assert c.get(f"/v1/push?queue=team{team}", headers=a1).status_code == 403
    probes = [e for e in audit(world) if e["action"] == "subscribe" and e["allowed"] == "0"]
    assert sorted(e["customer"] for e in probes) == [f"queue:team{t}" for t in range(4)], probes
    assert all(e["who"] == "a1" and e["source"] == "10.2.0.9" for e in probes)


def test_one_caller_opens_at_most_the_bound_of_push_subscriptions_a_minute(world, clock):
    """Second break-test, B4: opening and closing a subscription in a loop read and audited its customers
    each time, without limit."""
    app = create_app(world.settings.replace(gateway_push_subscribes_per_min=3), client=world.client,
                     producer=NullProducer(), hub_block_ms=200)  # fmt: skip
    app.state.service.subscribes.clock = clock
    c = caller(app, "10.4.0.1")
    a1, a2 = bearer(token("a1", queues=("billing",))), bearer(token("a2", queues=("retention",)))
    before = world.client.xlen(f"{world.settings.key_prefix}:audit")
    answers = [c.get("/v1/push?queue=retention", headers=a1).status_code for _ in range(5)]
    assert answers == [403, 403, 403, 429, 429]
    added = audit(world)[-(world.client.xlen(f"{world.settings.key_prefix}:audit") - before) :]
    assert len(added) == 5 and [e["allowed"] for e in added] == ["0"] * 5  # a 429 reads nothing; it is a refusal
    assert all(e["reason"].startswith("rate limited: at most 3 push subscriptions") for e in added[3:]), added
    assert c.get("/v1/push?queue=billing", headers=a2).status_code == 403  # another caller: its own count
    clock.now += 60
    assert c.get("/v1/push?queue=retention", headers=a1).status_code == 403  # a new minute


def test_nobody_elses_refusals_silence_an_authenticated_callers(world, app, clock):
    """Break-test 12c, C2: 61 tokenless requests from an address (one NAT, the reverse proxy) spent its budget,
    and every refusal of every agent behind it went unaudited; forged tokens claiming an agent's name must not
    spend that agent's budget either."""
    c = caller(app, "10.4.0.1")
    for _ in range(LIMIT + 3):
        assert c.get("/v1/customers/c1").status_code == 401  # no token: the address's budget is spent
    for i in range(LIMIT + 3):
        assert c.get("/v1/customers/c1", headers=bearer(forged_token("a1"))).status_code == 401  # "a1", forged
    a1 = bearer(token("a1", queues=("billing",)))
    for key in ("c3", "email:nobody@example.com", "c5"):
        assert c.get(f"/v1/customers/{key}", headers=a1).status_code == 403
    entries = audit(world)
    probes = [e for e in entries if e["who"] == "a1" and e["action"] == "read_360"]
    assert len(probes) == 3 and all(e["allowed"] == "0" and e["source"] == "10.4.0.1" for e in probes)
    for i in range(LIMIT + 1):  # its own cheap refusals still spend its own budget (denials do not: D5)
        assert c.get(f"/v1/customers/nokind:x{i}", headers=a1).status_code == 400
    summaries = [e for e in audit(world) if e["action"] == SUMMARY_ACTION and e["who"] == "a1"]
    assert len(summaries) == 1


def test_one_caller_makes_at_most_the_bound_of_audited_customer_requests_a_minute(world, clock):
    """Break-test 12c, C3: allowed reads of its own customer let one agent flush the audit trail (MAXLEN)."""
    app = create_app(world.settings.replace(gateway_audited_per_min=LIMIT), client=world.client,
                     producer=NullProducer(), hub_block_ms=200)  # fmt: skip
    app.state.service.decisions.clock = clock
    c = caller(app, "10.5.0.1")
    a1, s1 = bearer(token("a1", queues=("billing",))), bearer(token("s1", role="supervisor", queues=("billing",)))
    key = f"{world.settings.key_prefix}:audit"
    before = world.client.xlen(key)
    answers = [c.get("/v1/customers/c1/actions", headers=a1).status_code for _ in range(LIMIT + 3)]
    assert answers == [200] * LIMIT + [429] * 3
    added = audit(world)[-(world.client.xlen(key) - before) :]  # a 429 reads nothing, and is audited as a refusal
    assert [e["allowed"] for e in added] == ["1"] * LIMIT + ["0"] * 3, added
    assert all(e["reason"].startswith("rate limited: at most 5 customer requests") for e in added[LIMIT:])
    assert c.get("/v1/customers/c1", headers=s1).status_code == 200  # another caller: its own count
    clock.now += 60
    assert c.get("/v1/customers/c1/actions", headers=a1).status_code == 200  # a new minute


def test_rotating_addresses_without_a_token_is_bounded_too(world, app, clock):
    """Break-test 12c, C3: each new source address started a fresh count; all tokenless callers together
    write at most UNVERIFIED_SHARE times the bound a minute, then one summary."""
    from gateway.refusals import UNVERIFIED_SHARE

    before = unaudited("unverified")
    addresses = 3 * UNVERIFIED_SHARE
    for i in range(addresses):
        c = caller(app, f"10.6.{i // 250}.{i % 250}")
        for _ in range(LIMIT):
            assert c.get("/v1/customers/c1").status_code == 401
    entries = audit(world)
    assert len([e for e in entries if e["action"] == "read_360"]) == UNVERIFIED_SHARE * LIMIT
    assert len([e for e in entries if e["action"] == SUMMARY_ACTION]) == 1
    assert unaudited("unverified") - before == (addresses - UNVERIFIED_SHARE) * LIMIT
    a1 = bearer(token("a1", queues=("billing",)))  # a verified caller is not held back by them
    assert caller(app, "10.6.0.1").get("/v1/customers/c3", headers=a1).status_code == 403
    assert audit(world)[-1]["who"] == "a1"


def test_made_up_subjects_write_a_bounded_number_of_summaries_a_minute(world, app, clock):
    """Break-test 12h, H2: forged tokens naming a new subject every LIMIT + 1 requests each wrote one
    ``refusals_over_limit`` summary, outside the shared bound: the trail grew with the request rate. Callers
    without a valid token now write at most UNVERIFIED_SUMMARIES summaries a minute between them, then one
    aggregate entry; a verified caller's denial and its own summary are still written."""
    from gateway.refusals import UNVERIFIED_SHARE, UNVERIFIED_SUMMARIES

    c = caller(app, "10.7.0.1")
    subjects = 3 * UNVERIFIED_SUMMARIES
    for s in range(subjects):
        forged = bearer(forged_token(f"fake-{s}"))
        for _ in range(LIMIT + 1):
            assert c.get("/v1/customers/c1", headers=forged).status_code == 401
    entries = audit(world)
    summaries = [e for e in entries if e["action"] == SUMMARY_ACTION]
    assert len(summaries) == UNVERIFIED_SUMMARIES + 1, len(summaries)
    assert summaries[-1]["who"] == "*" and summaries[-1]["source"] == "*"
    assert len(entries) <= UNVERIFIED_SHARE * LIMIT + UNVERIFIED_SUMMARIES + 1
    a1 = bearer(token("a1", queues=("billing",)))  # a real denial of a verified caller is still recorded
    assert c.get("/v1/customers/c3", headers=a1).status_code == 403
    assert audit(world)[-1]["who"] == "a1" and audit(world)[-1]["allowed"] == "0"
    for i in range(LIMIT + 1):  # and a verified caller's summary is not held back by theirs
        assert c.get(f"/v1/customers/nokind:x{i}", headers=a1).status_code == 400
    assert [e for e in audit(world) if e["action"] == SUMMARY_ACTION][-1]["who"] == "a1"
    clock.now += 60  # the next minute: summaries again
    for _ in range(LIMIT + 1):
        c.get("/v1/customers/c1", headers=bearer(forged_token("fake-next")))
    assert [e for e in audit(world) if e["action"] == SUMMARY_ACTION][-1]["claimed"] == "fake-next"


def test_forged_tokens_never_silence_the_refusals_of_a_genuine_expired_token(world, app, clock):
    """Break-test 12j, J6: an expired token whose signature verifies was pooled with forgeries, so a flood of
    forged tokens (the shared pool spent, or the claimed subject's count) left a replayed expired token's probes
    unaudited. Its signature proves its subject: it counts in that subject's own budget."""
    from gateway.refusals import UNVERIFIED_SHARE

    c = caller(app, "10.8.0.1")
    for i in range(UNVERIFIED_SHARE * LIMIT + 3):  # the shared pool and "a1"'s claimed count, spent by forgeries
        flood = caller(app, f"10.9.{i // 250}.{i % 250}")
        assert flood.get("/v1/customers/c1", headers=bearer(forged_token("a1"))).status_code == 401
    replayed = bearer(expired_token("a1"))
    for key in ("c2", "c4", "c5"):
        assert c.get(f"/v1/customers/{key}", headers=replayed).status_code == 401
    probes = [e for e in audit(world) if e.get("reason") == "token expired" and e.get("claimed") == "a1"]
    assert len(probes) == 3 and len({e["customer"] for e in probes}) == 3, probes  # each probe, by pseudonym


def test_429s_are_audited_as_refusals_within_the_callers_refusal_budget(world, clock):
    """Break-test 12k: a 429 (a caller past its customer-request rate) left no audit entry, so a caller could go on
    probing past its rate unrecorded. Each is now a refusal entry, bounded like the others: at most
    ``gateway_audit_refusals_per_min`` a minute per caller, then one summary, the rest counted."""
    app = create_app(world.settings.replace(gateway_audited_per_min=2, gateway_audit_refusals_per_min=LIMIT),
                     client=world.client, producer=NullProducer(), hub_block_ms=200)  # fmt: skip
    app.state.service.decisions.clock = clock
    app.state.service.refusals.clock = clock
    c = caller(app, "10.6.0.1")
    a1 = bearer(token("a1", queues=("billing",)))
    key = f"{world.settings.key_prefix}:audit"
    before = world.client.xlen(key)
    answers = [c.get(f"/v1/customers/c{i}", headers=a1).status_code for i in range(40)]
    assert answers[2:] == [429] * 38
    added = audit(world)[-(world.client.xlen(key) - before) :]
    refused = [e for e in added if e["reason"].startswith("rate limited")]
    assert len(refused) == LIMIT and all(e["who"] == "a1" and e["source"] == "10.6.0.1" for e in refused), added
    assert len([e for e in added if e["action"] == SUMMARY_ACTION]) == 1 and len(added) == 2 + LIMIT + 1
