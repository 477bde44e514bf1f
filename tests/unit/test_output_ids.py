"""Every output record carries an id unique to what it says, the same under replay.

A long simulated stream runs through the engine on four partitions, a third
of it keyed by session (rerouted through the repartition topic), with bad
input mixed in and offer responses that name no decision. Every record --
flag, clear, trigger, decision, outcome, dead letter, reroute -- has an id;
within its topic, one id means one record and one record one id. A second
engine on the same stream emits exactly the same records.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.partitioner import owner_partition
from livesignals.settings import Settings
from operators.engine import Engine
from operators.ports import OutRecord
from state.memory import InMemoryStore
from tests.helpers import T0

pytestmark = pytest.mark.slow

N = 12_000
PARTITIONS = 4
BAD = (b"not json", b'{"schema_version":1,"type":"teleport"}', b"[1,2,3]")


class Loop:
    """Captures every record; reroutes land on the repartition topic's partitions."""

    def __init__(self, repartition_topic: str) -> None:
        self.topic = repartition_topic
        self.queues: dict[int, list[RawMessage]] = defaultdict(list)
        self.offsets: Counter[int] = Counter()
        self.records: list[OutRecord] = []

    def publish(self, records: list[OutRecord]) -> None:
        self.records.extend(records)
        for r in records:
            if r.topic == self.topic and r.partition is not None:
                origin = Origin(r.topic, r.partition, self.offsets[r.partition], T0)
                self.offsets[r.partition] += 1
                self.queues[r.partition].append(RawMessage(r.value, r.key, origin, r.headers))


def stream() -> dict[int, list[RawMessage]]:
    """The simulated stream as Kafka would hold it: a third keyed by session, 1 % bad."""
    rng = random.Random(9)
    sim = Simulator(SimulatorConfig(customers=400, seed=9, start_ms=T0 + 9 * 3_600_000, step_ms=2_000.0))
    parts: dict[int, list[RawMessage]] = defaultdict(list)
    for i, (e, _) in enumerate(sim.stream(N)):
        customer = next(f"{k}:{v}" for k, v in e["customer"].items())
        p = rng.randrange(PARTITIONS) if rng.random() < 0.33 else owner_partition(customer, PARTITIONS)
        value = BAD[i % 3] if rng.random() < 0.01 else serde.dumps(e)
        parts[p].append(RawMessage(value, f"session-{i}".encode(), Origin("in", p, len(parts[p]), T0)))
    return parts


def run(parts: dict[int, list[RawMessage]]) -> list[OutRecord]:
    settings = Settings(metrics_port=0, input_topics=("in",), repartition_topic="rep", policy_clock="stream")
    loop = Loop("rep")
    engine = Engine(
        settings, InMemoryStore(), loop, clock=lambda: 4e12, partition_counts={"in": PARTITIONS, "rep": PARTITIONS}
    )
    batch = 400
    for start in range(0, N, batch):
        for p in range(PARTITIONS):
            chunk = parts[p][start // PARTITIONS : (start + batch) // PARTITIONS]
            if chunk:
                engine.process(chunk)
            back, loop.queues[p] = loop.queues[p], []
            if back:
                engine.process(back)
        if start == N // 2:
            engine.process(parts[0][: batch // PARTITIONS])  # a batch replayed after a crash
    return loop.records


def content(r: OutRecord) -> tuple:
    """What a record says: key, value, partition and headers (a dead letter's origin rides in them)."""
    return r.key, r.value, r.partition, tuple(r.headers or ())


def record_id(r: OutRecord) -> str:
    headers = dict(r.headers or [])
    value = headers.get("ls.id") or headers.get("ls.dlq.id")
    assert isinstance(value, bytes), r
    return value.decode()


def test_every_output_id_is_unique_to_what_the_record_says_and_the_same_under_replay():
    parts = stream()
    records = run(parts)
    by_topic: dict[str, dict[str, set[tuple]]] = defaultdict(lambda: defaultdict(set))
    for r in records:
        by_topic[r.topic][record_id(r)].add(content(r))
    kinds = Counter(serde.loads(r.value).get("kind") for r in records if r.topic == "ls.decisions")
    flags = Counter(serde.loads(r.value)["state"] for r in records if r.topic == "ls.flags")
    assert kinds["outcome"] > 20 and kinds["decision"] > 500 and flags["cleared"] > 100, (kinds, flags)
    assert {"ls.flags", "ls.triggers", "ls.decisions", "ls.deadletter", "rep"} <= set(by_topic)
    no_decision = [r for r in records if r.topic == "ls.decisions" and serde.loads(r.value).get("decision_id") is None]
    assert len({record_id(r) for r in no_decision}) == len(no_decision) > 10, "offers made elsewhere: one id each"
    for topic, ids in by_topic.items():
        clashes = {i: v for i, v in ids.items() if len(v) > 1}
        assert not clashes, f"{topic}: one id, several records: {list(clashes.items())[:2]}"
        values = [v for vs in ids.values() for v in vs]
        assert len(values) == len(set(values)), f"{topic}: one record under several ids"
    replayed = Counter((r.topic, record_id(r)) for r in records)
    assert replayed.most_common(1)[0][1] == 2, "the replayed batch re-emitted its dead letters and reroutes"

    again = run(parts)
    assert sorted((r.topic, record_id(r), content(r)) for r in again) == sorted(
        (r.topic, record_id(r), content(r)) for r in records
    )


def test_output_ids_differ_across_a_log_reset():
    """Break-test 10f, K2: after a log reset and the README's remedy (a new ``key_prefix``, the same output
    topics), the new log numbers its records from 0 again; an output id made of the position alone repeated an
    older, different output's id (1 of 148 decisions; every dead letter and reroute at a reused offset). The
    records' Kafka timestamps (later in the new log) keep every id apart."""
    old = {p: msgs[:600] for p, msgs in stream().items()}
    new = {p: [RawMessage(m.value, m.key, Origin(m.origin.topic, p, m.origin.offset, T0 + 86_400_000), m.headers)
               for m in msgs] for p, msgs in old.items()}  # fmt: skip
    before, after = run(old), run(new)
    topics = {r.topic for r in before}
    assert {"ls.flags", "ls.decisions", "ls.deadletter", "rep"} <= topics
    for topic in topics:
        ids = {record_id(r) for r in before if r.topic == topic}
        assert ids and not ids & {record_id(r) for r in after if r.topic == topic}, topic
