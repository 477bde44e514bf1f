"""Compare model configurations on a recorded stream, with delayed labels as in production.

``livesignals models evaluate`` and the notebook API :func:`evaluate` replay
a JSONL file of contract events (``livesignals simulate --out``) or a Kafka
topic range through the real engine (in memory, no Redis), once per
configuration, and compare the models' progressive-validation figures and
their cost. With the simulator's ground truth (``--truth``), they also score
the sentiment model on the true sentiment of every text, per language. From
a notebook::

    from app.evaluate import evaluate, read_jsonl, table
    rows = evaluate(read_jsonl("stream.jsonl"),
                    {"base": {}, "fast": {"churn": {"champion": {"learning_rate": 0.2}}}},
                    truth_path="truth.jsonl")
    print(table(rows))
"""

from __future__ import annotations

import csv
import io
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from livesignals import serde
from livesignals.contract import RawMessage, primary_key
from livesignals.errors import Origin
from livesignals.settings import Settings
from models.sentiment import label_from_score
from operators.engine import Engine
from state.memory import InMemoryStore

COLUMNS = ("config", "kind", "role", "version", "labels", "roc_auc", "log_loss", "accuracy", "macro_f1",
           "truth_accuracy", "truth_macro_f1", "us_per_event")  # fmt: skip


class _Discard:
    def publish(self, records: Any) -> None:
        """Outputs are not evaluated here."""


def read_jsonl(path: str | Path) -> Iterator[bytes]:
    """Raw event lines of a JSONL file (each line one contract event)."""
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield line.rstrip(b"\n")


def read_kafka(bootstrap: str, topic: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Raw values of ``topic`` from offset ``start`` to ``end`` (exclusive) on every partition."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "livesignals-evaluate", "enable.auto.commit": False}
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, start) for p in parts])
    idle = 0
    try:
        while idle < 5:
            batch = consumer.consume(5000, 1.0)
            idle = 0 if batch else idle + 1
            for msg in batch:
                offset, value = msg.offset() or 0, msg.value()
                if msg.error() is None and value is not None and (end is None or offset < end):
                    yield value
    finally:
        consumer.close()


def _truth(path: str | Path | None) -> dict[str, dict[str, Any]]:
    if not path:
        return {}
    return {doc["event_id"]: doc for doc in map(serde.loads, read_jsonl(path)) if doc.get("kind") == "text"}


def evaluate(
    events: Iterable[bytes],
    configs: dict[str, dict[str, Any]],
    settings: Settings | None = None,
    truth_path: str | Path | None = None,
    batch_size: int = 2000,
) -> list[dict[str, Any]]:
    """Replay ``events`` once per model configuration; one row per config, model and role."""
    raw = list(events)
    truth = _truth(truth_path)
    settings = settings or Settings.load(env={})
    rows: list[dict[str, Any]] = []
    for name, models_config in configs.items():
        store = InMemoryStore(models_config)
        replay = settings.replace(models=models_config, policy_clock="stream")  # a recording: its own time is now
        engine = Engine(replay, store, _Discard(), clock=lambda: 4e12)
        hits: dict[str, list[tuple[str, str]]] = defaultdict(list)
        started = time.perf_counter()
        for i in range(0, len(raw), batch_size):
            chunk = [RawMessage(v, None, Origin("replay", 0, i + j)) for j, v in enumerate(raw[i : i + batch_size])]
            engine.process(chunk)
            if truth:
                _score_against_truth(store, chunk, truth, hits)
        cost = (time.perf_counter() - started) / max(1, len(raw)) * 1e6
        rows += _rows(name, store, hits, cost)
    return rows


def _score_against_truth(store: InMemoryStore, chunk: list[RawMessage], truth: dict[str, Any], hits: Any) -> None:
    """The label each truth-known text got when it was scored (read back from the customer's state)."""
    wanted = {}
    for m in chunk:
        doc = serde.loads(m.value or b"{}")
        if doc.get("event_id") in truth:
            wanted[doc["event_id"]] = doc
    for event_id, doc in wanted.items():
        state = store.states.get(primary_key(doc["customer"]))
        entry = next(
            (e for e in (state.predictions.get("recent_texts", []) if state else []) if e[0] == event_id), None
        )
        if entry is None:
            continue
        predicted = label_from_score(entry[4])
        hits[truth[event_id]["lang"]].append((truth[event_id]["sentiment"], predicted))


def _rows(name: str, store: InMemoryStore, hits: dict[str, list[tuple[str, str]]], cost: float) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for part in store.partitions.values():
        for row in part.models.summary():
            key = (row["kind"], row["role"])
            agg = merged.setdefault(key, {"config": name, **row})
            if agg is not row and row.get("labels"):
                agg["labels"] = agg.get("labels", 0) + row["labels"]
    out = []
    for (kind, _role), row in merged.items():
        row = {c: row.get(c) for c in COLUMNS} | {"config": name, "us_per_event": round(cost, 1)}
        if kind == "sentiment" and hits:
            pairs = [p for lang_pairs in hits.values() for p in lang_pairs]
            row["truth_accuracy"], row["truth_macro_f1"] = _accuracy_f1(pairs)
            row["truth_by_language"] = {lang: _accuracy_f1(p) for lang, p in sorted(hits.items())}
        out.append(row)
    return out


def _accuracy_f1(pairs: list[tuple[str, str]]) -> tuple[float | None, float | None]:
    if not pairs:
        return None, None
    accuracy = sum(1 for y, p in pairs if y == p) / len(pairs)
    f1s = []
    for c in ("negative", "neutral", "positive"):
        tp = sum(1 for y, p in pairs if y == c and p == c)
        fp = sum(1 for y, p in pairs if y != c and p == c)
        fn = sum(1 for y, p in pairs if y == c and p != c)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return round(accuracy, 4), round(sum(f1s) / len(f1s), 4)


def table(rows: list[dict[str, Any]]) -> str:
    """A plain-text comparison table."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in COLUMNS] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV (the table's columns)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
