"""The engine as a Bytewax sink: one :class:`~operators.engine.Engine` per worker.

A sink, not a map step, because the engine's I/O must happen in a fixed order
per batch (Kafka outputs confirmed, then Redis state committed, then the
offsets committed to the Kafka consumer group), and a ``DynamicSink`` gives
each worker its own engine, cache and connections. Ownership is decided per
partition number: a worker's round (:mod:`flows.worker_round`) is one batch
when every partition in it is plain (:mod:`flows.one_batch`), else one per partition.

* **Before each batch** the sink checks that the partition is still owned and
  that Redis still holds what was committed (:meth:`state.store.ProfileStore.verify`,
  one round trip): no output is computed from an emptied Redis, and a fenced
  engine publishes nothing.
* **Outages** (Redis or Kafka unreachable, a node refusing writes): the batch is
  retried with capped exponential backoff for as long as it takes
  (``retry_backoff_s`` .. ``retry_backoff_max_s``; the dependency is probed
  meanwhile and the batch retried as soon as it answers), ``livesignals_ready`` and
  ``livesignals_dependency_up`` at 0 meanwhile; the partitions stay owned. A
  failed publish or load wrote nothing to Redis, so the batch is recomputed; a
  failed commit is retried by the store as planned, so nothing counts twice.
* **Fenced** (another engine claimed the partition): the partition is released
  at once — nothing more is written to it — with one log line and
  ``livesignals_fenced_total``; the process exits with code 3 once it owns no
  partition (see :mod:`flows.claims` for why it exits rather than waits).
* **State lost** (Redis lost or rolled back what was committed): the partition
  is claimed again and read again from what Redis holds (:mod:`flows.claims`);
  messages already in flight from before the rewind are dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaException
from redis import RedisError
from redis.exceptions import RedisClusterException

from flows import one_batch
from flows.batch_bound import BOUND
from flows.claims import EXIT_FENCED, EXIT_STATE_LOST, KafkaClaimer, StateNotRebuildable, exit_now
from flows.log_reset import marks_of
from flows.monitor import PROGRESS
from flows.rewind import is_rewind_mark
from flows.shutdown import SHUTDOWN
from flows.startup import STARTUP
from flows.state_probe import is_probe
from livesignals import metrics
from livesignals.contract import RawMessage
from livesignals.settings import Settings
from operators.engine import Engine
from operators.ports import Publisher
from operators.routing import REPLAYED_HEADER
from state.connection import Backoff, connect
from state.keys import Keys
from state.ownership import Fenced, Ownership, StateLost
from state.retention import Retention
from state.secrets import deployment_secret, keep_secret
from state.store import ProfileStore
from state.topology import change_warning, swap_partition_count

log = logging.getLogger(__name__)

EngineFactory = Callable[[Settings], Engine]


def default_engine(
    settings: Settings, publisher: Publisher | None = None, ownership: Ownership | None = None
) -> Engine:
    """An engine on real Redis and Kafka, as configured (fenced by ``ownership`` when given;
    routing by customer on when it publishes to Kafka itself: the partition counts come from Kafka's metadata)."""
    from flows.publisher import KafkaPublisher

    client = connect(settings)
    if not settings.repartition_secret:  # never a key derived from settings that may hold no secret
        keys = Keys(settings.key_prefix)
        secret = Backoff.for_redis(settings, client).run(lambda: deployment_secret(client, keys, "origin"))
        settings = settings.replace(repartition_secret=secret)
    store = ProfileStore(
        client,
        Keys(settings.key_prefix),
        cache_size=0 if settings.redis_mode == "per_event" else settings.cache_size,
        cluster=settings.redis_cluster,
        flags_stream_maxlen=settings.flags_stream_maxlen,
        timeline_max_entries=settings.timeline_max_entries,
        timeline_max_age_days=settings.timeline_max_age_days,
        models_config=settings.models,
        ownership=ownership,
        retry=Backoff.for_redis(settings, client),
        retention=Retention.from_settings(settings),
        wait_replicas=settings.redis_wait_replicas,
        wait_timeout_ms=settings.redis_wait_timeout_ms,
        profile_compression=settings.profile_compression,
        timeline_compression=settings.timeline_compression,
    )
    counts = None
    if publisher is None:
        publisher = KafkaPublisher(
            settings.kafka_client_config(), settings.produce_timeout_s, dead_letter_topic=settings.dead_letter_topic
        )
        # a broker still starting is waited out, as the source does; a missing topic is a configuration error
        counts = Backoff("kafka", settings.retry_backoff_s, settings.retry_backoff_max_s, errors=(KafkaException,)).run(
            lambda: partition_counts(settings)
        )
        _note_partition_count(settings, client, counts)
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


def _note_partition_count(settings: Settings, client: Any, counts: dict[str, int]) -> None:
    """Record the partition count in Redis; one WARNING when it changed since the last start
    (:mod:`state.topology`). Mixed counts are refused elsewhere (the source, the router)."""
    if len(set(counts.values())) != 1:
        return
    count = next(iter(counts.values()))
    keys = Keys(settings.key_prefix)
    old = Backoff.for_redis(settings, client).run(lambda: swap_partition_count(client, keys, count))
    warning = change_warning(old, count)
    if warning:
        log.warning("%s", warning)


class _EnginePartition(StatelessSinkPartition[RawMessage]):
    def __init__(
        self, engine: Engine, settings: Settings, ownership: Ownership | None, claimer: KafkaClaimer | None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.ownership = ownership
        self.claimer = claimer
        self._rewinding: set[int] = set()
        """Partitions rewound after a loss whose source's mark has not come yet: what they send until it was read
        before the rewind, and is dropped (:mod:`flows.rewind`)."""

    def write_batch(self, items: list[RawMessage]) -> None:
        if not SHUTDOWN.begin_batch():
            return  # SIGTERM: read again at the next start (flows.shutdown)
        if items:
            STARTUP.mark("first_batch")
        try:
            by_partition: dict[int, list[RawMessage]] = {}
            for m in items:
                by_partition.setdefault(m.origin.partition, []).append(m)
            if self.settings.one_batch_per_round and one_batch.write_round(self, by_partition):
                return  # every partition of the round processed as one batch (flows.one_batch)
            for partition, messages in by_partition.items():
                events = [m for m in self._fresh(partition, messages) if not is_probe(m)]
                if any(is_probe(m) for m in messages) and not events:
                    self._check(partition)  # a probe alone: the monitor saw a loss no batch came to notice
                self._write(partition, events)
        finally:
            SHUTDOWN.end_batch()

    def _fresh(self, partition: int, messages: list[RawMessage]) -> list[RawMessage]:
        """``messages`` without rewind marks, and without what ``partition``'s source read before a rewind."""
        marks = [i for i, m in enumerate(messages) if is_rewind_mark(m)]
        if partition in self._rewinding:
            if not marks:
                return []  # read before the rewind
            self._rewinding.discard(partition)
            messages = messages[marks[-1] + 1 :]
        elif marks:
            messages = [m for m in messages if not is_rewind_mark(m)]
        return messages

    def _write(self, partition: int, messages: list[RawMessage]) -> None:
        if not messages:
            return
        if self.ownership is not None:
            held = self.ownership.get(partition)
            if held is None or held.released:
                return  # fenced: another engine reads these
        delay = self.settings.retry_backoff_s
        begun = time.time()
        stamps = [m.origin.timestamp_ms for m in messages if m.origin.timestamp_ms > 0]
        if stamps:  # how long the oldest message waited for its batch (fetch, Bytewax, earlier batches)
            metrics.BATCH_STAGE_SECONDS.labels("wait").observe(max(begun - min(stamps) / 1000, 0.0))
        while True:
            try:
                checked, worked = time.perf_counter(), getattr(self.engine, "work_seconds", 0.0)
                verify = getattr(self.engine.store, "verify", None)
                if verify is not None:
                    verify(partition)  # owned, and Redis still holds our state: else no output goes out
                metrics.BATCH_STAGE_SECONDS.labels("check").observe(time.perf_counter() - checked)
                self._process(partition, messages)
                break
            except Fenced as exc:
                self._fenced(exc)
                return
            except StateLost as exc:
                self._lost(partition, exc)
                return
            except Exception as exc:  # Redis or Kafka unreachable (or a bug): wait, then recompute
                self.engine.forget()
                dependency = "redis" if isinstance(exc, (RedisError, RedisClusterException)) else "kafka"
                metrics.DEPENDENCY_UP.labels(dependency).set(0)
                metrics.DEPENDENCY_RETRIES.labels(dependency).inc()
                metrics.READY.set(0)
                outage = isinstance(exc, _OUTAGES)
                metrics.BATCH_FAILURES.labels(_cause(exc)).inc()
                if SHUTDOWN.requested:
                    log.warning("batch of partition %d abandoned at shutdown (%s)", partition, type(exc).__name__)
                    return
                log.warning("batch of partition %d failed (%s: %s); retrying in <= %.1fs",
                            partition, type(exc).__name__, exc, delay, exc_info=not outage)  # fmt: skip
                Backoff(dependency, probe=self._probe(dependency)).wait(delay)  # back as soon as it answers
                delay = min(delay * 2, self.settings.retry_backoff_max_s)
        self._committed({partition: messages}, worked)

    def _committed(self, rounds: dict[int, list[RawMessage]], worked: float) -> None:
        """After the commit of ``rounds`` (partition -> its messages; one batch, or a round processed as one):
        the consumer group's offsets in one commit, the log marks, the progress, the batch bound."""
        metrics.DEPENDENCY_UP.labels("redis").set(1)
        metrics.DEPENDENCY_UP.labels("kafka").set(1)
        metrics.READY.set(1)
        committing = time.perf_counter()
        messages = [m for batch in rounds.values() for m in batch]
        if self.claimer is not None:
            offsets, applied = {}, {}
            for partition, batch in rounds.items():
                offsets.update(_next_offsets(batch))
                applied.update({(t, partition): mark for t, mark in marks_of(batch).items()})  # checked after a loss
            self.claimer.commit_offsets(offsets, applied=applied)
            for partition, batch in rounds.items():
                self.claimer.remember_log(partition, batch)  # which records were applied (flows.log_reset)
            self.claimer.watch_redis_memory()  # a Redis restarted or reconfigured to evict keys stops the engine
        PROGRESS.committed(messages)
        STARTUP.committed()
        done = time.perf_counter()
        metrics.BATCH_STAGE_SECONDS.labels("offsets").observe(done - committing)
        # the source's time bound (batch_max_s) from the engine's own work on this batch's last attempt, not the
        # round trips a batch pays whatever its size (break-test 16a, A3: counted in, a slow Redis shrank batches
        # to 100 events and capped a worker near 100 / round-trip time)
        BOUND.observe(len(messages), getattr(self.engine, "work_seconds", 0.0) - worked)

    def _process(self, partition: int, messages: list[RawMessage]) -> None:
        """Process a batch; after a STATE LOSS, the replayed events whose outputs Kafka already confirmed
        (below the offsets committed before: :attr:`state.ownership.Claim.published`) rebuild state only, and
        are processed first, apart (``republish_replays`` on: every event publishes, as before)."""
        held = self.ownership.get(partition) if self.ownership is not None else None
        if self.settings.republish_replays:
            self.engine.process(messages)
            return
        marked = self._replayed_reroutes(messages)
        if (held is None or held.published is None) and not marked:
            self.engine.process(messages)
            return
        fresh = [
            m for m in messages
            if id(m) not in marked and (held is None or held.unpublished(m.origin.topic, m.origin.offset))
        ]  # fmt: skip
        if len(fresh) < len(messages):
            fresh_ids = {id(m) for m in fresh}
            replayed = [m for m in messages if id(m) not in fresh_ids]
            reroute = bool(marked) or (held is not None and held.reroute_again)
            self.engine.process(replayed, publish=False, reroute=reroute)
        if fresh:
            self.engine.process(fresh)

    def _replayed_reroutes(self, messages: list[RawMessage]) -> set[int]:
        """Ids of the repartition records a STATE LOSS replay re-published below what Kafka had confirmed
        (header ``ls.origin.replayed``; its signature is checked when routed, and a record that fails it is
        dead-lettered, which this path still publishes): their outputs went out before the loss, so they
        rebuild state only, judged at stream time (break-test 10j, Q1: judged anew by the wall clock, 94 flags
        and 275 decisions came out again, caps broken)."""
        topic = self.settings.repartition_topic
        return {
            id(m) for m in messages
            if m.origin.topic == topic and any(k == REPLAYED_HEADER and v in (b"1", "1") for k, v in m.headers or ())
        }  # fmt: skip

    def _check(self, partition: int) -> None:
        """A probe (:mod:`flows.state_probe`): the batch's own check, and on a loss the batch's own STATE LOSS
        path; nothing found (a batch re-claimed meanwhile) lets the engine be ready again."""
        verify = getattr(self.engine.store, "verify", None)
        if verify is None:
            return
        try:
            verify(partition)
        except Fenced as exc:
            self._fenced(exc)
            return
        except StateLost as exc:
            self._lost(partition, exc)
            return
        except (RedisError, RedisClusterException) as exc:
            log.warning("partition %d: state probe not answered (%s); the next batch checks again", partition, exc)
            return
        metrics.READY.set(1)

    def _probe(self, dependency: str) -> Callable[[], object] | None:
        """A cheap request to ``dependency`` (Redis ``PING``, Kafka metadata) that raises while it is down."""
        if dependency == "redis":
            client = getattr(self.engine.store, "client", None)
            return client.ping if client is not None else None
        producer = getattr(self.engine.publisher, "_producer", None)
        return (lambda: producer.list_topics(timeout=1)) if producer is not None else None

    def _keep_secret(self) -> None:
        """Redis lost its data: write back the origin secret this engine signs reroutes with (before its replay
        re-routes anything), so a restart verifies them (:func:`state.secrets.keep_secret`)."""
        signing = self.engine.settings.repartition_secret
        client = getattr(self.engine.store, "client", None)
        if self.settings.repartition_secret or not signing or client is None:
            return  # set in the settings: nothing in Redis to lose
        try:
            if not keep_secret(client, Keys(self.settings.key_prefix), "origin", signing):
                log.error("the origin secret in Redis is not the one this engine signs with (another process "
                          "created one after the loss): its reroutes are dead-lettered there")  # fmt: skip
        except (RedisError, RedisClusterException) as exc:
            log.warning("origin secret not written back (%s)", exc)

    def _fenced(self, exc: Fenced) -> None:
        log.error("FENCED: %s; this process stops writing it", exc)
        metrics.FENCED.inc()
        self.engine.forget()
        if self.ownership is None:
            raise exc
        self.ownership.release(exc.partition)
        metrics.PARTITIONS_OWNED.set(len(self.ownership.owned()))
        if not self.ownership.owned():
            metrics.READY.set(0)
            exit_now(EXIT_FENCED, "FENCED on every partition of this process: another engine owns them; exiting")

    def _lost(self, partition: int, exc: StateLost) -> None:
        log.error("STATE LOSS detected at commit: %s", exc)
        self.engine.forget()
        self._keep_secret()
        if self.ownership is None or self.claimer is None:
            raise exc
        old = self.ownership.get(partition)
        try:
            held = self.ownership.claim(partition)
            starts = held.replay_from or self.claimer.resolve_loss(partition, held.offsets, str(exc))
            if old is not None:  # committed by this process, on this log: their outputs were confirmed
                held.mark_published(old.offsets)
                held.mark_published(old.published or {})  # a loss during the replay of an earlier one
        except StateNotRebuildable as stop:
            exit_now(EXIT_STATE_LOST, f"STATE LOST, stopping: {stop}")
        except Fenced as fenced:
            self._fenced(fenced)
            return
        self._rewinding.add(partition)  # until the source's mark: read before the rewind (flows.rewind)
        self.ownership.request_seek(partition, starts)


_OUTAGES = (RedisError, RedisClusterException, KafkaException, ConnectionError, TimeoutError)


def _cause(exc: Exception) -> str:
    """``livesignals_batch_failures_total``'s cause: redis, kafka (unreachable or unconfirmed) or other."""
    from flows.publisher import DeliveryError

    if isinstance(exc, RedisError | RedisClusterException):
        return "redis"
    return "kafka" if isinstance(exc, KafkaException | DeliveryError) else "other"


def _next_offsets(messages: list[RawMessage]) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for m in messages:
        pos = (m.origin.topic, m.origin.partition)
        out[pos] = max(out.get(pos, 0), m.origin.offset + 1)
    return out


class EngineSink(DynamicSink[RawMessage]):
    """Runs an engine per worker over the raw messages it receives.

    ``ownership`` and ``claimer`` (the live flow) fence, rewind and commit offsets to Kafka;
    without them (tests with a testing source) every batch is simply processed.
    """

    def __init__(
        self,
        settings: Settings,
        engine_factory: EngineFactory = default_engine,
        ownership: Ownership | None = None,
        claimer: Any = None,
    ) -> None:
        self.settings = settings
        self.engine_factory = engine_factory
        self.ownership = ownership
        self.claimer = claimer

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _EnginePartition:
        return _EnginePartition(self.engine_factory(self.settings), self.settings, self.ownership, self.claimer)
