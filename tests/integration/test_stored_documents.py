"""Profiles in a real Redis are zstd frames (livesignals.documents), written only at the commit; every reader
takes them, and the plain JSON profiles written before (or with ``profile_compression = "off"``) too."""

from __future__ import annotations

from livesignals import documents, serde
from operators.profile360.profile import CustomerState
from state import desk_reads, reader
from state.erasure import export
from state.keys import Keys
from state.store import ProfileStore
from tests.helpers import T0


def customer(key: str = "customer_id:c1") -> CustomerState:
    return CustomerState(
        key,
        events=3,
        identity={"name": "Ann Lee", "ids": {"customer_id": ["c1"]}, "first_seen": T0, "last_seen": T0},
        activity={"open_contacts": {"chat": {"agent_id": "a1", "queue": "billing", "t": T0}}},
        value={"spend": 12.5},
        applied={"in:0": 41},
    )


def test_a_commit_writes_a_compressed_profile_and_a_fresh_store_loads_it(redis_client, settings):
    keys = Keys(settings.key_prefix)
    s = customer()
    ProfileStore(redis_client, keys).commit([s], [], {("in", 0): 42})
    stored = redis_client.get(keys.profile("customer_id:c1"))
    assert documents.is_compressed(stored) and len(stored) < len(s.to_bytes()) / 2
    assert s._document is not None and s._document.startswith(b"{")  # in memory it stays JSON
    assert ProfileStore(redis_client, keys).load(["customer_id:c1"])["customer_id:c1"] == s


def test_an_old_plain_json_profile_is_loaded_then_rewritten_compressed(redis_client, settings):
    keys = Keys(settings.key_prefix)
    s = customer()
    redis_client.set(keys.profile("customer_id:c1"), s.to_bytes())  # as every profile was written before
    store = ProfileStore(redis_client, keys)
    loaded = store.load(["customer_id:c1"])["customer_id:c1"]
    assert loaded == s
    loaded.events += 1
    store.commit([loaded], [], {("in", 0): 43})
    stored = redis_client.get(keys.profile("customer_id:c1"))
    assert documents.is_compressed(stored) and serde.loads(documents.decode(stored))["events"] == 4


def test_profile_compression_off_writes_plain_json_that_any_store_reads(redis_client, settings):
    keys = Keys(settings.key_prefix)
    s = customer()
    ProfileStore(redis_client, keys, profile_compression="off").commit([s], [], {("in", 0): 42})
    stored = redis_client.get(keys.profile("customer_id:c1"))
    assert stored == s.to_bytes() and serde.loads(stored)["events"] == 3  # what redis-cli GET shows
    assert ProfileStore(redis_client, keys).load(["customer_id:c1"])["customer_id:c1"] == s


def test_a_corrupt_frame_or_an_unknown_dictionary_loads_as_an_unreadable_stand_in_as_corrupt_json_does(
    redis_client, settings
):
    keys = Keys(settings.key_prefix)
    redis_client.set(keys.profile("customer_id:c1"), b'{"events": 3, broken')
    loaded = ProfileStore(redis_client, keys).load(["customer_id:c1"])["customer_id:c1"]
    assert loaded.unreadable is not None and loaded.unreadable.startswith("JSONDecodeError")
    samples = [serde.dumps({"other": i, "words": [f"w{j}" for j in range(i % 17)]}) for i in range(3000)]
    other = documents.zstd.train_dict(samples, 4096)
    for bad in (documents.encode(customer().to_bytes())[:-5], documents.zstd.compress(samples[3], zstd_dict=other)):
        redis_client.set(keys.profile("customer_id:c1"), bad)
        loaded = ProfileStore(redis_client, keys).load(["customer_id:c1"])["customer_id:c1"]
        assert loaded.unreadable is not None and loaded.unreadable.startswith("CorruptDocument")
        assert loaded.events == 0 and not loaded.identity  # nothing of the damaged document is read as a profile


def test_the_reader_and_the_desk_read_compressed_and_plain_profiles(redis_client, settings):
    keys = Keys(settings.key_prefix)
    plain, packed = customer("customer_id:c1"), customer("customer_id:c2")
    redis_client.set(keys.profile("customer_id:c1"), plain.to_bytes())
    ProfileStore(redis_client, keys).commit([packed], [], {("in", 0): 42})
    assert documents.is_compressed(redis_client.get(keys.profile("customer_id:c2")))
    for key, state in (("customer_id:c1", plain), ("customer_id:c2", packed)):
        loaded = reader.load(redis_client, keys, key)
        assert loaded.known and loaded.state == state
        view = reader.read_360(redis_client, keys, key, now_ms=T0 + 60_000)
        assert view["identity"]["name"] == "Ann Lee"
    contacts = desk_reads.read_open_contacts(redis_client, keys, ["customer_id:c1", "customer_id:c2"])
    assert (
        [c["agent_id"] for c in contacts["customer_id:c1"]]
        == ["a1"]
        == [c["agent_id"] for c in contacts["customer_id:c2"]]
    )
    assert not reader.load(redis_client, keys, "customer_id:nobody").known  # the stand-in decoded, not shown


def test_the_erasure_export_holds_a_compressed_or_plain_profile_as_json(redis_client, settings):
    keys = Keys(settings.key_prefix)
    store = ProfileStore(redis_client, keys)
    store.commit([customer()], [], {("in", 0): 42})
    redis_client.set(keys.profile("customer_id:c2"), customer("customer_id:c2").to_bytes())
    assert documents.is_compressed(redis_client.get(keys.profile("customer_id:c1")))
    for key in ("customer_id:c1", "customer_id:c2"):
        held = export(redis_client, keys, key, store.erasures)
        assert held["profile"]["identity"]["name"] == "Ann Lee" and held["profile"]["events"] == 3


def entry(i: int) -> tuple[int, bytes]:
    return T0 + i * 1000, serde.dumps({"id": f"e{i}", "t": T0 + i * 1000, "type": "chat", "ch": "chat", "s": "billing"})


def test_timeline_entries_are_compressed_read_in_both_forms_and_a_replay_adds_nothing(redis_client, settings):
    keys = Keys(settings.key_prefix)
    store = ProfileStore(redis_client, keys)
    s = customer()
    s.new_timeline = [entry(1), entry(2)]
    store.commit([s], [], {("in", 0): 42})
    redis_client.zadd(keys.timeline("customer_id:c1"), {entry(0)[1]: entry(0)[0]})  # written before: plain JSON
    members = redis_client.zrange(keys.timeline("customer_id:c1"), 0, -1)
    assert [documents.is_compressed(m) for m in members] == [False, True, True]
    s.new_timeline = [entry(2)]  # a replay of an entry already written: the same member
    store.commit([s], [], {("in", 0): 43})
    assert redis_client.zcard(keys.timeline("customer_id:c1")) == 3
    page = desk_reads.read_timeline(redis_client, keys, "customer_id:c1")
    assert [e["id"] for e in page["entries"]] == ["e2", "e1", "e0"]
    view = reader.read_360(redis_client, keys, "customer_id:c1", now_ms=T0 + 60_000)
    assert [e["id"] for e in view["timeline"]] == ["e2", "e1", "e0"]
    held = export(redis_client, keys, "customer_id:c1", store.erasures)
    assert sorted(e["id"] for e in held["timeline"]) == ["e0", "e1", "e2"]


def test_timeline_compression_off_writes_plain_json_entries(redis_client, settings):
    keys = Keys(settings.key_prefix)
    s = customer()
    s.new_timeline = [entry(1)]
    ProfileStore(redis_client, keys, timeline_compression="off").commit([s], [], {("in", 0): 42})
    assert redis_client.zrange(keys.timeline("customer_id:c1"), 0, -1) == [entry(1)[1]]


def test_an_entry_written_plain_then_replayed_compressed_is_kept_twice_as_the_readme_says(redis_client, settings):
    keys = Keys(settings.key_prefix)
    s = customer()
    s.new_timeline = [entry(1)]
    ProfileStore(redis_client, keys, timeline_compression="off").commit([s], [], {("in", 0): 42})
    s.new_timeline = [entry(1)]
    ProfileStore(redis_client, keys).commit([s], [], {("in", 0): 42})
    assert redis_client.zcard(keys.timeline("customer_id:c1")) == 2


def test_a_damaged_profile_dead_letters_its_customers_events_only_and_an_erase_still_erases_it(redis_client, settings):
    """Break-test 16a, A1: one stored profile the engine cannot read (a damaged frame, an unknown dictionary,
    JSON that is not a profile) failed every retry of its batch, so every partition of the worker stopped, and
    the customer could not be erased. Now its events are dead-lettered (``processing_error``, counted), the
    others apply, the damaged document stays as it was for repair, and an erase removes it."""
    from livesignals import metrics
    from operators.engine import Engine
    from tests.helpers import event, raw

    class Capture:
        def __init__(self) -> None:
            self.records: list = []

        def publish(self, records: list) -> None:
            self.records += records

    s = settings.replace(models_enabled=False, policy_clock="stream")
    keys = Keys(s.key_prefix)
    for bad in (documents.encode(customer().to_bytes())[:-5], b"null", b"[1, 2]", b'{"events": 3, broken'):
        redis_client.flushdb()
        redis_client.set(keys.profile("customer_id:c1"), bad)
        out, before = Capture(), metrics.PROFILES_UNREADABLE._value.get()
        engine = Engine(s, ProfileStore(redis_client, keys), out, clock=lambda: (T0 + 60_000) / 1000)
        evs = [event("chat", "c1", T0, text="hello"), event("chat", "c2", T0 + 1, text="hi"),
               event("order", "c1", T0 + 2, order_id="o1", amount=5.0)]  # fmt: skip
        report = engine.process(raw(evs))
        assert [d.reason.value for d in report.dead_letters] == ["processing_error", "processing_error"]
        assert all("UnreadableProfile" in d.detail for d in report.dead_letters)
        assert [d.origin.offset for d in report.dead_letters] == [0, 2]
        assert redis_client.get(keys.profile("customer_id:c1")) == bad  # kept for repair, never overwritten
        assert redis_client.get(keys.profile("customer_id:c2")) is not None  # the batch went on
        assert metrics.PROFILES_UNREADABLE._value.get() > before
        erase = event("erase", "c1", T0 + 3, channel="backoffice", event_id="erase-c1", request_id="r1")
        newer = event("chat", "c1", T0 + 20_000, text="hello again")  # after the erase, same batch (16c, C2)
        report = engine.process(raw([erase, newer], start=3))
        assert report.dead_letters == []
        stored = redis_client.get(keys.profile("customer_id:c1"))
        assert stored is not None and serde.loads(documents.decode(stored))["events"] == 1  # afresh, from the newer


def test_the_desk_reads_a_damaged_profile_as_one_it_holds_nothing_for(redis_client, settings):
    """Break-test 16c, C1: the agent desktop's load raised on a damaged profile, before the access decision
    and its audit (HTTP 500 where a customer it holds nothing for gets 403)."""
    keys = Keys(settings.key_prefix)
    for bad in (documents.encode(customer().to_bytes())[:-5], b"null", b"[1]", b"{broken"):
        redis_client.set(keys.profile("customer_id:c1"), bad)
        loaded = reader.load(redis_client, keys, "customer_id:c1")
        assert loaded.state.unreadable is not None and not loaded.state.activity
        assert desk_reads._open_contacts_of(bad) == {}
