"""The topics grew (4 -> 8 partitions) with reroutes still waiting: each customer keeps one writer.

A reroute written under 4 partitions sits in repartition partition
``murmur2 % 4``; after the growth about half the customers are owned by
``murmur2 % 8`` = that + 4. Such a record is rerouted again to the new owner
and applied only there (break-test 10h, L1: it was applied where it was read,
and two workers wrote one customer). The embedded broker cannot add partitions
(no CreatePartitions), so the first test makes the state a growth leaves (topics
of 8 partitions, reroutes signed under 4 waiting at the old owners, Redis
remembering 4 partitions); the second grows real topics, on a broker that can
(the Apache Kafka leg of ``.ci/run``).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Producer

from app import embedded
from app.demo import scrape
from app.engine_process import start_engine, stop_process
from app.topics import ensure_topics
from livesignals import documents, serde
from livesignals.contract import RawMessage, decode
from livesignals.errors import Origin
from livesignals.partitioner import owner_partition
from operators.profile360.profile import CustomerState
from operators.routing import Reroute, Router
from state.connection import connect
from state.keys import Keys
from tests.helpers import T0, consume_all, event, grow_partitions, produce, wait_committed

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CUSTOMERS = [f"g{i}" for i in range(24)]
STALE = 5
"""Reroutes per customer waiting from before the growth."""
DIRECT = 10
"""Events per customer keyed by customer after the growth."""


def _docs(customer: str, first: int, n: int, kind: str) -> list[dict[str, Any]]:
    return [event("web_event", customer, T0 + (first + i) * 1000, event_id=f"{customer}-{kind}{i}",
                  action="page_view") for i in range(n)]  # fmt: skip


def _waiting_reroutes(settings: Any) -> tuple[list[tuple[int, Reroute]], int]:
    """Reroutes signed under 4 partitions, as the engine wrote them, and how many now belong elsewhere.

    Their first positions are on partitions no event of this test is read from (offsets far ahead), so that
    they name no real record."""
    old = Router.for_settings(settings, {settings.input_topics[0]: 4, settings.repartition_topic: 4})
    assert old is not None
    out, moved = [], 0
    for c in CUSTOMERS:
        key = f"customer_id:{c}"
        first = next(p for p in range(8) if p not in (owner_partition(key, 4), owner_partition(key, 8)))
        for i, doc in enumerate(_docs(c, 0, STALE, "stale")):
            origin = Origin(settings.input_topics[0], first, 10_000 + i, T0)
            message = RawMessage(serde.dumps(doc), f"cookie-{c}".encode(), origin)
            reroute = old.route(decode(message.value or b"", origin, now_ms=T0 + 10**9), message)
            assert isinstance(reroute, Reroute)
            out.append((reroute.partition, reroute))
        moved += STALE * (owner_partition(key, 8) != owner_partition(key, 4))
    return out, moved


def _publish(settings: Any, reroutes: list[tuple[int, Reroute]]) -> None:
    producer = Producer(settings.kafka_client_config())
    for partition, r in reroutes:
        producer.produce(settings.repartition_topic, r.value, r.customer_key.encode(), partition=partition,
                         headers=r.headers())  # fmt: skip
    assert producer.flush(30) == 0


def _applied(settings: Any) -> dict[str, int]:
    r, keys = connect(settings), Keys(settings.key_prefix)
    out = {}
    for c in CUSTOMERS:
        raw = documents.read(r.get(keys.profile(f"customer_id:{c}")))
        out[c] = CustomerState.from_bytes(f"customer_id:{c}", raw).events if raw else 0
    return out


def _wait_applied(settings: Any, expected: int, proc: Any, timeout_s: float = 120.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = _applied(settings)
        if sum(got.values()) >= expected or time.monotonic() > deadline:
            return got
        if proc.poll() is not None:
            raise AssertionError(f"engine exited with {proc.returncode} at {sum(got.values())}/{expected}")
        time.sleep(0.2)


def test_reroutes_waiting_from_4_partitions_are_applied_by_the_owner_under_8(settings, kafka_bootstrap, tmp_path):
    s = settings.replace(kafka_bootstrap=kafka_bootstrap, topic_partitions=8, batch_size=20, repartition_secret="t",
                         metrics_port=embedded.free_port())  # fmt: skip
    ensure_topics(s)
    connect(s).set(Keys(s.key_prefix).partition_count, "4")  # the deployment last ran with 4 partitions
    waiting, moved = _waiting_reroutes(s)
    assert moved >= STALE * 6, "about half the customers move"
    _publish(s, waiting)
    docs = [d for c in CUSTOMERS for d in _docs(c, STALE, DIRECT, "direct")]
    produce(s.kafka_bootstrap, s.input_topics[0], [(f"customer_id:{d['customer']['customer_id']}".encode(),
                                                   serde.dumps(d)) for d in docs])  # fmt: skip
    log_path = tmp_path / "engine.log"
    with open(log_path, "wb") as log:
        engine = start_engine(s, workers=2, log=log)
    try:
        wait_committed(s, len(docs), engine)
        got = _wait_applied(s, len(CUSTOMERS) * (STALE + DIRECT), engine)
        stats = scrape(s.metrics_port)
    finally:
        stop_process(engine)
    assert got == {c: STALE + DIRECT for c in CUSTOMERS}, "every event applied once, none lost to two writers"
    assert stats.get("livesignals_rerouted_again_total") == moved
    again = [m for m in consume_all(s.kafka_bootstrap, s.repartition_topic, len(waiting) + moved, 8, 15)
             if dict(m.headers() or ()).get("ls.origin.moved") == b"1"]  # fmt: skip
    assert len(again) == moved
    assert all(m.partition() == owner_partition(m.key().decode(), 8) for m in again), "to the owner under 8"
    warnings = [line for line in log_path.read_text().splitlines() if "PARTITION COUNT CHANGED: 4 -> 8" in line]
    assert len(warnings) == 1, log_path.read_text()
    assert connect(s).get(Keys(s.key_prefix).partition_count) == b"8"


def test_topics_grown_with_reroutes_waiting_lose_nothing(settings, kafka_bootstrap, tmp_path):
    s = settings.replace(kafka_bootstrap=kafka_bootstrap, topic_partitions=4, batch_size=20)
    ensure_topics(s)
    before = [d for c in CUSTOMERS for d in _docs(c, 0, STALE, "before")]
    produce(s.kafka_bootstrap, s.input_topics[0], [(f"cookie-{d['customer']['customer_id']}".encode(),
                                                   serde.dumps(d)) for d in before])  # fmt: skip
    engine = start_engine(s, workers=2)
    try:  # the input read, its reroutes published; stopped before they are all applied, as a rolling deploy
        wait_committed(s, len(before), engine)
    finally:
        stop_process(engine)
    refused = grow_partitions(s.kafka_bootstrap, s.input_topics[0])
    if refused:
        pytest.skip(f"this broker cannot add partitions ({refused}): the Apache Kafka leg runs it")
    assert not grow_partitions(s.kafka_bootstrap, s.repartition_topic)
    time.sleep(2)  # the metadata shows the new partitions a moment later
    after = [d for c in CUSTOMERS for d in _docs(c, STALE, DIRECT, "after")]
    produce(s.kafka_bootstrap, s.input_topics[0], [(f"cookie-{d['customer']['customer_id']}".encode(),
                                                   serde.dumps(d)) for d in after])  # fmt: skip
    with open(tmp_path / "engine.log", "wb") as log:
        engine = start_engine(s, workers=2, log=log)
    try:
        got = _wait_applied(s, len(before) + len(after), engine)
        time.sleep(2)  # nothing more arrives: a double count would show
        got = _applied(s)
    finally:
        stop_process(engine)
    assert got == {c: STALE + DIRECT for c in CUSTOMERS}
