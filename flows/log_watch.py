"""Is the log a running engine reads still the one it applied? (issue 10, break-test 10d H2)

:mod:`flows.log_reset` checks a partition's log at each *claim*. A broker that
loses its log while the engine runs (restarted with memory storage, a disk
replaced, a topic deleted and created again) numbers new events from 0; when
the new log has grown past the engine's fetch position by the time the consumer
reconnects, the fetch is in range and every new event below it is skipped,
silently (1,600 of 3,200 in the review), and the next log mark written after a
commit describes the new log, so a restart's claim check passes too.

So the reader of each partition keeps a :class:`LogWatch`: it re-reads a record
it handed out earlier and compares its :func:`~flows.log_reset.fingerprint`:

- **after a disconnect** (librdkafka's ``_TRANSPORT`` or ``_ALL_BROKERS_DOWN``
  error): nothing fetched after the error is handed out until the *last* record
  handed out before it has been read again, unchanged. A broker that came back
  without its log is caught before any of its new events is applied.
- **every** ``kafka_log_check_s`` **seconds** (30) while records flow: an *anchor*,
  the last record handed out before the previous check, is read again (a topic
  re-created on a live broker gives no disconnect). Caught within one period;
  the events read in between may have been applied.

A record that differs: the process stops with exit code 4 and ``KAFKA LOG
RESET``, as a claim would, and writes the old record's fingerprint back as the
partition's log mark, so a restart stops too instead of resuming on the new log.
A record no longer there proves nothing only when retention removed it (the
offset is below the log's start); at or above the start, the offset the engine
applied a data record at holds none (a transaction marker of another log, say:
break-test 10e, J1), so that log is another one too. Compacted input topics are
not supported: compaction removes records above the log's start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from flows.log_reset import fingerprint
from livesignals import metrics

CHECK_EVERY_S = 30.0
"""How often a partition's anchor record is read again while records flow (one fetch per topic); the setting
``kafka_log_check_s``."""

_DISCONNECTS = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN})


def fingerprint_of(message: Any) -> str:
    """The :func:`~flows.log_reset.fingerprint` of a consumed ``confluent_kafka.Message``."""
    ts_type, ts = message.timestamp()
    return fingerprint(message.offset(), ts if ts_type else 0, message.key(), message.value())


def _offset(mark: str) -> int:
    return int(mark.split("|", 1)[0])


def _before(offset: int, next_offset: int | None) -> bool:
    return next_offset is not None and offset < next_offset


class LogWatch:
    """Decides when a partition's reader re-reads a record, and judges what it reads (see the module).

    The reader calls :meth:`on_error` from its consumer's error callback, :meth:`handed_out` for the last
    message of each topic it returns, :meth:`begin` before consuming (offsets to re-read, or None) and
    :meth:`judge` for each message while :attr:`checking` is not empty.

    >>> watch = LogWatch(clock=lambda: 0.0)
    >>> watch.anchor_at({"t": "9|1|2|3"})
    >>> class Err:
    ...     def code(self): return KafkaError._TRANSPORT
    >>> watch.on_error(Err())
    >>> watch.suspect, watch.begin({"t": "9|1|2|3"})
    (True, {'t': 9})
    >>> watch.judge("t", 9, "9|1|2|3"), watch.checking
    ('same', {})
    """

    def __init__(self, every_s: float = CHECK_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self.suspect = False
        """A disconnect was seen: hand nothing out until the last record is read again."""
        self.checking: dict[str, str] = {}
        """Topic -> fingerprint expected at its offset, for the check in progress."""
        self._anchor: dict[str, str] = {}
        self._due = clock() + every_s

    def on_error(self, err: KafkaError) -> None:
        """The consumer's error callback: a disconnect makes the log suspect."""
        if err.code() in _DISCONNECTS:
            self.suspect = True

    def anchor_at(self, marks: dict[str, str]) -> None:
        """Records known to be of the applied log (the claim's checked log marks): the first anchor."""
        self._anchor.update(marks)

    def anchored(self, topic: str) -> bool:
        """Whether ``topic`` has an anchor: a record the next periodic check re-reads."""
        return topic in self._anchor

    def anchor_first(self, marks: dict[str, str]) -> None:
        """The first records handed out of topics that have no anchor (a deployment's first start has no log
        mark to begin with): the next periodic check re-reads them. Were the first anchor the last record at that
        check instead, a topic re-created before it would vouch for itself with its own records, and the events
        below the fetch position stay skipped (Apache Kafka: 1,600 of 3,200)."""
        for topic, mark in marks.items():
            self._anchor.setdefault(topic, mark)

    def due(self) -> bool:
        """Whether :meth:`begin` would start a check now (so the reader computes fingerprints only then)."""
        return not self.checking and (self.suspect or self.clock() >= self._due)

    def begin(self, last: dict[str, str], below: dict[str, int | None] | None = None) -> dict[str, int] | None:
        """Start a check if one is due: the offsets to re-read per topic (``last``: the fingerprints of the last
        records handed out), else None.

        ``below``: per topic, the next offset the reader hands out (None: nothing handed out since it was
        positioned). A record at or above it is not re-read now: after a rewind (a replay) the reader would jump
        there from its replay position and never hand out the records in between (break-test 10f, K1); it is
        checked once the replay has passed it, if it is still the anchor then."""
        if self.checking:
            return None
        if self.suspect:
            targets = {**self._anchor, **last}  # the newest records known to be of the applied log
            self.suspect, trigger = False, "disconnect"
        elif last and self.clock() >= self._due:
            targets, self._anchor = self._anchor, {**self._anchor, **last}  # the anchor came before the last check
            self._due, trigger = self.clock() + self.every_s, "periodic"
        else:
            return None
        if below is not None:
            targets = {t: m for t, m in targets.items() if _before(_offset(m), below.get(t))}
        if not targets:
            return None
        self.checking = dict(targets)
        metrics.KAFKA_LOG_CHECKS.labels(trigger).inc(len(targets))
        return {t: _offset(mark) for t, mark in targets.items()}

    def targets(self) -> dict[str, int]:
        """The offsets still to re-read, per topic, for the check in progress."""
        return {t: _offset(mark) for t, mark in self.checking.items()}

    def drop(self, topic: str) -> None:
        """End the check of ``topic`` without a verdict (its record is no longer kept)."""
        self.checking.pop(topic, None)

    def judge(self, topic: str, offset: int, mark: str | None) -> str:
        """What a message read during a check says: ``same``, ``reset`` (another record where the applied one
        was), ``missing`` (the first record read is past it: the reader asks Kafka whether retention removed it,
        then calls :meth:`drop`, or stops) or ``other`` (not the record checked). The check stays open on
        ``reset`` and ``missing``."""
        expected = self.checking.get(topic)
        if expected is None:
            return "other"
        at = _offset(expected)
        if offset < at:
            return "other"
        if offset > at:
            return "missing"
        if mark != expected:
            return "reset"
        del self.checking[topic]
        held = self._anchor.get(topic)
        if held is None or _offset(held) < at:
            self._anchor[topic] = expected  # verified: the newest record known to be of the applied log
        return "same"
