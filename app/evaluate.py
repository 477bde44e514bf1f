"""Compare model configurations on a recorded stream, with delayed labels as in production.

``livesignals models evaluate`` and the notebook API :func:`evaluate` replay
a JSONL file of contract events (``livesignals simulate --out``) or a Kafka
topic range through the real engine (in memory, no Redis), once per
configuration, and compare the models' progressive-validation figures, their
class balance and their cost. Events are spread over ``partitions`` input
partitions as a producer keyed by customer would (murmur2 of the customer key,
the project's producer contract), so the replay has the production layout. With ground
truth (:mod:`app.evaluate_truth`) it also scores sentiment on the true
sentiment of every text (three-class and binary) and churn on who really
cancelled (ROC AUC). ``scores_path`` writes every score (JSONL). From a notebook::

    from app.evaluate import evaluate, read_jsonl, table
    rows = evaluate(read_jsonl("stream.jsonl"),
                    {"base": {}, "fast": {"churn": {"champion": {"learning_rate": 0.2}}}},
                    truth_paths=["truth.jsonl"], partitions=12)
    print(table(rows))
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from app import evaluate_truth as truth
from livesignals import serde
from livesignals.contract import RawMessage, primary_key
from livesignals.errors import Origin
from livesignals.partitioner import owner_partition
from livesignals.settings import Settings
from models.sentiment import label_from_score
from operators.engine import Engine
from operators.scoring.learner import MemoryModelLog
from operators.scoring.online import SWEEP_EVENT_ID
from state.memory import InMemoryStore

COLUMNS = ("config", "kind", "role", "version", "labels", "balance", "roc_auc", "log_loss", "accuracy", "macro_f1",
           "truth_accuracy", "truth_macro_f1", "truth_binary_f1", "truth_roc_auc", "us_per_event")  # fmt: skip
PROGRESS_EVERY_S = 5.0


class _Discard:
    def publish(self, records: Any) -> None:
        """Outputs are not evaluated here."""


class _CountingLog(MemoryModelLog):
    """The in-memory lesson log, counting the classes each model kind is taught (class balance)."""

    CLASS_ARG = {"sentiment": 1, "churn": 1, "offers": 2, "flag_relevance": 2}

    def __init__(self) -> None:
        super().__init__()
        self.classes: dict[str, Counter[str]] = defaultdict(Counter)

    def append(self, lessons: list[bytes]) -> None:
        """Count, then append."""
        for raw in lessons:
            lesson = serde.loads(raw)
            at = self.CLASS_ARG.get(lesson[3])
            if at is not None:
                self.classes[lesson[3]][str(lesson[4][at]).lower()] += 1
        super().append(lessons)


def read_jsonl(path: str | Path) -> Iterator[bytes]:
    """Raw event lines of a JSONL file (each line one contract event)."""
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield line.rstrip(b"\n")


def read_kafka(client_config: dict[str, Any], topic: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Raw values of ``topic`` from offset ``start`` to ``end`` (exclusive) on every partition.

    ``client_config`` is the engine's own (``Settings.kafka_client_config()``: bootstrap servers plus
    ``kafka_config``, so TLS and SASL settings reach this replay as they reach the engine).
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**client_config, "group.id": "livesignals-evaluate", "enable.auto.commit": False})
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


def partition_of(customer_key: str, partitions: int) -> int:
    """The partition a producer keyed by customer writes to (murmur2, :mod:`livesignals.partitioner`).

    >>> partition_of("customer_id:c1", 1), 0 <= partition_of("customer_id:c1", 12) < 12
    (0, True)
    """
    return owner_partition(customer_key, partitions) if partitions > 1 else 0


def layout(raw: list[bytes], partitions: int, topic: str = "replay") -> tuple[list[RawMessage], dict[str, list[int]]]:
    """The stream as it would sit on ``partitions`` partitions (stream order kept; offsets per
    partition), and the cancellations it holds (customer key -> event times: churn ground truth)."""
    offsets = [0] * partitions
    out = []
    cancels: dict[str, list[int]] = defaultdict(list)
    for value in raw:
        try:
            doc = serde.loads(value)
            key = primary_key(doc["customer"])
            if doc.get("type") == "cancellation":
                cancels[key].append(int(doc["event_time"]))
        except Exception:  # undecodable: the engine dead-letters it wherever it lands
            key = ""
        p = partition_of(key, partitions)
        out.append(RawMessage(value, key.encode() or None, Origin(topic, p, offsets[p])))
        offsets[p] += 1
    return out, dict(cancels)


def evaluate(
    events: Iterable[bytes],
    configs: dict[str, dict[str, Any]],
    settings: Settings | None = None,
    truth_path: str | Path | None = None,
    batch_size: int = 2000,
    *,
    truth_paths: Iterable[str | Path] = (),
    partitions: int = 1,
    scores_path: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Replay ``events`` once per model configuration; one row per config, model and role.

    Every row also carries ``events``, ``rejected`` and ``rejected_reasons`` (the top 5).
    """
    messages, cancels = layout(list(events), max(1, partitions))
    texts, truth_cancels = truth.read_truth([*([truth_path] if truth_path else []), *truth_paths])
    for key, at in truth_cancels.items():
        cancels[key] = sorted({*cancels.get(key, []), *at})
    settings = settings or Settings.load(env={})
    horizon_ms = int(settings.churn_horizon_days * 86_400_000)
    rows: list[dict[str, Any]] = []
    for name, models_config in configs.items():
        store = InMemoryStore(models_config)
        log = store.models_log = _CountingLog()
        replay = settings.replace(models=models_config, policy_clock="stream")  # a recording: its own time is now
        engine = Engine(replay, store, _Discard(), clock=lambda: 4e12)
        rejected: Counter[str] = Counter()
        churn: list[tuple[str, int, float]] = []
        sentiment: dict[str, list[tuple[str, float]]] = defaultdict(list)
        times: list[int] = []
        out = _scores_file(scores_path, name, len(configs))
        started = last_note = time.perf_counter()
        try:
            for i in range(0, len(messages), batch_size):
                report = engine.process(messages[i : i + batch_size])
                rejected.update(d.reason.value for d in report.dead_letters)
                _collect(report.scoring.scores, texts, churn, sentiment, times, out, name)
                if progress and time.perf_counter() - last_note >= PROGRESS_EVERY_S:
                    last_note = time.perf_counter()
                    done = min(len(messages), i + batch_size)
                    rate = done / (last_note - started)
                    progress(f"{name}: {done:,}/{len(messages):,} events ({done / len(messages):.0%}), "
                             f"{rate:,.0f} events/s, about {(len(messages) - done) / rate:,.0f} s left")  # fmt: skip
        finally:
            if out is not None:
                out.close()
        cost = (time.perf_counter() - started) / max(1, len(messages)) * 1e6
        churn_auc = None
        if times and churn:
            ys, ps = truth.churn_labels(churn, cancels, horizon_ms, times[0], times[1])
            churn_auc = (truth.roc_auc(ys, ps), len(ys), sum(ys))
        common = {"events": len(messages), "rejected": sum(rejected.values()),
                  "rejected_reasons": dict(rejected.most_common(5))}  # fmt: skip
        rows += _rows(name, engine, log, sentiment, churn_auc, cost, common)
    return rows


def _scores_file(path: str | Path | None, config: str, configs: int) -> IO[bytes] | None:
    """Where ``--scores`` go: the path, or ``<path>.<config>`` when several configurations are compared."""
    if not path:
        return None
    return open(f"{path}.{config}" if configs > 1 else path, "wb")


def _collect(
    scores: list[tuple[str, str, str, int, float]],
    texts: dict[str, dict[str, Any]],
    churn: list[tuple[str, int, float]],
    sentiment: dict[str, list[tuple[str, float]]],
    times: list[int],
    out: IO[bytes] | None,
    config: str,
) -> None:
    """Keep what the truth needs from a batch's scores (and write them all, with ``--scores``)."""
    for model, key, event_id, t, score in scores:
        if model == "churn" and event_id != SWEEP_EVENT_ID:  # pooled truth: scores at events (see evaluate_truth)
            churn.append((key, t, score))
        elif model == "sentiment" and event_id in texts:
            sentiment[texts[event_id]["lang"]].append((texts[event_id]["sentiment"], score))
        if out is not None:
            out.write(serde.dumps({"config": config, "model": model, "customer": key, "event_id": event_id,
                                   "t": t, "score": round(score, 4)}) + b"\n")  # fmt: skip
    if scores:
        first, last = min(s[3] for s in scores), max(s[3] for s in scores)
        times[:] = [min(first, times[0]), max(last, times[1])] if times else [first, last]


def _rows(
    name: str,
    engine: Engine,
    log: _CountingLog,
    sentiment: dict[str, list[tuple[str, float]]],
    churn_auc: tuple[float | None, int, int] | None,
    cost: float,
    common: dict[str, Any],
) -> list[dict[str, Any]]:
    """One row per model and role of the one shared model set (labels counted once)."""
    out = []
    for summary in engine.learner.models.summary():
        row = {c: summary.get(c) for c in COLUMNS} | {"config": name, "us_per_event": round(cost, 1), **common}
        kind = summary["kind"]
        if kind in log.classes:
            row["balance"] = " ".join(f"{c}:{n}" for c, n in sorted(log.classes[kind].items()))
        if kind == "sentiment" and sentiment:
            pairs = [p for lang_pairs in sentiment.values() for p in lang_pairs]
            row["truth_accuracy"], row["truth_macro_f1"] = truth.three_class(_classes(pairs))
            row["truth_binary_f1"] = truth.binary_f1(pairs)[1]
            row["truth_by_language"] = {
                lang: {"three_class": truth.three_class(_classes(p)), "binary": truth.binary_f1(p), "n": len(p)}
                for lang, p in sorted(sentiment.items())
            }
        if kind == "churn" and summary["role"] == "champion" and churn_auc is not None:
            row["truth_roc_auc"] = churn_auc[0]
            row["truth_churn"] = {"scores": churn_auc[1], "positive": churn_auc[2]}
        out.append(row)
    return out


def _classes(pairs: list[tuple[str, float]]) -> list[tuple[str, str]]:
    return [(y, label_from_score(s)) for y, s in pairs]


def rejection_note(rows: list[dict[str, Any]]) -> str | None:
    """A plain sentence when events were rejected: how many, and the top reasons."""
    if not rows or not rows[0].get("rejected"):
        return None
    r = rows[0]
    reasons = ", ".join(f"{reason} ({n:,})" for reason, n in r["rejected_reasons"].items())
    share = r["rejected"] / max(1, r["events"])
    note = f"{r['rejected']:,} of {r['events']:,} events ({share:.1%}) were rejected; top reasons: {reasons}"
    if r["rejected"] == r["events"]:
        note += " -- every event was rejected: the models learned nothing; check the stream against the contract"
    return note


def table(rows: list[dict[str, Any]]) -> str:
    """A plain-text comparison table (the header alone when there are no rows)."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in COLUMNS] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(COLUMNS)]
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
