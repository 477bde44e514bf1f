"""Kafka input: one Bytewax partition per Kafka partition, read in batches.

Each Kafka partition is read by exactly one worker (``FixedPartitionedSource``),
so one customer's events (keyed by customer) are processed in order by one
engine. A partition starts from the later of Bytewax's recovery snapshot (if
recovery is on) and the next offset the engine committed to Redis with its
last batch (``resume_from``); with neither, from the beginning of the topic.
Workers therefore keep no local state: a restarted worker resumes where the
committed state ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from livesignals.contract import RawMessage
from livesignals.errors import Origin

log = logging.getLogger(__name__)

ResumeLookup = Callable[[str], dict[int, int]]
"""``topic -> {partition: next offset}`` as committed by the engine."""


class _PartitionReader(StatefulSourcePartition[RawMessage, int]):
    def __init__(self, config: dict[str, Any], topic: str, partition: int, offset: int, batch_size: int) -> None:
        self._topic = topic
        self._partition = partition
        self._batch_size = batch_size
        self._next = offset
        self._consumer = Consumer(config)
        self._consumer.assign([TopicPartition(topic, partition, offset)])

    def next_batch(self) -> list[RawMessage]:
        out: list[RawMessage] = []
        for msg in self._consumer.consume(self._batch_size, 0.001):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.retriable() or not err.fatal():
                    log.warning("kafka %s[%d]: %s", self._topic, self._partition, err)
                    continue
                raise KafkaException(err)
            ts_type, ts = msg.timestamp()
            offset: int = msg.offset()  # type: ignore[assignment]  # set on every fetched message
            out.append(
                RawMessage(
                    msg.value(),
                    msg.key(),
                    Origin(self._topic, self._partition, offset, ts if ts_type else 0),
                    msg.headers(),  # type: ignore[arg-type]  # a list of pairs when consumed
                )
            )
        if out:
            self._next = out[-1].origin.offset + 1
        return out

    def snapshot(self) -> int:
        return self._next

    def close(self) -> None:
        self._consumer.close()


class KafkaPartitionSource(FixedPartitionedSource[RawMessage, int]):
    """Reads ``topics`` from ``config['bootstrap.servers']`` in batches of ``batch_size``."""

    def __init__(
        self,
        config: dict[str, Any],
        topics: tuple[str, ...],
        batch_size: int = 5000,
        resume_from: ResumeLookup | None = None,
    ) -> None:
        self.config = {
            # librdkafka wants a group id; partitions are assigned, never joined.
            "group.id": "livesignals-engine",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 10,
            **config,
        }
        self.topics = topics
        self.batch_size = batch_size
        self.resume_from = resume_from

    def list_parts(self) -> list[str]:
        consumer = Consumer(self.config)
        try:
            meta = consumer.list_topics(timeout=10)
            parts = []
            for topic in self.topics:
                tmeta = meta.topics.get(topic)
                if tmeta is None or tmeta.error is not None or not tmeta.partitions:
                    raise RuntimeError(f"input topic {topic!r} does not exist (livesignals topics create)")
                parts += [f"{topic}#{p}" for p in sorted(tmeta.partitions)]
            return parts
        finally:
            consumer.close()

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _PartitionReader:
        topic, _, partition_text = for_part.rpartition("#")
        partition = int(partition_text)
        candidates = [resume_state]
        if self.resume_from is not None:
            candidates.append(self.resume_from(topic).get(partition))
        known = [c for c in candidates if c is not None]
        offset = max(known) if known else OFFSET_BEGINNING
        log.info("reading %s[%d] from offset %s", topic, partition, offset)
        return _PartitionReader(self.config, topic, partition, offset, self.batch_size)
