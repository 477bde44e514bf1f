"""Kafka input: source partition ``p`` reads partition ``p`` of every input topic and of the repartition topic.

One Bytewax source partition per partition *number*, so a customer that the
engine re-keys to partition ``p`` of ``settings.repartition_topic`` is read by
the same worker as partition ``p`` of the input topics: one writer per
customer. All these topics must have the same partition count; the source
checks it at start and refuses to run otherwise.

Before reading, the source *claims* its partition (:mod:`state.ownership`):
the claim fences any older engine and returns the offsets committed to Redis
with the last batch, where reading resumes (the earliest offset when there are
none). Workers therefore keep no local state and Bytewax recovery snapshots are
not used: Redis is the one record of progress. The engine sink may ask for a
rewind (Redis lost state: replay) or release the partition (fenced: stop
reading it); both go through the process's :class:`~state.ownership.Ownership`.

Out-of-range offsets are never silent (``auto.offset.reset = error``): when
Kafka no longer holds the offset a partition resumes at, the process stops
with exit code 4 (:data:`~flows.claims.EXIT_STATE_LOST`), a CRITICAL line and
``livesignals_kafka_offset_out_of_range_total{cause}`` -- ``deleted`` when the
offset is below the log's start (retention removed events never applied),
``log_reset`` when it is not (the broker lost its log or the topic was
re-created: events there have offsets the profiles already count as applied,
and would be skipped as replays). librdkafka's default would jump to the log
end and skip every event, engine ready, lag 0 (issue 10, break-test F3).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from flows.batch_bound import BOUND
from flows.claims import EXIT_BAD_CONFIG, EXIT_STATE_LOST, StateNotRebuildable, exit_now
from flows.input_options import DURABILITY_OPTIONS, FETCH_WAIT_MS, count_problem
from flows.log_reset import fingerprint
from flows.log_watch import CHECK_EVERY_S, LogWatch, fingerprint_of
from flows.rewind import is_rewind_mark, rewind_mark
from flows.startup import STARTUP
from flows.state_probe import probe_message
from flows.worker_round import ROUND
from livesignals import metrics
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from state.connection import Backoff
from state.ownership import Ownership

log = logging.getLogger(__name__)

LOG_END_EVERY_S = 0.25
"""How often a source passes its fetched log ends on to the lag monitor."""


class _PartitionReader(StatefulSourcePartition[RawMessage, None]):
    def __init__(
        self,
        config: dict[str, Any],
        topics: tuple[str, ...],
        partition: int,
        ownership: Ownership,
        batch_size: int,
        log_check_s: float = CHECK_EVERY_S,
        batch_max_s: float = 0.0,
        gather: bool = True,
    ) -> None:
        self._topics = topics
        self._gather = gather
        """Hand out rounds of the worker's partitions (:mod:`flows.worker_round`); False: this partition's own
        batches, bounded by the whole ``batch_max_s`` (``one_batch_per_round`` off: as before rounds)."""
        self._batch_max_s = batch_max_s
        self._partition = partition
        self._ownership = ownership
        self._batch_size = batch_size
        self._released = False
        held = ownership.get(partition)
        starts: dict[str, int | None] = {}
        if held is not None:
            starts = {**held.offsets, **(held.replay_from or {})}
        self._watch = LogWatch(log_check_s)  # is the log still the one applied? (flows.log_watch)
        if held is not None and held.log_marks:
            self._watch.anchor_at({t: m for t, m in held.log_marks.items() if t in topics})
        self._consumer = Consumer({**config, "error_cb": self._watch.on_error})
        self._next: dict[str, int | None] = {}
        self._last: dict[str, Any] = {}
        """The last message handed out per topic (its fingerprint is computed only for a check)."""
        self._log_ends_at = 0.0
        self._assign({t: starts.get(t) for t in topics})
        if gather:
            ROUND.join(partition)  # built on the worker's thread, which polls it (flows.worker_round)

    def _assign(self, starts: dict[str, int | None], remember: bool = True) -> None:
        if remember:
            self._next.update(starts)
        self._consumer.assign(
            [TopicPartition(t, self._partition, OFFSET_BEGINNING if o is None else o) for t, o in starts.items()]
        )

    def next_batch(self) -> list[RawMessage]:
        """What this partition fetched, added to its worker's round: the whole round when this completes it
        (:mod:`flows.worker_round`), else nothing yet."""
        held = self._ownership.get(self._partition)
        if held is None or held.released:
            if not self._released:
                self._released = True
                self._consumer.unassign()
                log.warning("partition %d released: no longer read by this process", self._partition)
                if self._gather:
                    ROUND.leave(self._partition)
                    return ROUND.gather(self._partition, [])  # the round may have waited for this partition only
            return []
        if not self._gather:
            return self._fetch()
        return ROUND.gather(self._partition, self._fetch())

    def _fetch(self) -> list[RawMessage]:
        """The messages fetched since the last batch, with the marks the sink reads (rewind, probe)."""
        seek = self._ownership.take_seek(self._partition)
        out: list[RawMessage] = []
        if seek is not None:
            log.warning("partition %d: reading again from %s", self._partition, seek)
            self._watch.checking.clear()  # a replay re-reads from its own offsets; a later check starts anew
            self._assign({t: seek.get(t) for t in self._topics})
            out.append(rewind_mark(self._partition))  # what the sink gets before it was read earlier (flows.rewind)
        self._begin_check()
        last: dict[str, Any] = {}
        reposition = False
        for msg in self._consumer.consume(self._limit(), 0.001):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.code() == KafkaError._AUTO_OFFSET_RESET:
                    if (msg.topic() or "") in self._watch.checking:
                        reposition |= self._checked_out_of_range(msg.topic() or "")
                        continue
                    self._out_of_range(msg.topic() or "?", str(err))
                if err.retriable() or not err.fatal():
                    log.warning("kafka partition %d: %s", self._partition, err)
                    continue
                raise KafkaException(err)
            topic: str = msg.topic()  # type: ignore[assignment]  # set on every fetched message
            offset: int = msg.offset()  # type: ignore[assignment]
            if topic in self._watch.checking:
                verdict = self._watch.judge(topic, offset, fingerprint_of(msg))
                if verdict == "reset":
                    self._log_reset(topic, offset)
                if verdict == "missing":
                    self._checked_missing(topic)
                reposition |= verdict in ("same", "missing")
            upto = self._next.get(topic)
            if upto is not None and offset < upto:
                continue  # read again for a check, or before a reposition: handed out already
            ts_type, ts = msg.timestamp()
            origin = Origin(topic, self._partition, offset, ts if ts_type else 0)
            last[topic] = msg
            # headers: a list of pairs when consumed
            out.append(RawMessage(msg.value(), msg.key(), origin, msg.headers()))  # type: ignore[arg-type]
        if self._watch.suspect:  # a disconnect during this fetch: what came after it waits for the check
            self._begin_check(force_reposition=True)
            return [m for m in out[:1] if is_rewind_mark(m)]
        for topic, msg in last.items():
            self._next[topic] = msg.offset() + 1
        self._last.update(last)
        if any(not self._watch.anchored(t) for t in last):
            self._watch.anchor_first(_first_marks(out, [t for t in last if not self._watch.anchored(t)]))
        if reposition:
            self._reposition(self._watch.targets())
        if self._ownership.take_probe(self._partition):  # the monitor saw Redis lose this partition's state
            out.append(probe_message(self._partition))
        self._note_log_ends()
        return out

    def _limit(self) -> int:
        """Most messages to fetch: gathering, what its worker's round leaves this partition, at least its share
        (:meth:`flows.worker_round.WorkerRound.budget`); else the whole bound (:mod:`flows.batch_bound`)."""
        if not self._gather:
            return BOUND.limit(self._batch_size, self._batch_max_s)
        n = ROUND.partitions()
        whole = BOUND.limit(self._batch_size * n, self._batch_max_s)
        share = BOUND.limit(self._batch_size, self._batch_max_s, n)
        return min(self._batch_size, ROUND.budget(self._partition, whole, share))

    def _note_log_ends(self) -> None:
        """Pass the log ends of the last fetch responses to the lag monitor, a few times a second
        (:meth:`state.ownership.Ownership.note_log_end`: the embedded broker's ListOffsets says 1)."""
        now = time.monotonic()
        if now - self._log_ends_at < LOG_END_EVERY_S:
            return
        self._log_ends_at = now
        for topic in self._topics:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, self._partition), cached=True)
            if high is not None and high >= 0:
                self._ownership.note_log_end(self._partition, topic, int(high))

    def _begin_check(self, force_reposition: bool = False) -> None:
        """Start a check of the log if one is due (:class:`flows.log_watch.LogWatch`): re-read its records.
        ``force_reposition``: what was fetched was not handed out, so read again from where the batch began."""
        targets = None
        if (self._watch.suspect or self._last) and self._watch.due():  # fingerprints (CRC-32s) only when due
            targets = self._watch.begin({t: fingerprint_of(m) for t, m in self._last.items()}, self._next)
        if targets or force_reposition:
            self._reposition(targets or self._watch.targets())

    def _reposition(self, checking: dict[str, int]) -> None:
        """Read each topic from the record a check re-reads, else from the next record to hand out."""
        self._assign({t: checking.get(t, self._next.get(t)) for t in self._topics}, remember=False)

    def _checked_missing(self, topic: str) -> None:
        """The record a check re-reads is not there, records after it are: removed by retention (below the log's
        start) proves nothing and ends the check; otherwise the log is another one (break-test 10e, J1)."""
        at = int(self._watch.checking[topic].split("|", 1)[0])
        low, _ = self._consumer.get_watermark_offsets(TopicPartition(topic, self._partition), timeout=10)
        if at >= low:
            self._log_reset(topic, None)
        self._watch.drop(topic)

    def _checked_out_of_range(self, topic: str) -> bool:
        """The record a check re-reads is out of range: below the log's start (retention) proves nothing, above
        its end means the log is shorter than what was applied."""
        expected = self._watch.checking[topic]
        at = int(expected.split("|", 1)[0])
        low, _ = self._consumer.get_watermark_offsets(TopicPartition(topic, self._partition), timeout=10)
        if at < low:
            self._watch.drop(topic)  # gone: nothing to compare, the check of this topic ends
            return True
        self._log_reset(topic, None)

    def _log_reset(self, topic: str, offset: int | None) -> NoReturn:
        """A check read another record where the applied one was: pin the applied record as the log mark (a
        restart's claim stops too), then stop like :meth:`_out_of_range`."""
        expected = self._watch.checking[topic]
        claimer = self._ownership.claimer
        pin = getattr(claimer, "pin_log_marks", None)
        if pin is not None:
            pin(self._partition, {topic: expected})
        metrics.KAFKA_OFFSET_OUT_OF_RANGE.labels("log_reset").inc()
        found = "no record" if offset is None else "another record"
        exit_now(
            EXIT_STATE_LOST,
            f"KAFKA LOG RESET, stopping: {topic}[{self._partition}] holds {found} where the record applied at "
            f"offset {expected.split('|', 1)[0]} was: the broker lost its log or the topic was re-created while the "
            f"engine ran; its new events would be skipped as replays of offsets already applied. Restore the "
            f"broker's data, or start afresh: a new key_prefix (or this deployment's Redis keys deleted) rebuilds "
            f"from the new log",
        )

    def _out_of_range(self, topic: str, why: str) -> NoReturn:
        """Kafka no longer holds the offset this partition reads next: stop (see the module docstring)."""
        at = self._next.get(topic)
        low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, self._partition), timeout=10)
        deleted = at is not None and at < low
        metrics.KAFKA_OFFSET_OUT_OF_RANGE.labels("deleted" if deleted else "log_reset").inc()
        where = f"{topic}[{self._partition}] resumes at offset {at}; Kafka holds offsets {low} to {high - 1}"
        if deleted:
            exit_now(
                EXIT_STATE_LOST,
                f"EVENTS LOST, stopping: {where}: retention deleted events this deployment never applied ({why}); "
                f"restore them, or accept the loss by resetting the consumer group",
            )
        exit_now(
            EXIT_STATE_LOST,
            f"KAFKA LOG RESET, stopping: {where}: the broker lost its log or the topic was re-created ({why}); its "
            f"new events would be skipped as replays of offsets already applied. Restore the broker's data, or start "
            f"afresh: a new key_prefix (or this deployment's Redis keys deleted) rebuilds from the new log",
        )

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + timedelta(seconds=1) if self._released else None

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        if self._gather:
            ROUND.leave(self._partition)
        self._consumer.close()


def _first_marks(messages: list[RawMessage], topics: list[str]) -> dict[str, str]:
    """The :func:`~flows.log_reset.fingerprint` of the first of ``messages`` of each of ``topics``."""
    marks: dict[str, str] = {}
    for m in messages:
        o = m.origin
        if o.topic in topics and o.topic not in marks:
            marks[o.topic] = fingerprint(o.offset, o.timestamp_ms, m.key, m.value)
    return marks


class KafkaPartitionSource(FixedPartitionedSource[RawMessage, None]):
    """Reads partition ``p`` of every one of ``topics`` in source partition ``p``, in batches of ``batch_size``;
    the partitions of one worker hand their batches out together, one round per pass (:mod:`flows.worker_round`).

    ``ownership`` claims each partition before it is read (None: no claims, read from the beginning);
    ``batch_max_s`` bounds a batch by the engine's measured time too (:mod:`flows.batch_bound`; 0: off);
    ``one_batch_per_round`` False: each partition hands out its own batches (no rounds, the whole bound each).
    """

    def __init__(
        self,
        config: dict[str, Any],
        topics: tuple[str, ...],
        batch_size: int = 5000,
        ownership: Ownership | None = None,
        kafka_retry: Backoff | None = None,
        log_check_s: float = CHECK_EVERY_S,
        on_counts: Callable[[dict[str, int]], None] | None = None,
        batch_max_s: float = 0.0,
        one_batch_per_round: bool = True,
    ) -> None:
        self.log_check_s = log_check_s
        self.batch_max_s = batch_max_s
        self.one_batch_per_round = one_batch_per_round
        self.on_counts = on_counts
        for option, value in config.items():
            if option in DURABILITY_OPTIONS and str(value).lower() != str(DURABILITY_OPTIONS[option]).lower():
                log.warning(
                    "kafka_config sets %s = %r: ignored by the engine's input, which needs %r (issue 10: progress "
                    "lives in Redis, and an offset Kafka no longer holds stops the engine instead of a silent jump)",
                    option, value, DURABILITY_OPTIONS[option],
                )  # fmt: skip
        self.config = {
            # librdkafka wants a group id; partitions are assigned, never joined (claims fence, not the group).
            "group.id": "livesignals-engine",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": FETCH_WAIT_MS,
            **config,
            **DURABILITY_OPTIONS,
        }
        self.topics = topics
        self.batch_size = batch_size
        self.ownership = ownership or Ownership()
        self.kafka_retry = kafka_retry or Backoff("kafka", errors=(KafkaException,))

    def list_parts(self) -> list[str]:
        """One part per partition number; every topic must exist and have the same partition count."""
        counts = self.kafka_retry.run(self._partition_counts)
        problem = count_problem(counts)
        if problem:  # one line and the configuration exit code, not a traceback and 1 (break-test 10h, L6)
            exit_now(EXIT_BAD_CONFIG, f"CONFIGURATION ERROR: {problem}")
        if self.on_counts is not None:
            self.on_counts(counts)  # the monitor stops for a restart when they change (flows.monitor)
        STARTUP.mark("kafka_metadata")
        return [str(p) for p in range(next(iter(counts.values())))]

    def _partition_counts(self) -> dict[str, int]:
        consumer = Consumer(self.config)
        try:
            meta = consumer.list_topics(timeout=10)
        finally:
            consumer.close()
        counts = {}
        for topic in self.topics:
            tmeta = meta.topics.get(topic)
            ok = tmeta is not None and tmeta.error is None
            counts[topic] = len(tmeta.partitions) if ok and tmeta is not None else 0
        return counts

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _PartitionReader:
        partition = int(for_part)
        if self.ownership.claimer is not None:
            try:
                held = self.ownership.claim(partition)
            except StateNotRebuildable as exc:
                exit_now(EXIT_STATE_LOST, f"STATE LOST, stopping: {exc}")
            metrics.PARTITIONS_OWNED.set(len(self.ownership.owned()))
            metrics.READY.set(1)  # claimed: Redis and Kafka answered, the partition is owned
            log.info("partition %d: reading %s from %s", partition, self.topics, held.offsets)
        reader = _PartitionReader(
            self.config, self.topics, partition, self.ownership, self.batch_size, self.log_check_s, self.batch_max_s,
            self.one_batch_per_round,
        )  # fmt: skip
        STARTUP.mark("claimed", again=True)
        return reader
