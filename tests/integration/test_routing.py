"""Routing by customer through real Kafka and Redis, with two Bytewax workers.

A web tracker keys one customer's events by session: they land on every
partition. Each worker owns two partitions; without routing both would write
the customer's profile (last writer wins: events lost). With routing, every
event is applied exactly once, in one profile, by the owner's worker.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from app.demo import scrape
from app.engine_process import start_engine, stop_process
from livesignals import documents, serde
from livesignals.partitioner import PRODUCER_CONFIG, owner_partition
from operators.profile360.profile import CustomerState
from state.connection import connect
from state.keys import Keys
from state.store import ProfileStore
from tests.helpers import consume_all, event, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
MIN = 60_000


def test_librdkafkas_murmur2_partitioner_agrees_with_ours(kafka_settings):
    topic = kafka_settings.input_topics[0] + "-keys"
    admin = AdminClient(kafka_settings.kafka_client_config())
    admin.create_topics([NewTopic(topic, 7, 1)])[topic].result()
    producer = Producer({**kafka_settings.kafka_client_config(), **PRODUCER_CONFIG})
    placed: dict[bytes, int] = {}

    def delivered(err, msg):
        assert err is None, err
        placed[msg.key()] = msg.partition()

    keys = [f"customer_id:c{i}".encode() for i in range(300)] + [b"", b"email:a@b.c", "email:zoë@例え.jp".encode()]
    for key in keys:
        producer.produce(topic, b"{}", key, on_delivery=delivered)
    assert producer.flush(30) == 0
    assert {k: owner_partition(k.decode(), 7) for k in keys} == placed


def test_topics_create_gives_the_repartition_topic_the_input_topics_partition_count(kafka_settings):
    from app.topics import ensure_topics

    s = kafka_settings.replace(
        input_topics=(kafka_settings.input_topics[0] + "-six",),
        repartition_topic=kafka_settings.repartition_topic + "6",
    )
    admin = AdminClient(s.kafka_client_config())
    admin.create_topics([NewTopic(s.input_topics[0], 6, 1)])[s.input_topics[0]].result()
    deadline = time.monotonic() + 30  # Apache Kafka's metadata shows a new topic a moment after it exists
    while s.input_topics[0] not in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ensure_topics(s) == [s.repartition_topic]
    assert len(admin.list_topics(timeout=10).topics[s.repartition_topic].partitions) == 6


def wait_for_offsets(settings, expected: dict[str, int], proc, timeout_s: float = 360.0) -> None:
    """Until the engine has committed ``expected`` messages per topic (input and repartition)."""
    store = ProfileStore(connect(settings), Keys(settings.key_prefix))
    deadline = time.monotonic() + timeout_s
    while True:
        done = {t: sum(store.resume_offsets(t).values()) for t in expected}
        if done == expected:
            return
        if proc.poll() is not None:
            raise AssertionError(f"engine exited with {proc.returncode} at {done}/{expected}")
        if time.monotonic() > deadline:
            raise AssertionError(f"engine committed {done}/{expected} in {timeout_s}s")
        time.sleep(0.1)


def test_a_customer_keyed_by_session_on_two_workers_is_applied_once_in_one_profile(kafka_settings):
    settings = kafka_settings.replace(batch_size=50)
    t0 = int(time.time() * 1000) - 3 * 60 * MIN
    records: list[tuple[bytes, bytes]] = []
    for i in range(400):  # one customer, its tracker keying by session
        doc = event("order", "c1", t0 + i * 20_000, event_id=f"c1-{i}", order_id=f"o{i}", amount=1.0 + i % 5)
        records.append((f"session-{i // 10}".encode(), serde.dumps(doc)))
    for i in range(200):  # other customers, keyed by customer as the contract says
        doc = event("web_event", f"k{i % 20}", t0 + i * 30_000, event_id=f"k-{i}", action="page_view")
        records.append((f"customer_id:k{i % 20}".encode(), serde.dumps(doc)))
    owner = owner_partition("customer_id:c1", 4)
    c1_partitions = {owner_partition(k.decode(), 4) for k, _ in records[:400]}
    assert len(c1_partitions) == 4, "the customer's events are on every partition"
    rerouted = sum(1 for k, _ in records[:400] if owner_partition(k.decode(), 4) != owner)
    produce(settings.kafka_bootstrap, settings.input_topics[0], list[tuple[bytes | None, bytes]](records))

    engine = start_engine(settings, workers=2)
    try:
        wait_for_offsets(settings, {settings.input_topics[0]: 600, settings.repartition_topic: rerouted}, engine)
        stats = scrape(settings.metrics_port)
    finally:
        stop_process(engine)

    r, keys = connect(settings), Keys(settings.key_prefix)
    c1 = CustomerState.from_bytes("customer_id:c1", documents.read(r.get(keys.profile("customer_id:c1"))))
    assert c1.events == 400, "every event applied exactly once"
    assert (c1.value["orders"], c1.value["spend"]) == (400, sum(1.0 + i % 5 for i in range(400)))
    assert r.zcard(keys.timeline("customer_id:c1")) == settings.timeline_max_entries  # bounded, all applied
    profiles = list(r.scan_iter(f"{settings.key_prefix}:{{*}}:profile", count=1000))
    assert len(profiles) == 21, "one profile per customer, none under a session key"
    assert stats.get("livesignals_events_rerouted_total") == rerouted
    back = consume_all(settings.kafka_bootstrap, settings.repartition_topic, rerouted, timeout_s=10)
    assert len(back) == rerouted and {m.partition() for m in back} == {owner}
    assert {m.key() for m in back} == {b"customer_id:c1"}
