"""Helpers shared by tests: building events and raw messages, reading Kafka back."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from livesignals import serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.partitioner import PRODUCER_CONFIG

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def event(
    etype: str = "chat",
    customer: str = "c1",
    t: int = T0,
    channel: str | None = None,
    event_id: str | None = None,
    **payload: Any,
) -> dict[str, Any]:
    """A valid contract event."""
    channel = channel or {
        "call": "phone",
        "survey": "email",
        "order": "web",
        "delivery": "backoffice",
        "web_event": "web",
        "app_event": "app",
        "consent": "web",
        "ticket": "backoffice",
        "return": "web",
        "profile_update": "web",
        "offer_response": "email",
        "cancellation": "self_service",
        "loyalty": "app",
        "campaign": "email",
        "agent_feedback": "backoffice",
    }.get(etype, etype)
    return {
        "schema_version": 1,
        "event_id": event_id or f"e-{customer}-{t}-{etype}",
        "type": etype,
        "channel": channel,
        "customer": {"customer_id": customer},
        "event_time": t,
        "payload": payload,
    }


def raw(
    events: Sequence[dict[str, Any] | bytes], topic: str = "in", partition: int = 0, start: int = 0
) -> list[RawMessage]:
    """Raw messages at consecutive offsets."""
    out = []
    for i, e in enumerate(events):
        value = e if isinstance(e, bytes) else serde.dumps(e)
        out.append(RawMessage(value, b"k", Origin(topic, partition, start + i, T0)))
    return out


def produce(bootstrap: str, topic: str, values: Sequence[tuple[bytes | None, bytes]]) -> None:
    """Produce ``(key, value)`` pairs (Kafka's default partitioner) and wait for every delivery."""
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, **PRODUCER_CONFIG})
    for key, value in values:
        p.produce(topic, value, key)
    assert p.flush(30) == 0


def consume_all(bootstrap: str, topic: str, expected: int, partitions: int = 4, timeout_s: float = 30.0) -> list[Any]:
    """Read ``expected`` messages from the start of every partition of ``topic``."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            out += [m for m in c.consume(1000, 0.5) if m.error() is None]
    finally:
        c.close()
    return out


def committed(settings: Any) -> int:
    """Messages the engine has committed so far, summed over input partitions."""
    from state.connection import connect
    from state.keys import Keys
    from state.store import ProfileStore

    r = connect(settings)
    keys = Keys(settings.key_prefix)
    store = ProfileStore(r, keys)
    return sum(sum(store.resume_offsets(t).values()) for t in settings.input_topics)


def wait_committed(settings: Any, expected: int, proc: Any = None, timeout_s: float = 360.0) -> None:
    """Wait until the engine has committed ``expected`` input messages."""
    deadline = time.monotonic() + timeout_s
    while (done := committed(settings)) < expected:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"engine exited with {proc.returncode} after {done}/{expected}")
        if time.monotonic() > deadline:
            raise AssertionError(f"engine committed {done}/{expected} in {timeout_s}s")
        time.sleep(0.05)


def profiles(settings: Any) -> dict[bytes, bytes]:
    """Every customer profile document (its JSON, plain or compressed in Redis) under the settings' key prefix."""
    from livesignals import documents
    from state.connection import connect

    r = connect(settings)
    found = {k: r.get(k) for k in r.scan_iter(f"{settings.key_prefix}:{{*}}:profile", count=1000)}
    return {k: documents.decode(v) for k, v in found.items() if v is not None}  # one gone since the scan: none


def timelines(settings: Any) -> dict[bytes, list[tuple[bytes, float]]]:
    """Every customer timeline under the settings' key prefix (its entries' JSON, plain or compressed in Redis)."""
    from livesignals import documents
    from state.connection import connect

    r = connect(settings)
    return {
        k: [(documents.decode(m), t) for m, t in r.zrange(k, 0, -1, withscores=True)]
        for k in r.scan_iter(f"{settings.key_prefix}:{{*}}:timeline", count=1000)
    }


def aggregates(settings: Any) -> dict[bytes, dict[bytes, bytes]]:
    """Every partition aggregate (KPIs, voice of the customer) under the settings' key prefix."""
    from state.connection import connect
    from state.keys import Keys

    r = connect(settings)
    return {k: r.hgetall(k) for k in r.scan_iter(Keys(settings.key_prefix).partition_pattern(), count=100)}


def run_through_kafka(settings: Any, steps: list[dict[str, Any]]) -> None:
    """Produce the events keyed by customer, run the engine until all are committed, stop it."""
    from app.engine_process import start_engine, stop_process
    from livesignals.contract import primary_key

    produce(settings.kafka_bootstrap, settings.input_topics[0],
            [(primary_key(e["customer"]).encode(), serde.dumps(e)) for e in steps])  # fmt: skip
    engine = start_engine(settings)
    try:
        wait_committed(settings, len(steps), engine)
    finally:
        stop_process(engine)


def grow_partitions(bootstrap: str, topic: str, count: int = 8) -> str:
    """Why the broker did not grow ``topic`` to ``count`` partitions ("": it did; the embedded broker refuses
    CreatePartitions, so the tests that need it run in CI's Apache Kafka leg)."""
    from confluent_kafka.admin import AdminClient, NewPartitions

    admin = AdminClient({"bootstrap.servers": bootstrap})  # held: a dropped client aborts the request
    try:
        admin.create_partitions([NewPartitions(topic, count)])[topic].result()
    except Exception as exc:  # any refusal means this broker cannot
        return str(exc)
    return ""
