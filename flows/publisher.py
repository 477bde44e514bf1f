"""Kafka output with confirmed delivery.

Bytewax's stock ``KafkaSink`` flushes without looking at delivery reports,
and librdkafka's idempotent producer is off by default. This publisher turns
idempotence on (acks=all, no duplicates from its own retries), waits for a
delivery report of every record, re-sends records that failed, and raises
:class:`DeliveryError` if some still fail, so that the batch is retried and
no output is silently lost. A record Kafka refuses for good is replaced by its
last resort (:mod:`flows.last_resort`) instead of failing the batch forever.

While the broker is down, a batch's records stay in librdkafka's queue after the
wait for their confirmation gave up (librdkafka would deliver them later, up to
``message.timeout.ms``), and the retried batch is produced again. So before a
batch is produced again, whatever is still queued or in flight is *purged*:
copies never pile up with the length of an outage. A record the broker had
already written before the failure is published once more by the retry (the
``ls.id`` header lets consumers drop it). Known limit: a broker that *receives*
produce requests but never answers them (frozen, not down) may write a copy per
attempt that reached it.

An idempotent producer can hit a *fatal* error (``UNKNOWN_PRODUCER_ID`` after the
broker lost its log or the producer's state expired, ``OUT_OF_ORDER_SEQUENCE``
after an unclean leader election): librdkafka then refuses every later record,
for good. The publisher notices it (the error callback, a delivery report or a
refused ``produce``), counts it in ``livesignals_kafka_producer_renewed_total``,
and replaces the producer with a new one (a new producer id) before the records
are sent again: the engine carries on instead of retrying a dead producer for ever.
A delivery refused with ``PRODUCER_FENCED`` or ``INVALID_PRODUCER_EPOCH`` is treated
the same way: librdkafka does not flag it fatal for an idempotent producer, yet
every later record of that producer is refused too (seen after a broker frozen
longer than the delivery wait: the purge bumps the producer's epoch, which the
embedded broker refuses).
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from flows import last_resort
from livesignals import metrics
from operators.ports import OutRecord

log = logging.getLogger(__name__)

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 0,
    "batch.num.messages": 10000,
    "queue.buffering.max.messages": 500000,
}
"""``linger.ms`` 0: a batch's records are all produced at once by :meth:`KafkaPublisher.send` and go out while the
engine plans its commit; lingering would hold them until :meth:`KafkaPublisher.confirm`'s wait (a flush sends at
once: the old publish-and-wait lingered for nothing)."""


DURABILITY_OPTIONS: dict[str, Any] = {"enable.idempotence": True, "acks": "all"}
"""librdkafka options of the engine's outputs that ``kafka_config`` cannot change: a STATE LOSS replay does not
publish again what Kafka confirmed before a commit, so a confirmation must survive a leader failover (``acks=all``),
and retries must not duplicate (break-test 10g, K3b). A different value is ignored with a WARNING naming it."""

_SAME = {"true": "true", "1": "true", "all": "all", "-1": "all"}


def producer_config(config: dict[str, Any]) -> dict[str, Any]:
    """The publisher's librdkafka configuration: the defaults, ``config``, then :data:`DURABILITY_OPTIONS`.

    >>> c = producer_config({"linger.ms": 50, "acks": -1})
    >>> c["linger.ms"], c["acks"], c["enable.idempotence"]
    (50, 'all', True)
    >>> producer_config({})["linger.ms"]  # sent at once: while the engine plans its commit
    0
    """
    for option, value in config.items():
        wanted = DURABILITY_OPTIONS.get(option)
        if wanted is not None and _SAME.get(str(value).lower()) != str(wanted).lower():
            why = "issue 10: what Kafka confirmed is not published again after a state loss"
            log.warning("kafka_config sets %s = %r: ignored by the engine's outputs, which need %r (%s)",
                        option, value, wanted, why)  # fmt: skip
    return {**PRODUCER_DEFAULTS, **config, **DURABILITY_OPTIONS}


PURGE_REPORTS_S = 1.0
"""How long to serve the delivery reports of purged records (they come back at once)."""


class DeliveryError(RuntimeError):
    """Kafka did not confirm some records after all attempts."""


class KafkaPublisher:
    """Publishes :class:`~operators.engine.OutRecord` batches and waits for confirmation.

    A record Kafka refuses for good (too large, invalid) is sent once more on its own
    (a broker refuses a whole produce batch for one large record), then replaced by its
    last resort (:mod:`flows.last_resort`): it never blocks the partition.
    """

    def __init__(
        self, config: dict[str, Any], timeout_s: float = 30.0, attempts: int = 3, dead_letter_topic: str | None = None
    ) -> None:
        self.config = config
        self._producer_config = producer_config(config)  # warns once of an option it overrides
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.dead_letter_topic = dead_letter_topic
        self._fatal: KafkaError | None = None
        self._producer = self._new_producer()
        self._failed: list[tuple[OutRecord, KafkaError]] = []
        self._confirmed: dict[str, int] = {}
        self._sent: list[OutRecord] = []

    def publish(self, records: list[OutRecord]) -> None:
        """Send ``records`` and return once every one is confirmed (or replaced by its last resort), else raise."""
        self.send(records)
        self.confirm()

    def send(self, records: list[OutRecord]) -> None:
        """Produce ``records`` without waiting: :meth:`confirm` waits for them (the engine plans its commit between,
        while the broker writes them). Each call replaces what a previous ``send`` left unconfirmed."""
        self._renew_if_fatal()
        self._purge_pending()  # left over from a publish that raised: never sent beside this batch's copies
        self._sent = list(records)
        self._failed, self._confirmed = [], {}
        for record in self._sent:
            self._produce(record)

    def confirm(self) -> None:
        """Return once every record of the last :meth:`send` is confirmed (or replaced by its last resort), re-sending
        the failed ones up to ``attempts`` times; else raise :class:`DeliveryError` (the batch is retried)."""
        batch, attempt, sent = self._sent, 0, True
        self._sent = []
        alone: list[OutRecord] = []
        while batch or alone:
            failures = [(r, e, False) for r, e in (self._wait(batch) if sent else self._send(batch))]
            sent = False
            for record in alone:
                failures += [(r, e, True) for r, e in self._send([record])]
            batch, alone, transient = [], [], []
            for record, err, was_alone in failures:
                if not last_resort.is_permanent(err):
                    transient.append((record, err))
                elif not was_alone:
                    alone.append(record)  # the broker may have refused its whole batch for another record
                else:
                    substitute = last_resort.minimal(record, err, self.dead_letter_topic)
                    if substitute is None:
                        last_resort.give_up(record, err)
                    else:
                        log.warning("%s refused a %d-byte record (%s): publishing its minimal record instead",
                                    record.topic, len(record.value), err.name())  # fmt: skip
                        batch.append(substitute)
            if transient:
                attempt += 1
                if attempt >= self.attempts:
                    raise DeliveryError(f"{len(transient)} records failed: {transient[0][1]}")
                log.warning("attempt %d: %d records failed (%s); re-sending", attempt, len(transient), transient[0][1])
                time.sleep(0.2 * attempt)
                self._renew_if_fatal()
                batch += [record for record, _ in transient]

    def close(self) -> None:
        """Flush what is left."""
        self._producer.flush(self.timeout_s)

    def _new_producer(self) -> Producer:
        return Producer({**self._producer_config, "error_cb": self._on_error})

    def _on_error(self, err: KafkaError) -> None:
        """librdkafka's error callback: a fatal error is remembered (the producer is replaced before the next
        send); the others (a broker down, a timeout) are librdkafka's own to retry and are logged by it."""
        if _dead(err):
            self._fatal = err

    def _renew_if_fatal(self) -> None:
        """Replace a producer that hit a fatal error by a new one; what it still held comes back as failures."""
        if self._fatal is None:
            return
        err, old = self._fatal, self._producer
        log.error("Kafka producer hit a fatal error (%s): a new producer replaces it and the batch is sent again",
                  err.str())  # fmt: skip
        metrics.KAFKA_PRODUCER_RENEWED.inc()
        try:
            old.purge(in_queue=True, in_flight=True)
            old.flush(PURGE_REPORTS_S)
        except (KafkaException, SystemError) as exc:  # the fatal error again, out of the wait
            log.warning("the failed producer could not be purged (%s)", exc)
        self._fatal, self._failed, self._confirmed = None, [], {}
        self._producer = self._new_producer()

    def _send(self, records: list[OutRecord]) -> list[tuple[OutRecord, KafkaError]]:
        """Produce ``records``, wait for every delivery report; the records that failed, with why."""
        if not records:
            return []
        self._failed = []
        self._confirmed = {}
        for record in records:
            self._produce(record)
        return self._wait(records)

    def _wait(self, records: list[OutRecord]) -> list[tuple[OutRecord, KafkaError]]:
        """Wait for the delivery report of every produced record; the records that failed, with why."""
        if not records:
            return []
        try:
            unsent = self._producer.flush(self.timeout_s)
        except (KafkaException, SystemError) as exc:  # confluent-kafka raises a fatal error out of the wait
            fatal = _fatal_error(exc) or self._fatal or _broken_wait(exc)
            if fatal is None:
                raise
            self._fatal = self._fatal or fatal
            return [(record, fatal) for record in records]  # all sent again, by a new producer (ls.id dedups)
        if unsent:
            purged = self._purge_pending()
            raise DeliveryError(
                f"{unsent} records unconfirmed after {self.timeout_s}s ({purged} purged before a retry)"
            )
        for record, _ in self._failed:
            metrics.KAFKA_DELIVERY_FAILURES.labels(record.topic).inc()
        for topic, n in self._confirmed.items():
            metrics.KAFKA_PRODUCED.labels(topic).inc(n)
        return self._failed

    def pending(self) -> int:
        """Records in the producer's queue or in flight, not yet confirmed or failed."""
        return len(self._producer)

    def _purge_pending(self) -> int:
        """Drop every record still queued or in flight, so that a retry produces the only copy; how many.

        Their delivery reports (``_PURGE_QUEUE``/``_PURGE_INFLIGHT``) are served here, so none reaches a later batch.
        """
        self._producer.poll(0)  # serve waiting events first: only records count
        pending = len(self._producer)
        if pending:
            self._producer.purge(in_queue=True, in_flight=True)
            try:
                self._producer.flush(PURGE_REPORTS_S)
            except (KafkaException, SystemError) as exc:  # a fatal error: the next publish renews the producer
                fatal = _fatal_error(exc) or self._fatal or _broken_wait(exc)
                if fatal is None:
                    raise
                self._fatal = self._fatal or fatal
            self._failed, self._confirmed = [], {}
            log.warning("purged %d undelivered records before the batch is retried", pending)
        return pending

    def _produce(self, record: OutRecord) -> None:
        while True:
            try:
                on_delivery = partial(self._on_delivery, record)
                value = None if record.tombstone else record.value  # a tombstone has no value at all
                if record.partition is None:
                    self._producer.produce(
                        record.topic, value, record.key, headers=record.headers, on_delivery=on_delivery
                    )
                else:
                    self._producer.produce(
                        record.topic,
                        value,
                        record.key,
                        partition=record.partition,
                        headers=record.headers,
                        on_delivery=on_delivery,
                    )
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
            except KafkaException as exc:  # refused before sending (e.g. larger than message.max.bytes)
                err = exc.args[0]
                if _dead(err):
                    self._fatal = self._fatal or err
                    self._failed.append((record, err))  # sent again by the new producer
                    return
                if not last_resort.is_permanent(err):
                    raise
                self._failed.append((record, err))
                return

    def _on_delivery(self, record: OutRecord, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self._confirmed[record.topic] = self._confirmed.get(record.topic, 0) + 1
        else:
            if _dead(err):
                self._fatal = self._fatal or err
            self._failed.append((record, err))


def _fatal_error(exc: BaseException) -> KafkaError | None:
    """The fatal :class:`KafkaError` behind ``exc`` (raised directly, or as the cause of the ``SystemError``
    confluent-kafka raises when a callback runs while the fatal error is pending), else None."""
    for candidate in (exc, exc.__cause__, exc.__context__):
        if isinstance(candidate, KafkaException) and candidate.args and isinstance(candidate.args[0], KafkaError):
            err: KafkaError = candidate.args[0]
            if _dead(err):
                return err
    return None


_FENCED_PRODUCER = (KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)


def _dead(err: KafkaError) -> bool:
    """True when the producer that got ``err`` will refuse every later record: a fatal error, or its producer
    epoch refused (``PRODUCER_FENCED``, ``INVALID_PRODUCER_EPOCH``; not flagged fatal for an idempotent producer).

    >>> _dead(KafkaError(KafkaError.PRODUCER_FENCED)), _dead(KafkaError(KafkaError._MSG_TIMED_OUT))
    (True, False)
    """
    return bool(err.fatal()) or err.code() in (KafkaError._FATAL, *_FENCED_PRODUCER)


def _broken_wait(exc: BaseException) -> KafkaError | None:
    """A ``SystemError`` out of the wait with no Kafka error behind it (confluent-kafka returned NULL while a
    fatal error was being raised): the producer cannot be trusted, so it is treated as fatal and replaced."""
    if isinstance(exc, SystemError):
        return KafkaError(KafkaError._FATAL, f"the producer's wait failed ({exc})", fatal=True)
    return None
