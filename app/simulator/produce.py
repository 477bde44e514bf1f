"""Send a simulated stream to Kafka at a chosen rate, truth to a JSONL file beside it.

Events are keyed by the customer's primary identifier and partitioned by
Kafka's default partitioner (murmur2: the producer contract, see
:mod:`livesignals.partitioner`), so each customer's events land in order on
the partition that owns the customer and the engine reroutes none of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from confluent_kafka import Producer

from app.simulator.journeys import Simulator
from livesignals import serde
from livesignals.contract import primary_key
from livesignals.partitioner import PRODUCER_CONFIG


def produce(
    sim: Simulator,
    kafka_config: dict[str, Any],
    topic: str,
    count: int | None,
    rate: float = 0.0,
    truth_path: str | Path | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Produce ``count`` events (forever if None) at ``rate`` events/s (0 = as fast as possible).

    Returns the number of events produced. ``stop`` ends an endless run; ``progress(n)`` is told of
    every 100 events handed to the producer. Raises ``RuntimeError`` if Kafka did not confirm every
    event (a record is given up after ``message.timeout.ms``, 30 s unless ``kafka_config`` says).
    """
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer(
        {"linger.ms": 5, "enable.idempotence": True, "message.timeout.ms": 30_000, **PRODUCER_CONFIG, **kafka_config,
         "on_delivery": delivered}
    )  # fmt: skip
    truth: IO[bytes] | None = open(truth_path, "wb") if truth_path else None  # noqa: SIM115
    sent = 0
    started = time.monotonic()
    try:
        if truth is not None:
            for record in sim.customer_truth():
                truth.write(serde.dumps(record) + b"\n")
        for event, records in sim.stream(count):
            if stop is not None and stop.is_set():
                break
            _send(producer, topic, primary_key(event["customer"]).encode(), serde.dumps(event))
            if truth is not None:
                for record in records:
                    truth.write(serde.dumps(record) + b"\n")
            sent += 1
            if progress is not None and sent % 100 == 0:
                progress(100)
            if rate > 0 and sent % 100 == 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        remaining = producer.flush(60)
        if remaining or failures:
            reason = f": {failures[0]}" if failures else ""
            raise RuntimeError(f"{remaining + len(failures)} of {sent} simulated events were not delivered{reason}")
        return sent
    finally:
        if truth is not None:
            truth.close()


def _send(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key)
            producer.poll(0)
            return
        except BufferError:
            producer.poll(0.05)


def write_jsonl(sim: Simulator, path: str | Path, count: int, truth_path: str | Path | None = None) -> int:
    """Record ``count`` events as JSONL (for ``livesignals models evaluate``), truth beside them."""
    truth: IO[bytes] | None = open(truth_path, "wb") if truth_path else None  # noqa: SIM115
    written = 0
    try:
        if truth is not None:
            for record in sim.customer_truth():
                truth.write(serde.dumps(record) + b"\n")
        with open(path, "wb") as out:
            for event, records in sim.stream(count):
                out.write(serde.dumps(event) + b"\n")
                written += 1
                if truth is not None:
                    for record in records:
                        truth.write(serde.dumps(record) + b"\n")
    finally:
        if truth is not None:
            truth.close()
    return written
