"""The repartition topic after Redis loses its data, and shared by two deployments (issue 10, break-test F1, F2).

A producer keying by cookie puts ~3/4 of a customer's events on partitions that do not own it: they go
through the repartition topic, signed with the deployment's secret, which lives in Redis. Through real
Kafka and Redis, 4 partitions, 2 workers:

* F1: Redis loses this deployment's data (secret included) while the repartition topic holds every
  reroute. The rebuild replays the input topic (re-routing with the new secret) and the repartition
  topic: the old reroutes no longer verify and are dead-lettered, never applied a second time, so the
  state equals the uninterrupted run's.
* F2: blue/green. Two key prefixes on one input topic: each gets its own repartition topic by default;
  given one topic, each skips the other's reroutes -- one after the other and both at once.
"""

from __future__ import annotations

import dataclasses
import random
import time

import pytest

from app.engine_process import start_engine, stop_process
from app.topics import ensure_topics
from livesignals import serde
from livesignals.partitioner import owner_partition
from state import deployments
from state.connection import connect
from state.keys import Keys
from state.store import ProfileStore
from tests.helpers import consume_all, event, produce, profiles, timelines

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N, CUSTOMERS, PARTITIONS = 1200, 30, 4


def _cookie_keyed(seed: int) -> tuple[list[tuple[bytes | None, bytes]], int]:
    """N orders of CUSTOMERS customers, keyed by a random cookie; and how many land off their owner partition."""
    rng, t0 = random.Random(seed), int(time.time() * 1000) - 3 * 3_600_000
    records: list[tuple[bytes | None, bytes]] = []
    rerouted = 0
    for i in range(N):
        customer = f"c{i % CUSTOMERS}"
        doc = event("order", customer, t0 + i * 1000, event_id=f"{customer}-{i}", order_id=f"o{i}", amount=1.0 + i % 5)
        key = f"cookie-{rng.randrange(10**9)}"
        rerouted += owner_partition(key, PARTITIONS) != owner_partition(f"customer_id:{customer}", PARTITIONS)
        records.append((key.encode(), serde.dumps(doc)))
    return records, rerouted


def _wait_offsets(settings, expected: dict[str, int], proc, timeout_s: float = 300.0) -> None:
    """Until the engine has committed ``expected`` messages per topic (input and repartition)."""
    store = ProfileStore(connect(settings), Keys(settings.key_prefix))
    deadline = time.monotonic() + timeout_s
    while (done := {t: sum(store.resume_offsets(t).values()) for t in expected}) != expected:
        assert proc.poll() is None, f"engine exited with {proc.returncode} at {done}/{expected}"
        assert time.monotonic() < deadline, f"engine committed {done}/{expected} in {timeout_s}s"
        time.sleep(0.1)


def _run(settings, expected: dict[str, int]) -> None:
    engine = start_engine(settings, workers=2)
    try:
        _wait_offsets(settings, expected, engine)
    finally:
        stop_process(engine)


ORDER_BOUND = ("activity", "recent_ids", "_document")
"""Profile fields that keep the *latest few* (open orders, recent ids): which ones depends on the order a
worker interleaves its input and repartition partitions, which two uninterrupted runs do not share."""


def _state(settings) -> tuple[dict[str, dict], dict]:
    """Every profile's fields but :data:`ORDER_BOUND`, and the timelines (as sets), without the key prefix."""
    from operators.profile360.profile import CustomerState

    cut, out = len(settings.key_prefix), {}
    for key, raw in profiles(settings).items():
        customer = key.decode().split("{", 1)[1].rsplit("}", 1)[0]
        fields = dataclasses.asdict(CustomerState.from_bytes(customer, raw))
        out[customer] = {k: v for k, v in fields.items() if k not in ORDER_BOUND}
    return out, {k[cut:]: sorted(v) for k, v in timelines(settings).items()}


def _events(settings) -> dict[str, int]:
    from operators.profile360.profile import CustomerState

    out = {}
    for key, raw in profiles(settings).items():
        customer = key.decode().split("{", 1)[1].rsplit("}", 1)[0]
        out[customer] = CustomerState.from_bytes(customer, raw).events
    return out


def _unverified(settings) -> int:
    letters = consume_all(settings.kafka_bootstrap, settings.dead_letter_topic, 10**9, timeout_s=5)
    return sum(dict(m.headers())["ls.dlq.reason"] == b"unverified_reroute" for m in letters)


def test_redis_lost_with_reroutes_in_the_repartition_topic_rebuilds_to_the_uninterrupted_state(kafka_settings):
    s = kafka_settings.replace(models_enabled=False, quiet_hours="0-0", batch_size=100)
    records, rerouted = _cookie_keyed(seed=10)
    assert rerouted > N // 2, "most events go through the repartition topic"
    produce(s.kafka_bootstrap, s.input_topics[0], records)
    topic, rep = s.input_topics[0], s.repartition_topic
    _run(s, {topic: N, rep: rerouted})
    uninterrupted = _state(s)
    assert sum(_events(s).values()) == N and len(uninterrupted[0]) == CUSTOMERS
    assert _unverified(s) == 0

    r = connect(s)  # Redis restarted empty: this deployment's keys, its secret among them, are gone
    lost = list(r.scan_iter(f"{s.key_prefix}:*", count=1000))
    assert r.exists(Keys(s.key_prefix).secret("origin")) and lost
    r.delete(*lost)
    deployments.leave(r, s.key_prefix)

    _run(s, {topic: N, rep: 2 * rerouted})  # the old reroutes are read again, and the replay re-routes them
    assert sum(_events(s).values()) == N, "every event applied once"
    assert _state(s) == uninterrupted
    assert _unverified(s) == rerouted, "each old reroute dead-lettered, with its reason"


def test_blue_green_on_one_input_topic_each_applies_every_event_once(kafka_settings):
    base = kafka_settings.replace(models_enabled=False, quiet_hours="0-0", batch_size=100)
    records, rerouted = _cookie_keyed(seed=11)
    produce(base.kafka_bootstrap, base.input_topics[0], records)
    topic = base.input_topics[0]

    def deployment(name: str, shared_repartition: bool):
        s = base.replace(
            key_prefix=f"{base.key_prefix}{name}",
            consumer_group=f"{base.consumer_group}{name}",
            dead_letter_topic=f"{base.dead_letter_topic}{name}",
            metrics_port=0,
            repartition_topic=base.repartition_topic if shared_repartition else "",
        )
        ensure_topics(s)
        return s

    # the default: one repartition topic per deployment, both at once
    blue, green = deployment("blue", False), deployment("green", False)
    assert blue.repartition_topic == f"{blue.key_prefix}.repartition" != green.repartition_topic
    engines = [start_engine(blue, workers=2), start_engine(green, workers=2)]
    try:
        for s, proc in zip((blue, green), engines, strict=True):
            _wait_offsets(s, {topic: N, s.repartition_topic: rerouted}, proc)
    finally:
        for proc in engines:
            stop_process(proc)
    assert _events(blue) == _events(green) and sum(_events(green).values()) == N

    # one repartition topic given to both: blue, then green (the switch), then both at once
    shared = base.repartition_topic
    one, two = deployment("one", True), deployment("two", True)
    _run(one, {topic: N, shared: rerouted})
    _run(two, {topic: N, shared: 2 * rerouted})  # reads one's reroutes too, and skips them
    assert sum(_events(one).values()) == sum(_events(two).values()) == N
    three, four = deployment("three", True), deployment("four", True)
    engines = [start_engine(three, workers=2), start_engine(four, workers=2)]
    try:
        for s, proc in zip((three, four), engines, strict=True):
            _wait_offsets(s, {topic: N, shared: 4 * rerouted}, proc)
    finally:
        for proc in engines:
            stop_process(proc)
    assert sum(_events(three).values()) == sum(_events(four).values()) == N
    assert _events(three) == _events(one)
    assert _unverified(one) == _unverified(two) == _unverified(four) == 0, "skipped, not dead-lettered"
