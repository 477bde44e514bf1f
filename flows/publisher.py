"""Kafka output with confirmed delivery.

Bytewax's stock ``KafkaSink`` flushes without looking at delivery reports,
and librdkafka's idempotent producer is off by default. This publisher turns
idempotence on (acks=all, no duplicates from its own retries), waits for a
delivery report of every record, re-sends records that failed, and raises
:class:`DeliveryError` if some still fail, so that the batch is retried and
no output is silently lost.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from livesignals import metrics
from operators.engine import OutRecord

log = logging.getLogger(__name__)

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "batch.num.messages": 10000,
    "queue.buffering.max.messages": 500000,
}


class DeliveryError(RuntimeError):
    """Kafka did not confirm some records after all attempts."""


class KafkaPublisher:
    """Publishes :class:`~operators.engine.OutRecord` batches and waits for confirmation."""

    def __init__(self, config: dict[str, Any], timeout_s: float = 30.0, attempts: int = 3) -> None:
        self.config = config
        self.timeout_s = timeout_s
        self.attempts = attempts
        self._producer = Producer({**PRODUCER_DEFAULTS, **config})
        self._failed: list[tuple[OutRecord, KafkaError]] = []
        self._confirmed: dict[str, int] = {}

    def publish(self, records: list[OutRecord]) -> None:
        """Send ``records`` and return once every one is confirmed, else raise."""
        pending = records
        for attempt in range(1, self.attempts + 1):
            if not pending:
                return
            self._failed = []
            self._confirmed = {}
            for record in pending:
                self._produce(record)
            unsent = self._producer.flush(self.timeout_s)
            if unsent:
                raise DeliveryError(f"{unsent} records unconfirmed after {self.timeout_s}s")
            for record, _ in self._failed:
                metrics.KAFKA_DELIVERY_FAILURES.labels(record.topic).inc()
            for topic, n in self._confirmed.items():
                metrics.KAFKA_PRODUCED.labels(topic).inc(n)
            if self._failed:
                log.warning(
                    "attempt %d: %d records failed (%s); re-sending",
                    attempt,
                    len(self._failed),
                    self._failed[0][1],
                )
                time.sleep(0.2 * attempt)
            pending = [record for record, _ in self._failed]
        if pending:
            raise DeliveryError(f"{len(pending)} records failed: {self._failed[0][1]}")

    def close(self) -> None:
        """Flush what is left."""
        self._producer.flush(self.timeout_s)

    def _produce(self, record: OutRecord) -> None:
        while True:
            try:
                on_delivery = partial(self._on_delivery, record)
                if record.partition is None:
                    self._producer.produce(
                        record.topic, record.value, record.key, headers=record.headers, on_delivery=on_delivery
                    )
                else:
                    self._producer.produce(
                        record.topic,
                        record.value,
                        record.key,
                        partition=record.partition,
                        headers=record.headers,
                        on_delivery=on_delivery,
                    )
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain

    def _on_delivery(self, record: OutRecord, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self._confirmed[record.topic] = self._confirmed.get(record.topic, 0) + 1
        else:
            self._failed.append((record, err))
