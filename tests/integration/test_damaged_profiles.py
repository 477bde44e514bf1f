"""Damaged stored profiles in a real Redis, beyond the first break-test (16a/16c): what the engine does with a
customer whose document it cannot read while its churn snapshots fall due, with an empty value or a section of
the wrong type, and with a document damaged while the engine holds the customer in its cache (outside review
of #16: C6, A4, C5)."""

from __future__ import annotations

from typing import Any

from livesignals import documents, metrics, serde
from operators.engine import Engine
from state.keys import Keys
from state.store import ProfileStore
from tests.helpers import T0, event, raw

DAY = 86_400_000


class Capture:
    """An output that keeps what the engine publishes."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def publish(self, records: list[Any]) -> None:
        self.records += records


def stored_doc(redis_client: Any, keys: Keys, key: str) -> dict[str, Any]:
    return serde.loads(documents.decode(redis_client.get(keys.profile(key))))


class Feed:
    """Batches of events at consecutive offsets of one input partition."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.offset = engine, 0

    def __call__(self, evs: list[dict[str, Any]]) -> Any:
        report = self.engine.process(raw(evs, start=self.offset))
        self.offset += len(evs)
        return report


def test_a_damaged_customers_due_churn_snapshots_are_labelled_once_it_is_repaired_without_an_event(
    redis_client, settings
):
    """C6: the sweep took a damaged customer's due entry and skipped it, so after the repair its pending
    snapshots waited for an event of its own. Now the entry is kept, on the partition's current day: loaded
    again about once a day of event time (not at every batch) while damaged, labelled the day after a repair."""
    s = settings.replace(churn_horizon_days=30, rules_path="none", policy_clock="stream")
    keys = Keys(s.key_prefix)
    store = ProfileStore(redis_client, keys)
    feed = Feed(Engine(s, store, Capture(), clock=lambda: 4e12))
    feed([event("call", "quiet", T0)])
    busy = [event("app_event", "busy", T0 + h * 6 * 3_600_000, action="post") for h in range(4, 4 * 70)]
    for e in busy[: 4 * 25]:  # a day at a time (four batches): the quiet customer's snapshots are pending
        feed([e])
    pending = stored_doc(redis_client, keys, "customer_id:quiet")["predictions"]["churn_pending"]
    assert pending, "the quiet customer has snapshots waiting for their horizon"
    good = redis_client.get(keys.profile("customer_id:quiet"))
    redis_client.set(keys.profile("customer_id:quiet"), good[:-5])  # damaged
    store.forget()  # as after a restart: read from Redis
    before = metrics.PROFILES_UNREADABLE._value.get()
    damaged_days = 20
    for e in busy[4 * 25 : 4 * (25 + damaged_days)]:  # its first snapshots fall due (30 days after the call)
        feed([e])
    loads = metrics.PROFILES_UNREADABLE._value.get() - before
    assert 1 <= loads <= damaged_days + 1, f"{loads} loads of the damaged profile in {4 * damaged_days} batches"
    assert redis_client.get(keys.profile("customer_id:quiet")) == good[:-5]  # never overwritten
    redis_client.set(keys.profile("customer_id:quiet"), good)  # repaired
    for e in busy[4 * (25 + damaged_days) :]:
        feed([e])
    assert stored_doc(redis_client, keys, "customer_id:quiet")["predictions"]["churn_pending"] == []


def test_an_empty_value_or_a_section_of_the_wrong_type_is_damage_not_a_new_customer(redis_client, settings):
    """A4: an empty stored value was read as a new customer (its history overwritten at the next commit),
    a section of the wrong type dead-lettered each event with a TypeError, and a ``windows`` section of the
    wrong shape failed the whole batch, and so did a window bucket index outside 64 bits (the encoder refused it
    at every commit: break-test 18b, B3). Each is now an unreadable profile, as a damaged frame is: the
    customer's events dead-lettered as ``UnreadableProfile``, the value kept for repair."""
    s = settings.replace(models_enabled=False, policy_clock="stream")
    keys = Keys(s.key_prefix)
    big = b'{"windows": {"n": %d, "b": {"1d": {"%s": {"events": 1}}}}}'
    for bad in (b"", b'{"events": "x"}', b'{"events": true}', b'{"history": []}', b'{"windows": [1]}',
                b'{"windows": {"n": 1}}', big % (T0, b"18446744073709551616"),
                big % (T0, b"-9223372036854775809")):  # fmt: skip
        redis_client.flushdb()
        redis_client.set(keys.profile("customer_id:c1"), bad)
        engine = Engine(s, ProfileStore(redis_client, keys), Capture(), clock=lambda: (T0 + 60_000) / 1000)
        report = engine.process(raw([event("chat", "c1", T0, text="hello"), event("chat", "c2", T0 + 1)]))
        assert [d.detail.split(":")[0] for d in report.dead_letters] == ["UnreadableProfile"], bad
        assert redis_client.get(keys.profile("customer_id:c1")) == bad
        assert redis_client.get(keys.profile("customer_id:c2")) is not None


def test_a_profile_damaged_while_cached_is_rewritten_from_the_cache_at_the_next_change(redis_client, settings):
    """C5, as the README says: the engine is the profile's single writer, so the copy it holds in its cache
    is the profile; damage done to the stored value meanwhile goes unnoticed and the next commit writes the
    correct state over it (a repair). Read afresh (a restart), the damage would be noticed."""
    s = settings.replace(models_enabled=False, policy_clock="stream")
    keys = Keys(s.key_prefix)
    store = ProfileStore(redis_client, keys)
    feed = Feed(Engine(s, store, Capture(), clock=lambda: (T0 + 60_000) / 1000))
    feed([event("chat", "c1", T0, text="hello")])
    good = redis_client.get(keys.profile("customer_id:c1"))
    redis_client.set(keys.profile("customer_id:c1"), good[:-5])
    before = metrics.PROFILES_UNREADABLE._value.get()
    report = feed([event("order", "c1", T0 + 1000, order_id="o1", amount=5.0)])
    assert report.dead_letters == [] and metrics.PROFILES_UNREADABLE._value.get() == before  # not noticed
    assert stored_doc(redis_client, keys, "customer_id:c1")["events"] == 2  # both events, the damage overwritten
    redis_client.set(keys.profile("customer_id:c1"), good[:-5])
    store.forget()
    report = feed([event("chat", "c1", T0 + 2000, text="again")])
    assert [d.detail.split(":")[0] for d in report.dead_letters] == ["UnreadableProfile"]


def test_a_data_subject_export_reports_a_damaged_profile_and_timeline_entry_instead_of_failing(redis_client, settings):
    """A damaged stored profile made `livesignals export` fail (JSONDecodeError / CorruptDocument out of the
    export), so a data subject's export of that customer could not be produced at all. Now the export holds
    why each damaged document cannot be read and its stored bytes (what Redis holds), beside what can be read."""
    from state.erasure import export

    s = settings.replace(rules_path="none")
    keys = Keys(s.key_prefix)
    store = ProfileStore(redis_client, keys)
    feed = Feed(Engine(s, store, Capture(), clock=lambda: 4e12))
    feed([event("call", "dmg", T0), event("chat", "dmg", T0 + 60_000, text="hello there")])
    key = "customer_id:dmg"
    entries = redis_client.zrange(keys.timeline(key), 0, -1, withscores=True)
    assert len(entries) == 2
    first, score = entries[0]
    redis_client.zrem(keys.timeline(key), first)
    redis_client.zadd(keys.timeline(key), {b"\x28\xb5\x2f\xfd broken": score})
    for damage in (b"", b"\x28\xb5\x2f\xfd not a frame", b"[1, 2]", b"null"):
        redis_client.set(keys.profile(key), damage)
        doc = export(redis_client, keys, key, store.erasures)
        assert doc["profile"] == {}
        assert doc["profile_unreadable"]["unreadable"] in ("JSONDecodeError", "CorruptDocument", "not a JSON object")
        assert serde.loads(serde.dumps(doc))  # JSON-ready, as the CLI writes it
        import base64

        assert base64.b64decode(doc["profile_unreadable"]["stored_base64"]) == damage
        damaged, readable = sorted(doc["timeline"], key=lambda e: "unreadable" not in e)
        assert damaged["unreadable"] in ("JSONDecodeError", "CorruptDocument")
        assert "unreadable" not in readable and readable  # the readable entry is exported as before
