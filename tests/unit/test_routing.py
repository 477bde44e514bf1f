"""Routing by customer: Kafka's partitioner exactly, and the engine's decision per event."""

from __future__ import annotations

import pickle
import random
from collections import Counter

import pytest

from livesignals import serde
from livesignals.contract import RawMessage, decode
from livesignals.errors import DeadLetter, Origin, Reason
from livesignals.partitioner import murmur2, owner_partition
from livesignals.settings import Settings
from operators.engine import Engine
from operators.ports import OutRecord
from operators.routing import Reroute, RoutedEvent, Router, read_position
from state.memory import InMemoryStore
from tests.helpers import T0, event

KAFKA_MURMUR2 = {
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
    # librdkafka src/rdmurmur2.c unit test
    b"kafka": -798503068,
    b"giberish123456789": -1890243828,
    b"1234": -1614185708,
    b"234": -406844982,
    b"34": -2026295078,
    b"4": 1514888353,
    b"PreAmbleWillBeRemoved,ThePrePartThatIs": 2017611548,
    b"": 275646681,
}


@pytest.mark.parametrize(("key", "expected"), sorted(KAFKA_MURMUR2.items()))
def test_murmur2_equals_kafkas(key, expected):
    assert murmur2(key) == expected


def test_owner_partition_is_the_positive_murmur2_modulo_the_count():
    assert owner_partition("21", 7) == (-973932308 & 0x7FFFFFFF) % 7  # negative hash: masked, not abs()
    assert owner_partition("21", 7) != abs(-973932308) % 7
    keys = [f"customer_id:c{i}" for i in range(4000)]
    spread = Counter(owner_partition(k, 4) for k in keys)
    assert set(spread) == {0, 1, 2, 3} and min(spread.values()) > 800
    with pytest.raises(ValueError):
        owner_partition("x", 0)


def message(doc, topic="in", partition=0, offset=0, key=b"session-1", headers=None):
    return RawMessage(serde.dumps(doc), key, Origin(topic, partition, offset, T0), headers)


def decoded(m):
    return decode(m.value, m.origin, now_ms=T0 + 10**9)


ROUTER = Router(["in"], "rep", 4)
OWNER = ROUTER.owner("customer_id:c1")
OTHER = (OWNER + 1) % 4


def test_an_event_on_its_owner_partition_is_applied_there():
    m = message(event(customer="c1"), partition=OWNER)
    e = decoded(m)
    assert ROUTER.route(e, m) is e


def test_an_event_on_another_partition_is_rerouted_unchanged_keyed_by_customer():
    m = message(event(customer="c1"), partition=OTHER, offset=42)
    reroute = ROUTER.route(decoded(m), m)
    assert isinstance(reroute, Reroute)
    assert (reroute.value, reroute.customer_key, reroute.partition) == (m.value, "customer_id:c1", OWNER)
    headers = dict(reroute.headers())
    assert headers["ls.id"] == f"reroute:in:{OTHER}:42:{T0}".encode()
    assert (headers["ls.origin.topic"], headers["ls.origin.partition"], headers["ls.origin.offset"]) == (
        b"in",
        str(OTHER).encode(),
        b"42",
    )
    assert headers["ls.origin.key"] == b"session-1"


def test_read_back_from_the_repartition_topic_it_is_applied_as_from_its_first_position():
    first = message(event(customer="c1"), partition=OTHER, offset=42)
    reroute = ROUTER.route(decoded(first), first)
    assert isinstance(reroute, Reroute)
    back = message(event(customer="c1"), "rep", reroute.partition, 7, b"customer_id:c1", reroute.headers())
    restored = ROUTER.route(decoded(back), back)
    assert isinstance(restored, RoutedEvent)
    assert restored.origin == first.origin, "ids and the replay check use the first position"
    assert read_position(restored) == back.origin, "aggregates and resume offsets use where it was read"
    assert restored.customer_key == "customer_id:c1"
    assert pickle.loads(pickle.dumps(restored)) == restored


def test_a_repartition_record_without_origin_headers_is_dead_lettered_never_applied():
    # was "applied as read": after Redis lost the signing secret that double-counted every reroute (#10 F1)
    m = message(event(customer="c1"), "rep", OWNER, 3, headers=[("ls.origin.topic", b"in")])
    e = decoded(m)
    assert read_position(e) == m.origin
    dead = ROUTER.route(e, m)
    assert isinstance(dead, DeadLetter) and dead.reason == Reason.UNVERIFIED_REROUTE and dead.origin == m.origin


def test_topics_outside_the_engines_are_applied_as_read():
    m = message(event(customer="c1"), "elsewhere", OTHER)
    e = decoded(m)
    assert ROUTER.route(e, m) is e


def test_routing_is_off_without_partition_counts_and_refuses_mixed_counts():
    assert Router.from_counts(["a", "b"], "rep", None) is None
    assert Router.from_counts(["a", "b"], "rep", {"a": 8, "b": 8, "rep": 8}).partitions == 8  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="one partition count"):
        Router.from_counts(["a", "b"], "rep", {"a": 8, "b": 4, "rep": 8})
    with pytest.raises(ValueError, match="one partition count"):
        Router.from_counts(["a"], "rep", {"a": 8, "rep": 4})
    with pytest.raises(ValueError, match="partition count of input topics"):
        Router.from_counts(["a", "b"], "rep", {"a": 8})


class Loop:
    """Publishers of a tiny in-memory Kafka: reroutes land on the repartition topic's partitions."""

    def __init__(self, repartition_topic: str, partitions: int) -> None:
        self.topic = repartition_topic
        self.queues: dict[int, list[RawMessage]] = {p: [] for p in range(partitions)}
        self.offsets = Counter[int]()
        self.records: list[OutRecord] = []

    def publish(self, records: list[OutRecord]) -> None:
        self.records.extend(records)
        for r in records:
            if r.topic == self.topic:
                assert r.partition is not None
                origin = Origin(r.topic, r.partition, self.offsets[r.partition], T0)
                self.offsets[r.partition] += 1
                self.queues[r.partition].append(RawMessage(r.value, r.key, origin, r.headers))

    def take(self, partition: int) -> list[RawMessage]:
        out, self.queues[partition] = self.queues[partition], []
        return out


def test_a_customer_keyed_by_session_on_every_partition_is_applied_once_by_its_owner():
    settings = Settings(metrics_port=0, input_topics=("in",), repartition_topic="rep", policy_clock="stream")
    store, loop = InMemoryStore(), Loop("rep", 4)
    counts = {"in": 4, "rep": 4}
    engine = Engine(settings, store, loop, clock=lambda: (T0 + 10**9) / 1000, partition_counts=counts)
    rng = random.Random(3)
    docs = [event("page_view" if i % 3 else "chat", "c1", T0 + i * 1000, event_id=f"e{i}") for i in range(200)]
    for d in docs:
        if d["type"] == "page_view":
            d["type"], d["channel"], d["payload"] = "web_event", "web", {"action": "page_view", "session_id": "s"}
    by_partition: dict[int, list[dict]] = {p: [] for p in range(4)}
    for d in docs:
        by_partition[rng.randrange(4)].append(d)
    batches = {
        p: [message(d, "in", p, i, f"session-{i % 5}".encode()) for i, d in enumerate(part_docs)]
        for p, part_docs in by_partition.items()
    }
    for batch in batches.values():
        engine.process(batch)
    owner = engine.router.owner("customer_id:c1")  # type: ignore[union-attr]
    back = loop.take(owner)
    assert len(back) == 200 - len(by_partition[owner])
    assert engine.process(back).applied == len(back)
    other = (owner + 1) % 4
    engine.process(batches[other])  # a batch replayed after a crash re-publishes its reroutes...
    again = loop.take(owner)
    assert len(again) == len(batches[other]) and again[0].origin.offset == len(back)
    report = engine.process(again)  # ...at new offsets of the repartition topic: skipped as replays
    assert (report.applied, report.replay_skipped) == (0, len(again))
    state = store.states["customer_id:c1"]
    assert state.events == 200 and list(store.states) == ["customer_id:c1"]
    assert state.history["by_type"] == Counter(d["type"] for d in docs)
    assert set(store.partitions) == {("in", owner), ("rep", owner)}, "counted where read, by the owner's worker"
    rerouted = [r for r in loop.records if r.topic == "rep"]
    assert {r.partition for r in rerouted} == {owner} and {r.key for r in rerouted} == {b"customer_id:c1"}


def _moved_customer() -> str:
    """A customer whose owner under 8 partitions is not its owner under 4 (the +4 half)."""
    return next(c for c in (f"c{i}" for i in range(100)) if Router(["in"], "rep", 8).owner(f"customer_id:{c}") >= 4)


def test_a_reroute_written_under_4_partitions_is_rerouted_again_to_its_owner_under_8():
    # break-test 10h L1: it was applied by whichever partition read it, the old owner: two writers of one customer
    customer = _moved_customer()
    key = f"customer_id:{customer}"
    old, new = Router(["in"], "rep", 4), Router(["in"], "rep", 8)
    first = message(event(customer=customer), partition=(old.owner(key) + 1) % 4, offset=42)
    reroute = old.route(decoded(first), first)
    assert isinstance(reroute, Reroute)
    back = message(event(customer=customer), "rep", reroute.partition, 7, key.encode(), reroute.headers())
    again = new.route(decoded(back), back)
    assert isinstance(again, Reroute), "its owner moved: never applied where it was read"
    assert (again.partition, again.origin, again.customer_key) == (new.owner(key), first.origin, key)
    headers = dict(again.headers())
    assert headers["ls.id"] == dict(reroute.headers())["ls.id"], "the same reroute: same id"
    assert headers["ls.origin.key"] == b"session-1" and headers["ls.origin.moved"] == b"1"
    there = message(event(customer=customer), "rep", again.partition, 3, key.encode(), again.headers())
    applied = new.route(decoded(there), there)
    assert isinstance(applied, RoutedEvent) and applied.moved and applied.origin == first.origin
    assert read_position(applied) == there.origin
    assert pickle.loads(pickle.dumps(applied)) == applied
    forged = [(k, v) for k, v in again.headers() if k != "ls.origin.moved"]  # the mark is signed
    unsigned = message(event(customer=customer), "rep", again.partition, 4, key.encode(), forged)
    assert isinstance(new.route(decoded(unsigned), unsigned), DeadLetter)


def test_a_moved_reroute_behind_later_events_of_its_first_partition_is_applied_once():
    # after the growth, later events of the same first partition may reach the owner before the moved reroute:
    # the high-water replay check would skip it for good; it is applied, and its second copy is a duplicate
    customer = _moved_customer()
    key = f"customer_id:{customer}"
    settings = Settings(metrics_port=0, input_topics=("in",), repartition_topic="rep", policy_clock="stream")
    store, loop = InMemoryStore(), Loop("rep", 8)
    old = Router.for_settings(settings, {"in": 4, "rep": 4})
    assert old is not None
    engine = Engine(settings, store, loop, clock=lambda: (T0 + 10**9) / 1000, partition_counts={"in": 8, "rep": 8})
    owner, origin_partition = engine.router.owner(key), (old.owner(key) + 1) % 4  # type: ignore[union-attr]
    stale = message(event(customer=customer, event_id="early"), partition=origin_partition, offset=5)
    reroute = old.route(decoded(stale), stale)
    assert isinstance(reroute, Reroute)
    later = message(event(customer=customer, t=T0 + 5000, event_id="late"), partition=owner, offset=9)
    engine.process([later])  # direct, on the owner: applied first
    later_rerouted = message(event(customer=customer, t=T0 + 6000, event_id="later"), partition=origin_partition,
                             offset=20)  # fmt: skip
    engine.process([later_rerouted])
    engine.process(loop.take(owner))
    assert store.states[key].applied[f"in:{origin_partition}"] == 20
    waiting = RawMessage(reroute.value, key.encode(), Origin("rep", reroute.partition, 0, T0), reroute.headers())
    copy = RawMessage(waiting.value, waiting.key, Origin("rep", reroute.partition, 1, T0), waiting.headers)
    engine.process([waiting, copy])  # the old owner's worker (a reroute re-published by a replay: two copies)
    moved = loop.take(owner)
    assert moved and all(dict(m.headers or ())["ls.origin.moved"] == b"1" for m in moved)
    report = engine.process(moved)
    assert report.applied == 1 and report.duplicates == len(moved) - 1
    state = store.states[key]
    assert state.events == 3, "the stale reroute was applied, by the owner, once"
    assert state.applied[f"in:{origin_partition}"] == 20, "the replay check never goes back"
    assert engine.process(moved).applied == 0, "a replayed batch of it is skipped"


@pytest.mark.parametrize(("between", "applied_twice"), [(10, False), (31, False), (32, True), (40, True)])
def test_a_duplicate_under_another_key_is_skipped_only_within_32_events_of_its_customer(between, applied_twice):
    # the documented limit (README "Duplicates", break-test 10h L5): the rerouted copy reaches the owner later;
    # when 32 or more of the customer's events were applied meanwhile, its first copy's id is forgotten
    settings = Settings(metrics_port=0, input_topics=("in",), repartition_topic="rep", policy_clock="stream")
    store, loop = InMemoryStore(), Loop("rep", 4)
    engine = Engine(settings, store, loop, clock=lambda: (T0 + 10**9) / 1000, partition_counts={"in": 4, "rep": 4})
    owner = engine.router.owner("customer_id:c1")  # type: ignore[union-attr]
    twin = event(customer="c1", event_id="twin")
    engine.process([message(twin, partition=(owner + 1) % 4, offset=0, key=b"cookie-1")])  # rerouted: waits
    direct = [message(twin, partition=owner, offset=0, key=b"customer_id:c1")]
    direct += [message(event(customer="c1", t=T0 + i + 1, event_id=f"o{i}"), partition=owner, offset=i + 1,
                       key=b"customer_id:c1") for i in range(between)]  # fmt: skip
    engine.process(direct)
    report = engine.process(loop.take(owner))
    assert (report.applied, report.duplicates) == ((1, 0) if applied_twice else (0, 1))
    assert store.states["customer_id:c1"].events == between + 1 + applied_twice


def test_a_reroute_a_no_publish_replay_re_published_carries_a_signed_replayed_mark():
    """Break-test 10j, Q1: a start-up STATE LOSS replay (origin secret lost) re-routes its events; its owner
    applied them as new and published their flags and decisions again by the wall clock. Such reroutes carry
    ``ls.origin.replayed``, signed: the owner's sink rebuilds state from them and publishes nothing."""
    first = message(event(customer="c1"), partition=OTHER, offset=42)
    reroute = ROUTER.route(decoded(first), first)
    assert isinstance(reroute, Reroute) and not reroute.replayed
    marked = Reroute(reroute.value, reroute.customer_key, reroute.partition, reroute.origin, b"session-1",
                     replayed=True)  # fmt: skip
    headers = marked.headers()
    assert dict(headers)["ls.origin.replayed"] == b"1"
    back = message(event(customer="c1"), "rep", OWNER, 7, b"customer_id:c1", headers)
    restored = ROUTER.route(decoded(back), back)
    assert isinstance(restored, RoutedEvent) and restored.replayed and restored.origin == first.origin
    # the mark is signed: added to an unmarked reroute, it fails verification (dead letter, never applied)
    forged = message(event(customer="c1"), "rep", OWNER, 8, b"customer_id:c1",
                     [*reroute.headers(), ("ls.origin.replayed", b"1")])  # fmt: skip
    assert isinstance(ROUTER.route(decoded(forged), forged), DeadLetter)
    # and taken off a marked one, too (nobody can make a replay's copy publish)
    stripped = message(event(customer="c1"), "rep", OWNER, 9, b"customer_id:c1",
                       [h for h in headers if h[0] != "ls.origin.replayed"])  # fmt: skip
    assert isinstance(ROUTER.route(decoded(stripped), stripped), DeadLetter)


def test_a_no_publish_replay_that_reroutes_marks_its_reroutes_and_publishes_no_signal():
    settings = Settings(metrics_port=0, input_topics=("in",), repartition_topic="rep", policy_clock="stream")
    store, loop = InMemoryStore(), Loop("rep", 4)
    engine = Engine(settings, store, loop, clock=lambda: (T0 + 10**9) / 1000, partition_counts={"in": 4, "rep": 4})
    chats = [message(event("chat", "c1", T0 + i, event_id=f"q{i}", topic="refund"), "in", OTHER, i) for i in range(3)]
    engine.process(chats, publish=False, reroute=True)
    assert {r.topic for r in loop.records} == {"rep"}, "reroutes only: no flag, trigger or decision"
    assert all(dict(r.headers or [])["ls.origin.replayed"] == b"1" for r in loop.records)
