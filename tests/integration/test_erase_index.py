"""The claims index ``ls:{<cust>}:claims`` (state.keys): every claimant's, bounded (break-test 12j).

* a device's own index reaches the cookies that fell out of its 32 newest links, so its customer's erasure
  cascades through the device to them (J1);
* a profile claims at most ``MAX_CLAIMS`` identifiers in its life, so its index and its erasure are bounded (J2);
* an erasure leaves its tombstone (``erased:*``) only on identifiers the erased customer claimed first (J3).
"""

from __future__ import annotations

from livesignals import metrics
from operators.profile360 import update
from state import reader
from state.connection import connect
from state.erasure import ErasureLedger, export
from state.keys import Keys
from state.retention import Retention
from tests.helpers import T0, event
from tests.integration.test_erase import erase_settings as erase_settings  # the fixture: single and Cluster
from tests.integration.test_erase import everything, messages, occurrences
from tests.integration.test_erase_shared import MIN, drain, engine_for


def test_the_erasure_reaches_the_cookies_that_fell_out_of_its_devices_linked_list(erase_settings):
    """J1: the customer's own app device linked more than 32 cookies (a new one per session); the first cookie
    and its pre-login browsing stayed after the erasure, its claim set naming the erased device for 400 days."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, out = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    dev = {"device_id": "dvj1"}
    steps = [
        (event("app_event", t=T0, action="open"), {**dev, "cookie_id": "ck0-j1"}),
        (event("web_event", t=T0 + MIN, action="search", url="https://shop/search?q=zq-j1-before"),
         {"cookie_id": "ck0-j1"}),
        (event("app_event", t=T0 + 2 * MIN, action="login"), {"customer_id": "dtj1", **dev}),
        *[(event("app_event", t=T0 + (3 + i) * MIN, action="page_view"), {**dev, "cookie_id": f"ck{i + 1}-j1"})
          for i in range(update.MAX_LINKED + 1)],
    ]  # fmt: skip
    journey_ = [{**e, "customer": who, "event_id": f"j1-{i}"} for i, (e, who) in enumerate(steps)]
    engine.process(messages(journey_, 0, 0))
    assert client.smembers(keys.owners("cookie_id:ck0-j1")) == {b"device_id:dvj1"}
    assert client.ttl(keys.claims("device_id:dvj1")) > 0  # an anonymous claimant's index expires
    erase = {**event("erase", "dtj1", T0 + 60 * MIN, channel="backoffice"), "event_id": "erase-dtj1"}
    engine.process(messages([erase], 0, len(journey_)))
    drain(engine, out, s)
    assert not client.exists(keys.owners("cookie_id:ck0-j1"), keys.claims("device_id:dvj1"))
    assert not client.exists(keys.profile("cookie_id:ck0-j1"), keys.timeline("cookie_id:ck0-j1"))
    assert occurrences(everything(client, s), ("zq-j1-before", "dvj1", "customer_id:dtj1")) == {}


def test_the_export_reads_exactly_what_the_erasure_takes_through_a_devices_claims_index(erase_settings):
    """K1: the export followed the customer's own claims index only, the erasure every claimant's on the way: the
    cookies past the device's 32 newest links (and their browsing) were erased but never exported. The export
    now walks the erasure's own way (``operators.erasure.reach``): what it shows as the customer's is what goes."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, out = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    dev = {"device_id": "dvk1"}
    steps = [
        (event("app_event", t=T0, action="open"), {**dev, "cookie_id": "ck0-k1"}),
        (event("web_event", t=T0 + MIN, action="search", url="https://shop/search?q=zq-k1-before"),
         {"cookie_id": "ck0-k1"}),
        (event("app_event", t=T0 + 2 * MIN, action="login"), {"customer_id": "dtk1", **dev}),
        *[(event("app_event", t=T0 + (3 + i) * MIN, action="page_view"), {**dev, "cookie_id": f"ck{i + 1}-k1"})
          for i in range(update.MAX_LINKED + 1)],
    ]  # fmt: skip
    journey_ = [{**e, "customer": who, "event_id": f"k1-{i}"} for i, (e, who) in enumerate(steps)]
    engine.process(messages(journey_, 0, 0))
    cookies = {f"cookie_id:ck{i}-k1" for i in range(update.MAX_LINKED + 2)}
    ledger = ErasureLedger(client, keys, Retention.from_settings(s))
    doc = export(client, keys, "customer_id:dtk1", ledger)
    own = {i for i, held in doc["linked"].items() if not held.get("shared")}
    assert own == {"device_id:dvk1", *cookies}  # the oldest cookie too, out of the device's 32 newest links
    assert "zq-k1-before" in str(doc["linked"]["cookie_id:ck0-k1"])  # with its browsing before the login
    held = {k for k in own | {"customer_id:dtk1"} if client.exists(keys.profile(k))}
    erase = {**event("erase", "dtk1", T0 + 60 * MIN, channel="backoffice"), "event_id": "erase-dtk1"}
    engine.process(messages([erase], 0, len(journey_)))
    drain(engine, out, s)
    assert not client.exists(*(keys.profile(k) for k in held))  # the erasure took exactly what was exported
    origin = f"in:0:{len(journey_)}"  # this erase's entries in the erasure audit stream
    erased = {r["subject"] for r in ledger.audit() if r.get("origin") == origin}
    exported = {ledger.subject(k) for k in own | {"customer_id:dtk1"}}
    assert erased == exported  # each key exported was erased, and no other


def test_a_profile_claims_at_most_max_claims_identifiers_and_its_erasure_takes_them_all(erase_settings, monkeypatch):
    """J2: one account logged in with a fresh cookie per request grew its index without bound (no TTL, a member
    per cookie); the erase then read and cascaded all of them in one batch (24 s at 20,000)."""
    monkeypatch.setattr(update, "MAX_CLAIMS", 5)
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, out = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    refused = metrics.IDENTITY_CLAIMS_REFUSED._value.get()
    logins = [{**event("web_event", t=T0 + i * MIN, action="login"), "event_id": f"j2-{i}",
               "customer": {"customer_id": "cgj2", "cookie_id": f"ck{i}-j2"}} for i in range(8)]  # fmt: skip
    logins.insert(
        7,
        {
            **event("web_event", t=T0 + 7 * MIN - 1, action="page_view"),
            "event_id": "j2-alone",
            "customer": {"cookie_id": "ck7-j2"},
        },
    )  # browsing on a cookie before its (refused) login
    engine.process(messages(logins, 0, 0))
    index = {m.decode() for m in client.smembers(keys.claims("customer_id:cgj2"))}
    assert index == {f"cookie_id:ck{i}-j2" for i in range(5)}
    assert not client.exists(*(keys.owners(f"cookie_id:ck{i}-j2") for i in range(5, 8)))  # not claimed
    assert metrics.IDENTITY_CLAIMS_REFUSED._value.get() - refused == 3
    erase = {**event("erase", "cgj2", T0 + 60 * MIN, channel="backoffice"), "event_id": "erase-cgj2"}
    engine.process(messages([erase], 0, len(logins)))
    drain(engine, out, s)
    assert not client.exists(keys.claims("customer_id:cgj2"), *(keys.owners(i) for i in index))
    assert occurrences(everything(client, s), ("customer_id:cgj2",)) == {}
    # known limit (12k, K3/K8): a cookie refused past the bound is no claim of the customer's, so its erasure does
    # not reach what was done on it alone (browsing before the login); that expires with the anonymous TTL
    unlinked = keys.profile("cookie_id:ck7-j2")
    assert client.exists(unlinked) and 0 < client.ttl(unlinked) <= s.anonymous_ttl_s


def test_a_customer_who_claimed_a_victims_cookie_after_the_victim_plants_no_tombstone_by_its_erasure(erase_settings):
    """J3: an outsider logged in with a copy of the victim's cookie, then had itself erased: the erased claimant
    (``erased:*``) took its place in the cookie's claim set for good, so the cookie was shared and the victim's own
    browsing left the victim's card. The tombstone now goes only where the erased customer claimed first."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, out = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    steps = [
        (event("web_event", t=T0, action="login"), {"customer_id": "pvj3", "cookie_id": "ckpj3"}),
        (event("web_event", t=T0 + MIN, action="search", url="https://shop/search?q=zq-j3-own"),
         {"cookie_id": "ckpj3"}),
        (event("web_event", t=T0 + 2 * MIN, action="login"), {"customer_id": "outj3", "cookie_id": "ckpj3"}),
    ]  # fmt: skip
    journey_ = [{**e, "customer": who, "event_id": f"j3-{i}"} for i, (e, who) in enumerate(steps)]
    engine.process(messages(journey_, 0, 0))
    assert client.smembers(keys.owners("cookie_id:ckpj3")) == {b"customer_id:pvj3", b"customer_id:outj3"}
    erase = {**event("erase", "outj3", T0 + 60 * MIN, channel="backoffice"), "event_id": "erase-outj3"}
    engine.process(messages([erase], 0, len(journey_)))
    drain(engine, out, s)
    assert client.smembers(keys.owners("cookie_id:ckpj3")) == {b"customer_id:pvj3"}
    victim = reader.read_360(client, keys, "customer_id:pvj3", timeline=50)
    assert "zq-j3-own" in str(victim) and victim["identity"]["shared_identifiers"] == [], victim["identity"]
    # the victim's own erasure, later, takes the cookie and its first-claimant record with it
    erase = {**event("erase", "pvj3", T0 + 61 * MIN, channel="backoffice"), "event_id": "erase-pvj3"}
    engine.process(messages([erase], 0, len(journey_) + 1))
    drain(engine, out, s)
    assert not client.exists(keys.owners("cookie_id:ckpj3"), keys.first_claimant("cookie_id:ckpj3"))
    assert occurrences(everything(client, s), ("zq-j3-own", "pvj3", "outj3")) == {}


def test_known_limit_an_outsider_who_claimed_a_cookie_first_keeps_its_history_after_the_victims_erasure(
    erase_settings,
):
    """Known limit (break-test 12l, M3; README, *Shared identifiers*): ``:first`` is the first customer whose claim
    was processed. The victim browsed anonymously on a cookie, an outsider with a copy logged in with it first,
    then the victim did; the victim's erasure plants nothing, so the cookie is the outsider's alone and its whole
    history -- the victim's anonymous browsing included -- is on the outsider's card. Pinned so that the README
    changes with it."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, out = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    steps = [
        (event("web_event", t=T0, action="search", url="https://shop/search?q=zq-m3-anon"), {"cookie_id": "ckm3"}),
        (event("web_event", t=T0 + MIN, action="login"), {"customer_id": "outm3", "cookie_id": "ckm3"}),
        (event("web_event", t=T0 + 2 * MIN, action="login"), {"customer_id": "vicm3", "cookie_id": "ckm3"}),
    ]  # fmt: skip
    journey_ = [{**e, "customer": who, "event_id": f"m3-{i}"} for i, (e, who) in enumerate(steps)]
    engine.process(messages(journey_, 0, 0))
    assert client.get(keys.first_claimant("cookie_id:ckm3")) == b"customer_id:outm3"
    erase = {**event("erase", "vicm3", T0 + 60 * MIN, channel="backoffice"), "event_id": "erase-vicm3"}
    engine.process(messages([erase], 0, len(journey_)))
    drain(engine, out, s)
    assert client.smembers(keys.owners("cookie_id:ckm3")) == {b"customer_id:outm3"}  # nothing planted
    outsider = reader.read_360(client, keys, "customer_id:outm3", timeline=50)
    assert "zq-m3-anon" in str(outsider) and "cookie_id:ckm3" in outsider["identity"]["merged"], outsider["identity"]


def test_a_claim_set_with_no_known_claimant_left_after_the_erasure_expires_again(erase_settings):
    """J5: a cookie kept through the family tablet (Bob claims the tablet, the tablet the cookie) whose only
    customer claimant was the erased Alice kept ``{erased:*, device_id:...}`` with no TTL, for good. With no
    known claimant left it gets the anonymous claims' TTL back (``identity_claim_ttl_s``)."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, out = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    steps = [
        (event("app_event", t=T0, action="login"), {"customer_id": "ea-j5", "device_id": "dv-j5"}),
        (event("app_event", t=T0 + MIN, action="login"), {"customer_id": "eb-j5", "device_id": "dv-j5"}),
        (event("web_event", t=T0 + 2 * MIN, action="page_view"), {"device_id": "dv-j5", "cookie_id": "ck-j5"}),
        (event("web_event", t=T0 + 3 * MIN, action="login"), {"customer_id": "ea-j5", "cookie_id": "ck-j5"}),
    ]  # fmt: skip
    journey_ = [{**e, "customer": who, "event_id": f"j5-{i}"} for i, (e, who) in enumerate(steps)]
    engine.process(messages(journey_, 0, 0))
    erase = {**event("erase", "ea-j5", T0 + 60 * MIN, channel="backoffice"), "event_id": "erase-ea-j5"}
    engine.process(messages([erase], 0, len(journey_)))
    drain(engine, out, s)
    assert client.smembers(keys.owners("cookie_id:ck-j5")) == {b"erased:*", b"device_id:dv-j5"}
    assert 0 < client.ttl(keys.owners("cookie_id:ck-j5")) <= s.identity_claim_ttl_s
    assert client.ttl(keys.owners("device_id:dv-j5")) == -1  # Bob still claims the tablet: no TTL


def test_the_first_claimant_record_has_the_lifetime_of_its_claim_set(erase_settings):
    """K4: ``ls:{<ident>}:first`` never expired, whatever its claim set did: a cookie kept through the family tablet
    got the anonymous claims' TTL back when its only customer was erased (J5), but its first-claimant record, holding
    the erased claimant under the cookie's own name, stayed for good. It now follows the claim set: the set's TTL
    while no customer claims it (refreshed with it), none again once a customer claims it."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, out = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    steps = [
        (event("app_event", t=T0, action="login"), {"customer_id": "ea-k4", "device_id": "dv-k4"}),
        (event("app_event", t=T0 + MIN, action="login"), {"customer_id": "eb-k4", "device_id": "dv-k4"}),
        (event("web_event", t=T0 + 2 * MIN, action="page_view"), {"device_id": "dv-k4", "cookie_id": "ck-k4"}),
        (event("web_event", t=T0 + 3 * MIN, action="login"), {"customer_id": "ea-k4", "cookie_id": "ck-k4"}),
    ]  # fmt: skip
    journey_ = [{**e, "customer": who, "event_id": f"k4-{i}"} for i, (e, who) in enumerate(steps)]
    engine.process(messages(journey_, 0, 0))
    cookie = "cookie_id:ck-k4"
    assert (
        client.get(keys.first_claimant(cookie)) == b"customer_id:ea-k4"
        and client.ttl(keys.first_claimant(cookie)) == -1
    )
    erase = {**event("erase", "ea-k4", T0 + 30 * MIN, channel="backoffice"), "event_id": "erase-ea-k4"}
    engine.process(messages([erase], 0, len(journey_)))
    drain(engine, out, s)
    assert client.get(keys.first_claimant(cookie)) == b"erased:*"  # where the erased customer claimed first
    owners_ttl, first_ttl = client.ttl(keys.owners(cookie)), client.ttl(keys.first_claimant(cookie))
    assert 0 < first_ttl <= s.identity_claim_ttl_s and abs(first_ttl - owners_ttl) <= 1, (first_ttl, owners_ttl)
    client.expire(keys.owners(cookie), 1000)
    client.expire(keys.first_claimant(cookie), 1000)
    again = [{**event("web_event", t=T0 + 40 * MIN, action="page_view"), "event_id": "k4-again",
              "customer": {"device_id": "dv-k4b", "cookie_id": "ck-k4"}}]  # fmt: skip
    engine.process(messages(again, 0, len(journey_) + 1))  # a new anonymous claim refreshes both
    assert client.ttl(keys.first_claimant(cookie)) > 1000 and client.ttl(keys.owners(cookie)) > 1000
    login = [{**event("web_event", t=T0 + 41 * MIN, action="login"), "event_id": "k4-login",
              "customer": {"customer_id": "ec-k4", "cookie_id": "ck-k4"}}]  # fmt: skip
    engine.process(messages(login, 0, len(journey_) + 2))  # a customer's claim: no TTL for either
    assert client.ttl(keys.owners(cookie)) == -1 and client.ttl(keys.first_claimant(cookie)) == -1
