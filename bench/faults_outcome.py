"""What a fault run ends with, against the reference run (:mod:`bench.faults`): events per customer, partition
KPIs, trigger ids; and where the repartition topic ends."""

from __future__ import annotations

import time
from typing import Any

from livesignals import documents
from livesignals.settings import Settings
from operators.profile360.profile import CustomerState
from state.connection import connect
from state.keys import Keys


def resume_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Where the engine resumes ``topic``, per partition."""
    from state.store import ProfileStore

    return ProfileStore(connect(settings), Keys(settings.key_prefix)).resume_offsets(topic)


def topic_ends(kafka: str, topic: str) -> dict[int, int]:
    """Per partition of ``topic``, one past its last record, read to the end (no watermark API: Tansu's is off)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": kafka, "group.id": "faults-ends", "enable.auto.commit": False})
    try:
        parts = list(c.list_topics(topic, timeout=10).topics[topic].partitions)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        ends = dict.fromkeys(parts, 0)
        idle = time.monotonic()
        while time.monotonic() - idle < 2.0:
            batch = [m for m in c.consume(1000, 0.5) if m.error() is None]
            if batch:
                idle = time.monotonic()
            for m in batch:
                part, offset = m.partition(), m.offset()
                if part is not None and offset is not None:
                    ends[part] = max(ends[part], offset + 1)
        return ends
    finally:
        c.close()


def state(s: Settings, models: bool = False, exact: bool = True) -> dict[str, Any]:
    """Events per customer, partition KPIs (byte for byte if ``exact``, else as read: :func:`kpis`), trigger ids."""
    if models:
        from tests.faults_models import outcome

        return outcome(s)
    client, keys = connect(s), Keys(s.key_prefix)
    n = len(s.key_prefix)
    events = {}
    for k in client.scan_iter(f"{s.key_prefix}:{{*}}:profile", count=1000):
        name = k.decode()[n + 2 : -len("}:profile")]
        events[name] = CustomerState.from_bytes(name, documents.read(client.get(k))).events
    names = client.scan_iter(keys.partition_pattern(), count=1000)
    read = (lambda raw: raw) if exact else kpis
    rep = s.repartition_topic  # each scenario has its own: named alike in every run
    aggs = {k.decode()[n:].replace(rep, "<repartition>"): read(client.hget(k, "kpi")) for k in names}
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": "faults-read", "enable.auto.commit": False})
    c.assign([TopicPartition(s.triggers_topic, p, 0) for p in range(s.topic_partitions)])
    ids: list[Any] = []
    idle = time.monotonic()
    while time.monotonic() - idle < 3:
        batch = [m for m in c.consume(1000, 0.5) if m.error() is None]
        if batch:
            idle = time.monotonic()
        ids += [dict(m.headers() or [])["ls.id"] for m in batch]
    c.close()
    return {"events": events, "aggs": aggs, "ids": ids}


def kpis(raw: bytes | None) -> Any:
    """A partition's KPIs as read (every metric's total over every window at its newest event), sums to 1e-6.
    Not the stored bytes: with misrouted input, customers' direct and rerouted events reach the partition in an
    order that depends on timing, which changes dict and bucket order and float rounding, not the KPIs."""
    from livesignals import serde
    from operators.profile360.kpis import new_windows
    from operators.profile360.windows import WINDOWS

    w = new_windows(serde.loads(raw) if raw else None)
    return {window: {m: round(v, 6) for m, v in sorted(w.totals(window, w.newest_ms).items())} for window in WINDOWS}


def compare(ref: dict[str, Any], got: dict[str, Any]) -> dict[str, Any]:
    """Lost and double-counted events, aggregates equal, repeated, missing and extra trigger ids."""
    customers = set(ref["events"]) | set(got["events"])
    diff = [got["events"].get(c, 0) - ref["events"].get(c, 0) for c in customers]
    ref_ids, ids = set(ref["ids"]), set(got["ids"])
    return {
        "lost": -sum(d for d in diff if d < 0),
        "double_counted": sum(d for d in diff if d > 0),
        "aggregates_equal": ref["aggs"] == got["aggs"],
        "duplicate_id_records": len(got["ids"]) - len(ids),
        "ids_missing": len(ref_ids - ids),
        "ids_extra": len(ids - ref_ids),
    }


def compare_models_on(ref: dict[str, Any], got: dict[str, Any]) -> dict[str, Any]:
    """With models on: the same headline figures, and every exact part (:mod:`tests.faults_models`)."""
    from tests.faults_models import compare as compare_all
    from tests.faults_models import failures

    figures = compare_all(ref, got)
    return {
        "lost": figures["lost"],
        "double_counted": figures["double_counted"],
        "aggregates_equal": figures["kpi_equal"],
        "duplicate_id_records": figures["triggers_duplicate_id_records"],
        "ids_missing": figures["triggers_ids_missing_model"],
        "ids_extra": figures["triggers_ids_extra_model"],
        "not_exact": failures(figures),
        "labels_learned": figures["labels_by_kind"],
    }


def first(recovery: Any) -> Any:
    """A scenario's recovery figure: p50/p95/max/n of a list of recoveries, else as is."""
    value = recovery[0] if isinstance(recovery, tuple) else recovery
    if isinstance(value, list):
        ordered = sorted(value)
        at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None  # noqa: E731
        return {"p50": at(0.5), "p95": at(0.95), "max": max(value, default=None), "n": len(value)}
    return value
