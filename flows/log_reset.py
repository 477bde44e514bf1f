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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import TopicPartition

from livesignals import metrics

PROBE_TIMEOUT_S = 10.0
"""How long the claim waits for the record before a resume offset; none by then: the log was reset."""


class LogReset(Exception):
    """Kafka's log of a partition ends below where Redis resumes: the broker lost it or the topic was re-created."""


def check_log_holds(
    consumer: Any,
    partition: int,
    offsets: dict[str, int | None],
    watermarks: Callable[[str, int], tuple[int, int]],
    timeout_s: float = PROBE_TIMEOUT_S,
) -> None:
    """Raise :class:`LogReset` if a topic's log of ``partition`` no longer holds the record before its resume offset.

    ``consumer`` is assigned only for the probe, and unassigned after.
    """
    suspects = {}
    for topic, at in offsets.items():
        if at:
            _, high = watermarks(topic, partition)
            if at > high:
                suspects[topic] = (at, high)
    if not suspects:
        return
    found = _probe(consumer, partition, {t: at for t, (at, _) in suspects.items()}, timeout_s)
    missing = {t: v for t, v in suspects.items() if t not in found}
    if missing:
        metrics.KAFKA_OFFSET_OUT_OF_RANGE.labels("log_reset").inc(len(missing))
        where = ", ".join(f"{t}[{partition}] resumes at {a}, Kafka's log ends at {h}" for t, (a, h) in missing.items())
        raise LogReset(
            f"KAFKA LOG RESET: {where} (no record before the resume offset): the broker lost its log or the topic was "
            f"re-created; its events would be skipped as replays of offsets already applied. Restore the broker's "
            f"data, or start afresh with a new key_prefix (or this deployment's Redis keys deleted)"
        )


def _probe(consumer: Any, partition: int, offsets: dict[str, int], timeout_s: float) -> set[str]:
    """The topics whose record at ``offset - 1`` Kafka returns within ``timeout_s``."""
    consumer.assign([TopicPartition(t, partition, at - 1) for t, at in offsets.items()])
    found: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < len(offsets) and time.monotonic() < deadline:
            for msg in consumer.consume(len(offsets), 0.2):
                if msg.error() is None and msg.offset() == offsets.get(msg.topic() or "", -1) - 1:
                    found.add(msg.topic() or "")
    finally:
        consumer.unassign()
    return found
