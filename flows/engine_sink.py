"""The engine as a Bytewax sink: one :class:`~operators.engine.Engine` per worker.

A sink, not a map step, because the engine's I/O must happen in a fixed order
per batch (Kafka outputs confirmed, then Redis state committed), and a
``DynamicSink`` gives each worker its own engine, cache and connections.

Infrastructure failures (Redis or Kafka unreachable) are retried with backoff;
the batch is idempotent, so a retry never double-counts. After
``max_attempts`` the error is raised and the process restarts from the
committed offsets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from livesignals.contract import RawMessage
from livesignals.settings import Settings
from operators.engine import Engine, Publisher
from state.connection import connect
from state.keys import Keys
from state.store import ProfileStore

log = logging.getLogger(__name__)

EngineFactory = Callable[[Settings], Engine]


def default_engine(settings: Settings, publisher: Publisher | None = None) -> Engine:
    """An engine on real Redis and Kafka, as configured (routing by customer on when it
    publishes to Kafka itself: the partition counts come from Kafka's metadata)."""
    from flows.publisher import KafkaPublisher

    store = ProfileStore(
        connect(settings),
        Keys(settings.key_prefix),
        cache_size=0 if settings.redis_mode == "per_event" else settings.cache_size,
        cluster=settings.redis_cluster,
        flags_stream_maxlen=settings.flags_stream_maxlen,
        timeline_max_entries=settings.timeline_max_entries,
        timeline_max_age_days=settings.timeline_max_age_days,
        models_config=settings.models,
    )
    counts = None
    if publisher is None:
        publisher = KafkaPublisher(
            settings.kafka_client_config(), settings.produce_timeout_s, dead_letter_topic=settings.dead_letter_topic
        )
        counts = partition_counts(settings)
    return Engine(settings, store, publisher, partition_counts=counts)


def partition_counts(settings: Settings) -> dict[str, int]:
    """Partitions of each input topic and of the repartition topic, from Kafka's metadata."""
    from confluent_kafka.admin import AdminClient

    topics = (*settings.input_topics, settings.repartition_topic)
    meta = AdminClient(settings.kafka_client_config()).list_topics(timeout=10).topics
    missing = [t for t in topics if t not in meta or meta[t].error is not None or not meta[t].partitions]
    if missing:
        raise RuntimeError(f"topics {missing} do not exist (livesignals topics create)")
    return {t: len(meta[t].partitions) for t in topics}


class _EnginePartition(StatelessSinkPartition[RawMessage]):
    def __init__(self, engine: Engine, max_attempts: int) -> None:
        self.engine = engine
        self.max_attempts = max_attempts

    def write_batch(self, items: list[RawMessage]) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.engine.process(items)
                return
            except Exception:  # infrastructure failure: Redis or Kafka
                self.engine.forget()
                if attempt == self.max_attempts:
                    raise
                log.exception("batch failed (attempt %d/%d); retrying", attempt, self.max_attempts)
                time.sleep(min(2.0**attempt, 30.0))

    def close(self) -> None:
        close = getattr(self.engine.publisher, "close", None)
        if close is not None:
            close()


class EngineSink(DynamicSink[RawMessage]):
    """Runs an engine per worker over the raw messages it receives."""

    def __init__(
        self,
        settings: Settings,
        engine_factory: EngineFactory = default_engine,
        max_attempts: int = 5,
    ) -> None:
        self.settings = settings
        self.engine_factory = engine_factory
        self.max_attempts = max_attempts

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _EnginePartition:
        return _EnginePartition(self.engine_factory(self.settings), self.max_attempts)
