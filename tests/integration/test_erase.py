"""Erasing a customer through the engine, on one Redis and on Redis Cluster.

The erase event is applied by the engine like any event (its owner partition,
its batch's fenced commit). After it: no key and no value under the prefix
holds the customer's identifiers or personal data, the flags stream holds none
of their entries, the ledger and the audit stream know the erasure by hash
only, tombstones went out, and a replay of the input brings nothing back.
"""

from __future__ import annotations

import pytest

from livesignals import documents, serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.partitioner import owner_partition
from livesignals.privacy import subject_hash
from operators.engine import Engine
from operators.ports import OutRecord
from state.connection import connect
from state.erasure import export, resolve
from state.keys import Keys
from state.store import ProfileStore
from tests.helpers import T0, event

MIN = 60_000
EMAIL, PHONE, NAME = "zelda.quill@example.org", "+44 7700 900123", "Zelda Quillfeather"
PII = (EMAIL, PHONE, NAME, "Quillfeather", "zelda.quill")


class Capture:
    """A publisher that keeps what it was asked to publish."""

    def __init__(self) -> None:
        self.records: list[OutRecord] = []

    def publish(self, records: list[OutRecord]) -> None:
        self.records += records


def journey(t0: int) -> list[dict]:
    """A customer with an email, a phone, a device, a name, texts and a complaint (flags raised)."""
    ids = {"customer_id": "c-zq", "email": EMAIL, "phone": PHONE}
    steps = [
        {**event("web_event", t=t0, action="page_view", url="/help"), "customer": {"device_id": "d-zq"}},
        {**event("app_event", t=t0 + MIN, action="login"), "customer": {"customer_id": "c-zq", "device_id": "d-zq"}},
        {**event("profile_update", t=t0 + 2 * MIN, fields={"name": NAME, "city": "Leeds"}), "customer": ids},
        {**event("chat", t=t0 + 3 * MIN, text=f"Hi, {NAME} here, my parcel never came. Call {PHONE}",
                 topic="delivery"), "customer": ids},
        {**event("email", t=t0 + 4 * MIN, text=f"Still nothing! Write to {EMAIL}. Terrible, awful service.",
                 topic="delivery", direction="inbound"), "customer": ids},
        {**event("call", t=t0 + 5 * MIN, direction="inbound", topic="delivery"), "customer": ids},
    ]  # fmt: skip
    for i, e in enumerate(steps):
        e["event_id"] = f"zq-{i}"
    return steps


def erase_event(t: int, request_id: str = "req-1") -> dict:
    return {**event("erase", "c-zq", t, channel="backoffice", event_id="erase-1", request_id=request_id)}


def messages(events: list[dict], partition: int, start: int) -> list[RawMessage]:
    return [RawMessage(serde.dumps(e), b"k", Origin("in", partition, start + i, T0)) for i, e in enumerate(events)]


def everything(client, settings) -> list[bytes]:
    """Every key under the prefix and every value it holds, whatever its type."""
    return [b for blobs in by_key(client, settings).values() for b in blobs]


def by_key(client, settings) -> dict[bytes, list[bytes]]:
    """Every key under the prefix, with its name and every value it holds, whatever its type."""
    found: dict[bytes, list[bytes]] = {}
    for key in client.scan_iter(f"{settings.key_prefix}:*", count=1000):
        out = found[key] = [key]
        kind = client.type(key).decode()
        if kind == "string":
            out.append(documents.decode(client.get(key) or b""))  # a stored profile's JSON, compressed or not
        elif kind == "hash":
            out += [b for kv in client.hgetall(key).items() for b in kv]
        elif kind == "zset":
            out += [documents.decode(m) for m in client.zrange(key, 0, -1)]  # timeline entries, compressed or not
        elif kind == "set":
            out += list(client.smembers(key))
        elif kind == "stream":
            out += [b for _, fields in client.xrange(key) for kv in fields.items() for b in kv]
        elif kind == "list":
            out += client.lrange(key, 0, -1)
    return found


def where(client, settings, needles=PII) -> dict[str, dict[str, int]]:
    """Which keys hold the needles (for failure messages)."""
    hits = {k.decode(errors="replace"): occurrences(blobs, needles) for k, blobs in by_key(client, settings).items()}
    return {k: v for k, v in hits.items() if v}


def occurrences(blobs: list[bytes], needles=PII) -> dict[str, int]:
    found = {n: sum(b.count(n.encode()) for b in blobs) for n in needles}
    return {n: c for n, c in found.items() if c}


@pytest.fixture(params=["single", "cluster"])
def erase_settings(request, settings):
    if request.param == "single":
        return settings
    return settings.replace(redis_url=request.getfixturevalue("cluster_url"), redis_cluster=True)


def test_erase_removes_the_customer_everywhere_and_a_replay_brings_nothing_back(erase_settings):
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    client, keys = connect(s), Keys(s.key_prefix)
    out = Capture()
    engine = Engine(s, ProfileStore(client, keys, cluster=s.redis_cluster), out, clock=lambda: (T0 + 60 * MIN) / 1000)
    steps = journey(T0)
    engine.process(messages(steps[:3], 0, 0))
    engine.process(messages(steps[3:], 0, 3))
    before = everything(client, s)
    assert occurrences(before).keys() >= {EMAIL, NAME}  # the run holds the seeded data
    assert client.xlen(keys.flags_stream) > 0
    held = export(client, keys, "customer_id:c-zq", ProfileStore(client, keys).erasures)
    assert held["profile"]["identity"]["attributes"]["name"] == NAME
    assert held["linked"]["device_id:d-zq"]["timeline"]
    assert held["flags_stream"] and all(f["customer"] == "customer_id:c-zq" for f in held["flags_stream"])

    report = engine.process(messages([erase_event(T0 + 10 * MIN)], 0, 6))

    assert occurrences(everything(client, s)) == {}
    assert {e.customer_key for e in report.erasures} == {
        "customer_id:c-zq", f"email:{EMAIL}", f"phone:{PHONE}", "device_id:d-zq"}  # fmt: skip
    assert client.xlen(keys.flags_stream) == 0
    audit = client.xrange(f"{s.key_prefix}:erasures")
    subjects = {fields[b"subject"].decode() for _, fields in audit}
    # keyed (the deployment's secret, no setting needed): never the plain digest a guesser could compute
    assert ProfileStore(client, keys).erasures.subject("customer_id:c-zq") in subjects and len(audit) == 4
    assert subject_hash("customer_id:c-zq") not in subjects
    assert all(fields[b"request"] == b"req-1" for _, fields in audit)
    tombstones = [r for r in out.records if r.tombstone]
    assert {(r.topic, r.key) for r in tombstones} >= {(s.flags_topic, b"customer_id:c-zq"),
                                                       (s.triggers_topic, b"customer_id:c-zq"),
                                                       (s.decisions_topic, b"customer_id:c-zq")}  # fmt: skip
    assert all(r.value == b"" for r in tombstones)

    # the input replayed from the start (a rebuild, a reset consumer group): nothing comes back
    engine.forget()
    published = len(out.records)
    replay = engine.process(messages(steps, 0, 0))
    assert replay.erased_dropped == len(steps) and replay.applied == 0 and not replay.dead_letters
    assert occurrences(everything(client, s)) == {}
    assert not any(r.value and b"zq" in r.value for r in out.records[published:])

    # the customer comes back after the erasure: a new, empty profile that starts then
    engine.process(messages([{**event("web_event", "c-zq", T0 + 20 * MIN, action="login"), "event_id": "new"}], 0, 7))
    again = export(client, keys, "customer_id:c-zq", ProfileStore(client, keys).erasures)
    assert again["profile"]["events"] == 1 and [e["id"] for e in again["timeline"]] == ["new"]
    assert again["erasure"]["erased_cutoff"] == T0 + 10 * MIN


def test_identifiers_owned_by_other_partitions_are_erased_by_their_owner(settings):
    """With routing on, a linked identifier whose owner is another partition gets an erase event
    on the repartition topic; applied there (read back), it erases that identifier."""
    s = settings.replace(models_enabled=False, policy_clock="stream", input_topics=("in",))
    parts = 8
    client, keys = connect(s), Keys(s.key_prefix)
    out = Capture()
    counts = {"in": parts, s.repartition_topic: parts}
    engine = Engine(s, ProfileStore(client, keys), out, clock=lambda: (T0 + 60 * MIN) / 1000, partition_counts=counts)
    home = owner_partition("customer_id:c-zq", parts)
    device_home = owner_partition("device_id:d-zq", parts)
    assert home != device_home  # the case under test
    steps = journey(T0)
    engine.process(messages(steps[:1], device_home, 0))  # the anonymous visit, at the device's owner
    engine.process(messages(steps[1:], home, 0))
    assert client.exists(keys.profile("device_id:d-zq"))

    engine.process(messages([erase_event(T0 + 10 * MIN)], home, 100))
    cascades = [r for r in out.records if r.topic == s.repartition_topic and b"erase" in r.value]
    assert (b"device_id:d-zq", device_home) in [(r.key, r.partition) for r in cascades]
    assert all(r.partition == owner_partition((r.key or b"").decode(), parts) != home for r in cascades)
    assert client.exists(keys.profile("device_id:d-zq"))  # not this partition's to write

    erased = []
    for r in cascades:  # each read back by its owner partition, as from the erase's position
        report = engine.process(
            [RawMessage(r.value, r.key, Origin(s.repartition_topic, r.partition or 0, 0, T0), r.headers)]
        )
        erased += [(e.customer_key, e.cascade) for e in report.erasures]
    assert ("device_id:d-zq", True) in erased and len(erased) == len(cascades)
    assert occurrences(everything(client, s), ("d-zq", "c-zq", EMAIL)) == {}


class FailingOnce(Capture):
    """Kafka refusing the first publish of a batch (the batch fails before its commit and is retried)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def publish(self, records: list[OutRecord]) -> None:
        if self.fail:
            self.fail = False
            raise RuntimeError("broker down")
        super().publish(records)


def test_an_erase_batch_that_fails_or_is_replayed_erases_once_and_the_same(erase_settings):
    """A batch that fails after the erase was applied in memory (before its commit), then a replay of
    the committed erase batch (a crash before the consumer group saw it): same end state, nothing back."""
    s = erase_settings.replace(models_enabled=False, policy_clock="stream")
    client, keys = connect(s), Keys(s.key_prefix)
    out = FailingOnce()
    engine = Engine(s, ProfileStore(client, keys, cluster=s.redis_cluster), out, clock=lambda: (T0 + 60 * MIN) / 1000)
    steps = journey(T0)
    engine.process(messages(steps, 0, 0))
    late = {**event("chat", "c-zq", T0 + 4 * MIN + 1, text=f"late: {NAME}"), "event_id": "zq-late"}
    batch = messages([erase_event(T0 + 10 * MIN), late], 0, 6)
    out.fail = True
    with pytest.raises(RuntimeError):
        engine.process(batch)
    engine.forget()
    assert occurrences(everything(client, s)).keys() >= {EMAIL, NAME}  # nothing was committed
    first = engine.process(batch)
    assert first.erased_dropped == 1 and first.applied == 0  # the late event happened before the erasure
    engine.forget()
    again = engine.process(batch)  # the same batch replayed: the erase runs again, harmlessly
    # the profile is gone, so its links are not known again: they were erased by the first commit
    assert [e.customer_key for e in again.erasures] == ["customer_id:c-zq"] and again.erased_dropped == 1
    assert occurrences(everything(client, s)) == {}
    tombstones = [dict(r.headers or [])["ls.id"] for r in out.records if r.tombstone]
    assert len(tombstones) == 3 * 5 and set(tombstones[12:]) <= set(tombstones[:12])  # the same ids again


def test_an_identifier_belongs_to_its_only_claimant_and_a_shared_one_is_erased_alone(settings):
    s = settings.replace(models_enabled=False)
    client, keys = connect(s), Keys(s.key_prefix)
    engine = Engine(s, ProfileStore(client, keys), Capture(), clock=lambda: (T0 + 60 * MIN) / 1000)
    both = [
        {**event("app_event", t=T0, action="login"), "customer": {"customer_id": c, "device_id": d, "phone": p},
         "event_id": f"{c}-login"}
        for c, d, p in (("c-a", "d-a", "+1 555 0100"), ("c-b", "d-b", "+1 555 0100"))
    ]  # fmt: skip
    engine.process(messages(both, 0, 0))
    assert resolve(client, keys, "device_id:d-a") == (["customer_id:c-a"], ["customer_id:c-a"])
    assert resolve(client, keys, "phone:+1 555 0100") == (["phone:+1 555 0100"], ["customer_id:c-a", "customer_id:c-b"])
    assert resolve(client, keys, "email:nobody@example.org") == (["email:nobody@example.org"], [])


def test_what_the_erase_batch_made_for_the_customer_before_the_erase_is_never_published(settings):
    s = settings.replace(models_enabled=False, policy_clock="stream")
    client, keys = connect(s), Keys(s.key_prefix)
    out = Capture()
    engine = Engine(s, ProfileStore(client, keys), out, clock=lambda: (T0 + 60 * MIN) / 1000)
    report = engine.process(messages([*journey(T0), erase_event(T0 + 10 * MIN)], 0, 0))
    assert report.applied == len(journey(T0)) and not report.flags and not report.decisions
    assert all(r.tombstone for r in out.records), [r.topic for r in out.records if not r.tombstone]
    assert client.xlen(keys.flags_stream) == 0 and occurrences(everything(client, s)) == {}
