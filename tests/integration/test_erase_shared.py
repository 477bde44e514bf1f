"""Erasing by an identifier, and identifiers several customers share (the outside review of issue #14).

* an identifier a customer claimed keeps naming that customer however long ago the claim was made
  (its claim set has no TTL while a known customer claims it);
* an erase event naming an identifier alone erases its only claimant, wherever the claimant's
  partition is, and no claim set goes while its claimant stays;
* ``livesignals erase`` spells the identifier as the engine does, and says when nothing was found;
* a shared identifier (a family phone) is never another customer's way in: an export shows only that
  it is linked and shared, and erasing one claimant leaves the other's claim and phone-keyed events;
* an erase read on the repartition topic forgets the churn due index entry an input topic made;
* subject hashes and redacted dead letters are keyed even with no secret configured.
"""

from __future__ import annotations

import time
import unicodedata

import pytest
from confluent_kafka import Consumer

from app.privacy import request_erase
from livesignals import serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.partitioner import owner_partition
from livesignals.privacy import subject_hash
from operators.engine import Engine
from operators.partition import PartitionAggregates
from state import reader
from state.connection import connect
from state.erasure import export, resolve
from state.keys import Keys
from state.ownership import Ownership, claim
from state.retention import Retention
from state.store import ProfileStore
from tests.helpers import T0, event
from tests.integration.test_erase import Capture, everything, journey, messages, occurrences
from tests.integration.test_erase import erase_settings as erase_settings  # the fixture: single and Cluster

MIN = 60_000
EMAIL = "zelda.quill@example.org"
CLOCK = (T0 + 60 * MIN) / 1000


def engine_for(s, parts: int | None = None, claimed: tuple[int, ...] = ()) -> tuple[Engine, Capture]:
    """An engine on real Redis; with ``claimed``, fenced as in production (owning those partition numbers)."""
    out = Capture()
    client, keys = connect(s), Keys(s.key_prefix)
    ownership = None
    if claimed:
        ownership = Ownership(lambda p: claim(client, keys, p, [*s.input_topics, s.repartition_topic]))
        for partition in claimed:
            ownership.claim(partition)
    store = ProfileStore(
        client, keys, cluster=s.redis_cluster, retention=Retention.from_settings(s), ownership=ownership
    )
    counts = None if parts is None else {s.input_topics[0]: parts, s.repartition_topic: parts}
    return Engine(s, store, out, clock=lambda: CLOCK, partition_counts=counts), out


def drain(engine: Engine, out: Capture, s) -> list[str]:
    """Apply every erase re-published to the repartition topic (read back at its partition) until none
    is left; the keys those erased."""
    done, erased, offset = 0, [], 1000
    while done < len(out.records):
        new, done = out.records[done:], len(out.records)
        for r in new:
            if r.topic == s.repartition_topic and r.value and b'"erase"' in r.value:
                offset += 1
                origin = Origin(s.repartition_topic, r.partition or 0, offset, T0)
                report = engine.process([RawMessage(r.value, r.key, origin, r.headers)])
                erased += [e.customer_key for e in report.erasures]
    return erased


def test_a_claim_by_a_known_customer_does_not_expire(erase_settings):
    """identity_claim_ttl_s counts only for claim sets with anonymous claimants only: the email a
    customer linked once still names them long after (here: after the TTL passed)."""
    s = erase_settings.replace(models_enabled=False, identity_claim_ttl_s=1)
    engine, _ = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    engine.process(messages(journey(T0), 0, 0))
    time.sleep(2.2)
    assert client.ttl(keys.owners(f"email:{EMAIL}")) == -1
    assert resolve(client, keys, f"email:{EMAIL}")[0] == ["customer_id:c-zq"]


def test_an_erase_naming_only_an_email_erases_its_customer_on_another_partition(settings):
    """The raw erase event {"email": ...} (any producer, no CLI resolution): the email's owner finds
    the claimant and re-publishes its erase to the claimant's partition; the claim set stays until the
    claimant is gone, so nothing is left half-erased."""
    s = settings.replace(models_enabled=False, policy_clock="stream", input_topics=("in",))
    parts = 16
    engine, out = engine_for(s, parts)
    client, keys = connect(s), Keys(s.key_prefix)
    home, email_home = owner_partition("customer_id:c-zq", parts), owner_partition(f"email:{EMAIL}", parts)
    assert home != email_home  # the case under test
    engine.process(messages(journey(T0)[1:], home, 0))
    by_email = {**event("email", t=T0 + 7 * MIN, text="Zelda Quillfeather writes again"), "event_id": "zq-mail",
                "customer": {"email": EMAIL}}  # fmt: skip
    engine.process(messages([by_email], email_home, 0))
    assert client.exists(keys.profile("customer_id:c-zq"), keys.profile(f"email:{EMAIL}")) == 2

    raw = {**event("erase", t=T0 + 10 * MIN, channel="backoffice", request_id="raw-1"), "event_id": "raw-erase",
           "customer": {"email": EMAIL}}  # fmt: skip
    first = engine.process(messages([raw], email_home, 1))
    assert [e.customer_key for e in first.erasures] == [f"email:{EMAIL}"]
    assert client.smembers(keys.owners(f"email:{EMAIL}")) == {b"customer_id:c-zq"}  # its claimant is still there
    erased = drain(engine, out, s)
    assert "customer_id:c-zq" in erased
    assert not client.exists(keys.profile("customer_id:c-zq"), keys.owners(f"email:{EMAIL}"))
    assert occurrences(everything(client, s)) == {}


def test_an_identifier_claimed_by_nobody_is_erased_alone_in_one_batch(settings):
    s = settings.replace(models_enabled=False, policy_clock="stream")
    engine, _ = engine_for(s)
    client = connect(s)
    engine.process(messages(journey(T0), 0, 0))
    raw = {**event("erase", t=T0 + 10 * MIN, channel="backoffice"), "event_id": "raw-erase",
           "customer": {"email": EMAIL}}  # fmt: skip
    report = engine.process(messages([raw], 0, 10))
    assert "customer_id:c-zq" in {e.customer_key for e in report.erasures}
    assert occurrences(everything(client, s)) == {}


ALICE = {"customer_id": "c-alice", "phone": "+15550111222", "email": "alice.sh@example.org"}
BOB = {"customer_id": "c-bob", "phone": "+15550111222", "email": "bob.sh@example.org"}
PHONE = "phone:+15550111222"


def family(t0: int) -> list[dict]:
    return [
        {**event("profile_update", t=t0, fields={"name": "Alice Secretalice"}), "customer": ALICE, "event_id": "f0"},
        {**event("profile_update", t=t0 + MIN, fields={"name": "Bob Secretbob"}), "customer": BOB, "event_id": "f1"},
        {**event("sms", t=t0 + 2 * MIN, text="Bob here, Secretbobhealth", direction="inbound"),
         "customer": {"phone": "+15550111222"}, "event_id": "f2"},
    ]  # fmt: skip


def test_an_export_shows_a_shared_identifier_as_shared_and_nothing_of_it(erase_settings):
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, _ = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    engine.process(messages(family(T0), 0, 0))
    store = ProfileStore(client, keys)
    doc = export(client, keys, "customer_id:c-alice", store.erasures)
    assert doc["linked"][PHONE] == {"customer": PHONE, "shared": True}
    assert doc["linked"]["email:alice.sh@example.org"]["claimed_by"] == ["customer_id:c-alice"]
    blob = serde.dumps(doc)
    assert b"Secretbob" not in blob and b"c-bob" not in blob


def test_erasing_one_claimant_of_a_shared_phone_leaves_the_other_whole(erase_settings):
    """Alice's erase removes Alice's claim on the family phone only: Bob's claim stays, the phone's own
    profile and timeline (Bob's SMS) stay, and no ledger entry drops the phone's events on a replay."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, _ = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    engine.process(messages(family(T0), 0, 0))
    erase = {**event("erase", "c-alice", T0 + 10 * MIN, channel="backoffice"), "event_id": "erase-alice"}
    report = engine.process(messages([erase], 0, 3))
    assert {e.customer_key for e in report.erasures} == {"customer_id:c-alice", "email:alice.sh@example.org"}
    # one erased claimant for all, naming nobody (break-test 12i, I2: a hash prefix tied Alice's ledger subject
    # to the phone number in clear)
    assert client.smembers(keys.owners(PHONE)) == {b"customer_id:c-bob", b"erased:*"}
    assert client.exists(keys.profile(PHONE)) and client.exists(keys.profile("customer_id:c-bob"))
    assert ProfileStore(client, keys).erasures.cutoffs([PHONE, "customer_id:c-alice"]).keys() == {"customer_id:c-alice"}
    assert occurrences(everything(client, s), ("Secretalice", "alice.sh", "c-alice")) == {}
    # decision (break-test 12g, H1): the phone stays shared -- an erased claimant in Alice's place -- so what
    # Alice did on it never joins Bob's 360; it was "Bob's alone" before, and merged into his card
    assert resolve(client, keys, PHONE)[0] == [PHONE]
    assert reader.read_360(client, keys, "customer_id:c-bob")["identity"]["shared_identifiers"] == [PHONE]

    # a replay of the input: Bob's SMS and profile are applied again (skipped as already applied), not dropped
    engine.forget()
    replay = engine.process(messages(family(T0)[1:], 0, 1))
    assert replay.erased_dropped == 0


def browsing_then_login(cookie_id: str, customer_id: str, outsider: tuple[str, str, dict]) -> list[dict]:
    """A customer's browsing on a cookie before and after logging in with it (``zq-before``, ``zq-after``), then
    an outsider's event (type, action, its own identifiers) naming a copy of the cookie beside them."""
    cookie = {"cookie_id": cookie_id}
    steps = [
        (event("web_event", t=T0, action="page_view", url="https://shop/zq-before"), cookie),
        (event("web_event", t=T0 + MIN, action="login"), {"customer_id": customer_id, **cookie}),
        (event("web_event", t=T0 + 2 * MIN, action="search", url="https://shop/search?q=zq-after"), cookie),
        (event(outsider[0], t=T0 + 3 * MIN, action=outsider[1]), {**outsider[2], **cookie}),
    ]
    return [{**e, "customer": who, "event_id": f"{cookie_id}-{i}"} for i, (e, who) in enumerate(steps)]


def test_a_cookie_an_outsiders_device_also_claims_is_erased_with_its_customer(erase_settings):
    """Break-test 12g, G3: one event linking a copy of the customer's cookie to a device of the outsider's
    made the cookie "shared", so erasing the customer kept it -- with the customer's browsing from before and
    after the login -- and merged it into the outsider's device, whose chat then opened it to a queue. Only a
    customer makes an identifier shared: the cookie goes with its customer, and the device keeps nothing of it."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, _ = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    journey_ = browsing_then_login("ck-w1", "w1", outsider=("app_event", "open", {"device_id": "dev-att1"}))
    engine.process(messages(journey_, 0, 0))
    assert client.smembers(keys.owners("cookie_id:ck-w1")) == {b"customer_id:w1", b"device_id:dev-att1"}
    erase = {**event("erase", "w1", T0 + 10 * MIN, channel="backoffice"), "event_id": "erase-w1"}
    report = engine.process(messages([erase], 0, 4))
    assert {e.customer_key for e in report.erasures} == {"customer_id:w1", "cookie_id:ck-w1"}
    assert not client.exists(keys.profile("cookie_id:ck-w1"), keys.timeline("cookie_id:ck-w1"))
    assert occurrences(everything(client, s), ("zq-before", "zq-after")) == {}
    assert resolve(client, keys, "device_id:dev-att1")[0] == ["device_id:dev-att1"]  # the device, alone


def test_an_export_shows_a_cookie_an_outsiders_device_also_claims_as_the_customers_own(erase_settings):
    """Break-test 12h, H6: the export counted an anonymous device's claim as "shared", so the customer's cookie
    browsing dropped out of their export while their erasure erases it as theirs. Both use one rule now."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, _ = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    engine.process(messages(browsing_then_login("ck-x1", "x1", ("app_event", "open", {"device_id": "dev-x"})), 0, 0))
    doc = export(client, keys, "customer_id:x1", ProfileStore(client, keys).erasures)
    assert doc["linked"]["cookie_id:ck-x1"].get("shared") is None
    assert "zq-before" in str(doc["linked"]["cookie_id:ck-x1"])  # the cookie's own browsing is in the export


def test_a_cookie_another_customer_also_claims_never_joins_that_customers_360_after_the_erasure(erase_settings):
    """Break-test 12g, H1: an outsider logging in to an account of its own with a copy of the customer's cookie
    made the cookie shared; the erasure kept it for the outsider, and it then resolved to the outsider and was
    merged into the outsider's 360 -- the erased customer's browsing on the outsider's card. The erasure now
    leaves an erased claimant in the customer's place: the cookie stays shared, merged into nobody's 360."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, _ = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    journey_ = browsing_then_login("ck-h1", "v1", outsider=("web_event", "login", {"customer_id": "out1"}))
    engine.process(messages(journey_, 0, 0))
    assert client.smembers(keys.owners("cookie_id:ck-h1")) == {b"customer_id:v1", b"customer_id:out1"}
    erase = {**event("erase", "v1", T0 + 10 * MIN, channel="backoffice"), "event_id": "erase-v1"}
    engine.process(messages([erase], 0, 4))
    assert resolve(client, keys, "cookie_id:ck-h1")[0] == ["cookie_id:ck-h1"]  # shared still: nobody's alone
    outsider = reader.read_360(client, keys, "customer_id:out1", timeline=50)
    assert "zq-" not in str(outsider), "the erased customer's browsing merged into another customer's 360"
    assert reader.resolve(client, keys, "cookie_id:ck-h1") == "cookie_id:ck-h1"


def test_an_erase_by_a_shared_phone_erases_the_phone_alone_and_keeps_its_claims(settings):
    s = settings.replace(models_enabled=False, policy_clock="stream")
    engine, _ = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    engine.process(messages(family(T0), 0, 0))
    raw = {**event("erase", t=T0 + 10 * MIN, channel="backoffice"), "event_id": "erase-phone",
           "customer": {"phone": "+15550111222"}}  # fmt: skip
    report = engine.process(messages([raw], 0, 3))
    assert [e.customer_key for e in report.erasures] == [PHONE]
    assert not client.exists(keys.profile(PHONE), keys.timeline(PHONE))
    assert client.smembers(keys.owners(PHONE)) == {b"customer_id:c-alice", b"customer_id:c-bob"}
    assert client.exists(keys.profile("customer_id:c-alice"), keys.profile("customer_id:c-bob")) == 2


def test_an_erase_by_a_phone_an_anonymous_email_also_claims_erases_its_customer(settings):
    """Break-test 12h, H5: one event pairing the customer's phone with any e-mail made the phone "shared by two",
    so an erase naming the phone erased the phone alone and the customer survived. Only customers (and erased
    customers) make an identifier shared: the phone's one customer is erased, with the phone."""
    s = settings.replace(models_enabled=False, policy_clock="stream")
    engine, _ = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    victim = {"customer_id": "c-vic", "phone": "+15550199333"}
    engine.process(messages([
        {**event("profile_update", t=T0, fields={"name": "Vic Secretvic"}), "customer": victim, "event_id": "v0"},
        {**event("sms", t=T0 + MIN, text="hello", direction="inbound"),
         "customer": {"email": "anyone@evil.example", "phone": "+15550199333"}, "event_id": "v1"},
    ], 0, 0))  # fmt: skip
    phone = "phone:+15550199333"
    assert client.smembers(keys.owners(phone)) == {b"customer_id:c-vic", b"email:anyone@evil.example"}
    assert resolve(client, keys, phone)[0] == ["customer_id:c-vic"]  # what `livesignals erase phone:...` erases
    raw = {**event("erase", t=T0 + 10 * MIN, channel="backoffice"), "event_id": "erase-by-phone",
           "customer": {"phone": "+15550199333"}}  # fmt: skip
    report = engine.process(messages([raw], 0, 2))
    assert {"customer_id:c-vic", phone} <= {e.customer_key for e in report.erasures}
    assert not client.exists(keys.profile("customer_id:c-vic"))
    assert occurrences(everything(client, s), ("Secretvic",)) == {}


def test_an_erase_read_on_the_repartition_topic_forgets_the_churn_index_of_the_input_topic(erase_settings):
    """A customer (and their email) indexed for churn on the input topic at its partition, erased
    through the other: the cascaded erase arrives on the repartition topic, and the input topic's due
    index forgets the key. Fenced, as in production (on the Cluster: the ordered, checked commit)."""
    s = erase_settings.replace(policy_clock="stream", input_topics=("in",))
    parts = 16
    home, email_home = owner_partition("customer_id:c-zq", parts), owner_partition(f"email:{EMAIL}", parts)
    other_home = owner_partition("customer_id:c-other", parts)
    engine, out = engine_for(s, parts, claimed=tuple(range(parts)))
    client, keys = connect(s), Keys(s.key_prefix)
    assert home != email_home
    engine.process(messages(journey(T0)[1:], home, 0))

    def indexed(topic: str, partition: int) -> set[str]:
        part = PartitionAggregates.from_fields(client.hgetall(keys.partition(topic, partition)))
        return set().union(*part.churn_due.values()) if part.churn_due else set()

    by_email = {**event("email", t=T0 + 7 * MIN, text="still waiting"), "event_id": "zq-mail",
                "customer": {"email": EMAIL}}  # fmt: skip
    engine.process(messages([by_email], email_home, 0))
    assert "customer_id:c-zq" in indexed("in", home) and f"email:{EMAIL}" in indexed("in", email_home)
    # erased by their customer_id: the email's erase is the cascade, read on the repartition topic
    engine.process(messages([{**event("erase", "c-zq", T0 + 10 * MIN, channel="backoffice"), "event_id": "e1"}],
                            home, 100))  # fmt: skip
    assert f"email:{EMAIL}" in drain(engine, out, s)
    assert f"email:{EMAIL}" not in indexed("in", email_home)
    assert "customer_id:c-zq" not in indexed("in", home)
    # erased by the email alone: the customer's erase is the cascade, read on the repartition topic
    engine.process(messages(journey(T0 + 20 * MIN)[1:], home, 200))
    assert "customer_id:c-zq" in indexed("in", home)
    raw = {**event("erase", t=T0 + 30 * MIN, channel="backoffice"), "event_id": "raw-erase",
           "customer": {"email": EMAIL}}  # fmt: skip
    engine.process(messages([raw], email_home, 1))
    assert "customer_id:c-zq" in drain(engine, out, s)
    assert "customer_id:c-zq" not in indexed("in", home)
    engine.forget()  # a fresh engine reading the aggregates back and indexing another customer: still gone
    other = {**event("chat", "c-other", T0 + 11 * MIN, text="hello"), "event_id": "other"}
    engine.process(messages([other], other_home, 50))
    assert "customer_id:c-zq" not in indexed("in", home)


def test_hashes_are_keyed_and_redacted_dead_letters_hash_their_ids_without_a_configured_secret(settings):
    s = settings.replace(models_enabled=False, dead_letter_redact=True, erasure_ledger_secret="")
    engine, out = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    bad = {**event("agent_feedback", "c-zq", T0, label="negative", target_id="zelda-quill-4"),
           "event_id": "zelda-quill-9", "extra_envelope": "Zelda"}  # fmt: skip
    engine.process([RawMessage(serde.dumps(bad), b"email:" + EMAIL.encode(), Origin("in", 0, 0, T0))])
    (dead,) = [r for r in out.records if r.topic == s.dead_letter_topic]
    secret = ProfileStore(client, keys).erasures.secret
    assert len(secret) == 64 and secret == ProfileStore(client, keys).erasures.secret  # made once, shared
    assert dead.key == subject_hash(f"email:{EMAIL}", secret).encode() != subject_hash(f"email:{EMAIL}").encode()
    doc = serde.loads(dead.value)
    assert doc["event_id"] == subject_hash("event_id:zelda-quill-9", secret)
    assert doc["payload"]["target_id"] == subject_hash("target_id:zelda-quill-4", secret)
    assert b"zelda" not in dead.value and b"zelda" not in dead.key


def _erase_events(s) -> list[tuple[bytes | None, dict]]:
    """The erase events on the input topic (every partition), with their keys."""
    consumer = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": f"t-{s.key_prefix}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([s.input_topics[0]])
    found: list[tuple[bytes | None, dict]] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and len(found) < 2:
            for m in consumer.consume(10, 1.0):
                if m.error() is None:
                    found.append((m.key(), serde.loads(m.value() or b"{}")))
    finally:
        consumer.close()
    return found


def test_the_cli_spells_the_identifier_as_the_engine_and_says_when_nothing_was_found(kafka_settings):
    """``livesignals erase "email:<it> "`` (a trailing space, decomposed accents) finds the customer the
    engine keyed; an identifier nobody holds gets ``found: false`` and a note, not a silent success."""
    s = kafka_settings.replace(models_enabled=False)
    engine, _ = engine_for(s)
    mail = "zoé.quill@example.org"
    engine.process(messages([{**event("login", t=T0), "event_id": "cli-1", "type": "app_event", "channel": "app",
                              "payload": {"action": "login"}, "customer": {"customer_id": "c-cli", "email": mail}}],
                            0, 0))  # fmt: skip
    spelled = " email: " + unicodedata.normalize("NFD", mail) + " "
    asked = request_erase(s, spelled)
    assert asked["found"] and asked["identifier"] == f"email:{mail}" and asked["erasing"] == ["customer_id:c-cli"]
    nobody = request_erase(s, "email:nobody@example.org")
    assert not nobody["found"] and "nothing is held under email:nobody@example.org" in nobody["note"]
    events = _erase_events(s)
    assert (b"customer_id:c-cli", {"customer_id": "c-cli", "email": mail}) in [(k, e["customer"]) for k, e in events]
    with pytest.raises(ValueError, match="U\\+200B"):
        request_erase(s, "email:a\u200b@b.c")


def test_the_erasure_reaches_identifiers_that_fell_out_of_the_linked_list(erase_settings):
    """Break-test 12i, I1: ``linked`` keeps the 32 newest identifiers, but the claims the older ones made stay.
    The erasure knew only ``linked``: after 33 logins with new cookies, the e-mail and the first cookie (with
    its browsing) outlived the erasure, still claimed by -- and resolving to -- the erased customer. The links
    every identifier a customer claims is indexed (``ls:{customer_id:c}:claims``), and the erasure and the
    export reach them all."""
    from operators.profile360.update import MAX_LINKED

    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, _ = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    first = {"customer_id": "tri3", "cookie_id": "ck0-tri3", "email": "zq-tri3@example.org"}
    steps = [
        (event("web_event", t=T0, action="page_view", url="https://shop/zq-before"), {"cookie_id": "ck0-tri3"}),
        (event("web_event", t=T0 + MIN, action="login"), first),
        (event("web_event", t=T0 + 2 * MIN, action="search", url="https://shop/search?q=zq-after"),
         {"cookie_id": "ck0-tri3"}),
        *[(event("web_event", t=T0 + (3 + i) * MIN, action="login"), {"customer_id": "tri3", "cookie_id": f"ck{i + 1}"})
          for i in range(MAX_LINKED + 1)],
    ]  # fmt: skip
    journey_ = [{**e, "customer": who, "event_id": f"tri3-{i}"} for i, (e, who) in enumerate(steps)]
    engine.process(messages(journey_, 0, 0))
    profile = reader.read_360(client, keys, "customer_id:tri3")
    assert "email:zq-tri3@example.org" not in profile["identity"]["linked"]  # fell out of the 32 newest
    doc = export(client, keys, "customer_id:tri3", ProfileStore(client, keys).erasures)
    assert "zq-before" in str(doc["linked"]["cookie_id:ck0-tri3"])  # the export reaches it too
    erase = {**event("erase", "tri3", T0 + 60 * MIN, channel="backoffice"), "event_id": "erase-tri3"}
    engine.process(messages([erase], 0, len(journey_)))
    drain(engine, _, s)
    assert not client.exists(keys.owners("email:zq-tri3@example.org"), keys.owners("cookie_id:ck0-tri3"))
    assert not client.exists(keys.profile("cookie_id:ck0-tri3"), keys.timeline("cookie_id:ck0-tri3"))
    assert occurrences(everything(client, s), ("zq-before", "zq-after", "zq-tri3", "customer_id:tri3")) == {}
    assert not client.exists(keys.claims("customer_id:tri3"))  # the index goes with its customer


def test_after_the_erasure_an_outsiders_device_no_longer_merges_the_cookie(erase_settings):
    """Break-test 12h, H7: the cookie erased with its customer kept the outsider device's claim on it, so the
    person's later browsing in that browser joined the outsider's device card. An identifier erased with its
    customer now loses every claim, and a 360 merges a linked identifier only while its claim on it stands."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, _ = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    journey_ = browsing_then_login("ck-h7", "w7", outsider=("app_event", "open", {"device_id": "dev-h7"}))
    engine.process(messages(journey_, 0, 0))
    assert client.smembers(keys.owners("cookie_id:ck-h7")) == {b"customer_id:w7", b"device_id:dev-h7"}
    erase = {**event("erase", "w7", T0 + 10 * MIN, channel="backoffice"), "event_id": "erase-w7"}
    engine.process(messages([erase], 0, len(journey_)))
    assert not client.exists(keys.owners("cookie_id:ck-h7"))
    later = {**event("web_event", t=T0 + 20 * MIN, action="search", url="https://shop/search?q=zq-later"),
             "customer": {"cookie_id": "ck-h7"}, "event_id": "ck-h7-later"}  # fmt: skip
    engine.process(messages([later], 0, len(journey_) + 1))
    device = reader.read_360(client, keys, "device_id:dev-h7", timeline=50)
    assert "zq-later" not in str(device) and device["identity"]["merged"] == [], device["identity"]


def test_the_erased_claimant_goes_with_the_last_customer_claimant(erase_settings):
    """Break-test 12i, I2: after Alice and Bob were both erased, the family phone's claim set stayed for good,
    the number in clear in its name, beside Alice's erased claimant. It now goes with its last customer."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, _ = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    engine.process(messages(family(T0), 0, 0))
    for i, who in enumerate(("c-alice", "c-bob")):
        erase = {**event("erase", who, T0 + (10 + i) * MIN, channel="backoffice"), "event_id": f"erase-{who}"}
        engine.process(messages([erase], 0, 3 + i))
        drain(engine, _, s)
    assert not client.exists(keys.owners(PHONE)), client.smembers(keys.owners(PHONE))
    assert occurrences(everything(client, s), (PHONE.partition(":")[2],)) == {}


def test_two_claimants_erased_in_one_batch_take_their_shared_phone_with_them(erase_settings):
    """Break-test 12i, I7: each erase read the claim sets before the batch committed, so Alice's and Bob's erases
    in one batch each kept the family phone for the other: its profile and timeline outlived both, claimed by
    erased claimants only, for good. An erase now counts the customers its batch already erased as going."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, _ = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    engine.process(messages(family(T0), 0, 0))
    both = [{**event("erase", who, T0 + 10 * MIN, channel="backoffice"), "event_id": f"erase-{who}"}
            for who in ("c-alice", "c-bob")]  # fmt: skip
    report = engine.process(messages(both, 0, 3))
    drain(engine, _, s)
    assert PHONE in {e.customer_key for e in report.erasures}
    assert not client.exists(keys.owners(PHONE), keys.profile(PHONE), keys.timeline(PHONE))
    assert occurrences(everything(client, s), ("Secretalice", "Secretbob", PHONE.partition(":")[2])) == {}


def test_the_cli_says_shared_only_by_the_rule_it_erased_with(kafka_settings):
    """Break-test 12i, I3: ``livesignals erase phone:...`` erased the phone's one customer (12h H5) but still
    printed "shared by 2 customers ... the customers stay", counting an e-mail typed beside the phone."""
    s = kafka_settings.replace(models_enabled=False)
    engine, _ = engine_for(s)
    phone = "+447700976740"
    steps = [
        ({"customer_id": "c-i3", "phone": phone}, "i3-0"),
        ({"email": "outsider-i3@example.net", "phone": phone}, "i3-1"),
    ]
    engine.process(messages([{**event("app_event", t=T0 + i, action="open"), "customer": who, "event_id": eid}
                             for i, (who, eid) in enumerate(steps)], 0, 0))  # fmt: skip
    asked = request_erase(s, f"phone:{phone}")
    assert asked["erasing"] == ["customer_id:c-i3"] and asked["shared_with"] == [] and "note" not in asked, asked


def test_the_export_leaves_out_what_is_shared_through_another_identifier(erase_settings):
    """Break-test 12i, I4: the export judged each identifier alone, the erasure transitively: a cookie claimed by
    Alice and by the family tablet (which Bob claims too) went into Alice's export with Bob's anonymous browsing,
    while her erasure keeps it as not hers alone. The export now also asks the erasure's rule."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    engine, _ = engine_for(s)
    client, keys = connect(s), Keys(s.key_prefix)
    steps = [
        (event("app_event", t=T0, action="login"), {"customer_id": "ea-i4", "device_id": "dv-i4"}),
        (event("app_event", t=T0 + MIN, action="login"), {"customer_id": "eb-i4", "device_id": "dv-i4"}),
        (event("web_event", t=T0 + 2 * MIN, action="page_view", url="https://shop/x"), {"device_id": "dv-i4", "cookie_id": "ck-i4"}),
        (event("web_event", t=T0 + 3 * MIN, action="login"), {"customer_id": "ea-i4", "cookie_id": "ck-i4"}),
        (event("web_event", t=T0 + 4 * MIN, action="search", url="https://shop/search?q=zq-bob-i4"), {"cookie_id": "ck-i4"}),
    ]  # fmt: skip
    engine.process(messages([{**e, "customer": who, "event_id": f"i4-{i}"} for i, (e, who) in enumerate(steps)], 0, 0))
    doc = export(client, keys, "customer_id:ea-i4", ProfileStore(client, keys).erasures)
    assert doc["linked"]["cookie_id:ck-i4"] == {"customer": "cookie_id:ck-i4", "shared": True}, doc["linked"]
    assert "zq-bob-i4" not in str(doc)
