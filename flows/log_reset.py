"""Does Kafka still hold the offsets a claim resumes at? (issue 10, break-test F3)

A broker that lost its log (the embedded broker keeps topics in memory; an
unclean leader election; a topic deleted and created again) numbers new events
from 0 again, below the offsets Redis resumes at. Reading on would skip every
new event (librdkafka's default ``auto.offset.reset`` jumps to the log end), and
had they been read, the profiles' applied offsets would skip them as replays.

At each claim (:class:`flows.claims.KafkaClaimer`), a resume offset ``R`` above
the log's high watermark is checked by reading the record at ``R - 1``: a log
that holds it was not reset (the embedded broker, Tansu, under-reports its high
watermark, so the watermark alone cannot tell). None within
:data:`PROBE_TIMEOUT_S`: the log was reset, the claim fails with
:class:`LogReset` and the process stops with exit code 4, counted in
``livesignals_kafka_offset_out_of_range_total{cause="log_reset"}``. There is no
setting to carry on: the new log's events would be skipped as replays of offsets
already applied, so starting afresh means a new ``key_prefix`` (or this
deployment's Redis keys deleted), which rebuilds from the new log.

A log that was reset while producers kept writing has *grown past* ``R`` by the
time the engine claims: a record exists at ``R - 1``, only not the one the
engine applied (outside review of #10, G1: 1,600 of 3,200 new events skipped).
So the engine also records which record it read, not just where: after a
commit (at most every :data:`MARK_EVERY_S` per partition, a separate ``HSET``)
the partition's meta gets ``log:<topic>`` = :func:`fingerprint` of the batch's
last record (offset, Kafka timestamp, CRC-32 of key and value). A claim reads
the record at that offset again (when the log still keeps it, i.e. not below
its low watermark): missing or different, the log is another one: the same
:class:`LogReset`, exit code 4.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import Any

from confluent_kafka import TopicPartition

from livesignals import metrics

PROBE_TIMEOUT_S = 10.0
"""How long the claim waits for the record before a resume offset; none by then: the log was reset."""


MARK_EVERY_S = 10.0
"""At most how often a partition's meta gets its log mark (``log:<topic>``; one ``HSET`` after a commit)."""

MARK_FIELD = "log:"
"""Meta field prefix (``log:<topic>``): the :func:`fingerprint` of a record this engine applied."""


def fingerprint(offset: int, timestamp_ms: int, key: bytes | None, value: bytes | None) -> str:
    """What identifies a record of a partition's log: ``offset|timestamp|crc32(key)|crc32(value)``.

    >>> fingerprint(41, 1700000000000, b"k", b"v")
    '41|1700000000000|140662621|1801730948'
    """
    return f"{offset}|{timestamp_ms}|{zlib.crc32(key or b'')}|{zlib.crc32(value or b'')}"


class LogReset(Exception):
    """Kafka's log of a partition ends below where Redis resumes: the broker lost it or the topic was re-created."""


def check_log_holds(
    consumer: Any,
    partition: int,
    offsets: dict[str, int | None],
    watermarks: Callable[[str, int], tuple[int, int]],
    timeout_s: float = PROBE_TIMEOUT_S,
    marks: dict[str, str] | None = None,
) -> None:
    """Raise :class:`LogReset` if a topic's log of ``partition`` no longer holds the record before its resume offset,
    or holds another record where ``marks`` (topic -> :func:`fingerprint`) says which one the engine applied.

    ``consumer`` is assigned only for the probe, and unassigned after.
    """
    targets: dict[str, tuple[int, str | None, str]] = {}  # topic -> offset to read, its fingerprint, why
    for topic, at in offsets.items():
        mark = (marks or {}).get(topic)
        if mark:
            marked = int(mark.split("|", 1)[0])
            low, _ = watermarks(topic, partition)
            if marked >= low:  # below: retention removed it, nothing to compare
                targets[topic] = (marked, mark, f"the record at {marked} is not the one applied")
                continue
        if at:
            _, high = watermarks(topic, partition)
            if at > high:
                targets[topic] = (at - 1, None, f"resumes at {at}, Kafka's log ends at {high}")
    if not targets:
        return
    found = fingerprints_at(consumer, partition, {t: o for t, (o, _, _) in targets.items()}, timeout_s)
    wrong = {
        t: why for t, (_, mark, why) in targets.items() if t not in found or (mark is not None and found[t] != mark)
    }
    if wrong:
        metrics.KAFKA_OFFSET_OUT_OF_RANGE.labels("log_reset").inc(len(wrong))
        where = ", ".join(f"{t}[{partition}] {why}" for t, why in wrong.items())
        raise LogReset(
            f"KAFKA LOG RESET: {where}: the broker lost its log or the topic was "
            f"re-created; its events would be skipped as replays of offsets already applied. Restore the broker's "
            f"data, or start afresh with a new key_prefix (or this deployment's Redis keys deleted)"
        )


def fingerprints_at(consumer: Any, partition: int, offsets: dict[str, int], timeout_s: float) -> dict[str, str]:
    """The :func:`fingerprint` of each topic's record at ``offsets[topic]`` that Kafka returns within ``timeout_s``
    (``consumer`` is assigned for the read and unassigned after)."""
    consumer.assign([TopicPartition(t, partition, at) for t, at in offsets.items()])
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < len(offsets) and time.monotonic() < deadline:
            for msg in consumer.consume(len(offsets), 0.2):
                topic, offset = msg.topic() or "", msg.offset()
                if msg.error() is None and offset is not None and offset == offsets.get(topic, -1):
                    ts_type, ts = msg.timestamp()
                    found[topic] = fingerprint(offset, ts if ts_type else 0, msg.key(), msg.value())
    finally:
        consumer.unassign()
    return found


class LogMarks:
    """Writes each partition's log marks after its commits, at most every :data:`MARK_EVERY_S` (thread-safe enough:
    one engine sink writes one partition)."""

    def __init__(self, every_s: float = MARK_EVERY_S) -> None:
        self.every_s = every_s
        self._last: dict[int, float] = {}
        self._frozen: set[int] = set()

    def freeze(self, partition: int) -> None:
        """Never write ``partition``'s mark again (its log was found reset: the mark names the applied record)."""
        self._frozen.add(partition)

    def due(self, partition: int) -> bool:
        """Whether to write ``partition``'s mark now (the first commit after a start, then every ``every_s``;
        never once :meth:`freeze` was called for it)."""
        if partition in self._frozen:
            return False
        now = time.monotonic()
        if now - self._last.get(partition, -1e18) < self.every_s:
            return False
        self._last[partition] = now
        return True

    def forget(self, partition: int) -> None:
        """Write at the next commit (after a re-claim)."""
        self._last.pop(partition, None)


def marks_of(messages: Any) -> dict[str, str]:
    """Per topic, the :func:`fingerprint` of the last of ``messages`` (:class:`~livesignals.contract.RawMessage`)."""
    last: dict[str, Any] = {}
    for m in messages:
        held = last.get(m.origin.topic)
        if held is None or m.origin.offset > held.origin.offset:
            last[m.origin.topic] = m
    return {t: fingerprint(m.origin.offset, m.origin.timestamp_ms, m.key, m.value) for t, m in last.items()}
