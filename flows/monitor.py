"""What the engine tells its operators while it runs: lag, freshness, a status line, suppression.

* :data:`PROGRESS` is told of every committed batch (:mod:`flows.engine_sink`): it
  observes ``livesignals_event_freshness_seconds`` (Kafka timestamp to commit) per
  message and counts committed messages and batches.
* :class:`Monitor` wakes every ``status_interval_s``: it reads each owned partition's
  high watermark from Kafka and sets ``livesignals_consumer_lag_messages{topic,
  partition}`` to high watermark minus the offset this engine committed (the one
  Redis held at the claim until the first commit), pings Redis, and keeps both
  probes for ``/readyz``. When Redis answers it also checks that Redis still
  holds each owned partition's committed state, so a Redis restarted empty
  under an idle engine is rebuilt within a pass (:mod:`flows.state_probe`).
  Every ``status_log_interval_s`` it writes one JSON line (logger
  ``livesignals.status``): throughput, lag, freshness, failures.
* It watches the topics' partition counts (Kafka metadata, at most
  ``status_interval_s`` old, at most a minute: one metadata request per topic a pass): partitions added while the
  engine runs are never read (the source lists partitions once, at start-up),
  and lag covers only those read, so lag and readiness would say all is well
  (break-test 10h, L2). When a count differs from the one the engine started
  with, it logs one CRITICAL line, sets ``livesignals_partition_count_changed``
  to 1 and not ready, and exits with code 5
  (:data:`flows.shutdown.EXIT_PARTITIONS_CHANGED`) between batches, as SIGTERM
  does: a restart reads every partition.
* It also watches the contact policy: when every action decided for
  ``suppressed_alert_s`` was held back (quiet hours at night, caps, consent), it
  logs one WARNING saying why and for how long, and
  ``livesignals_triggers_all_suppressed_seconds`` holds the duration.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition

from flows.state_probe import IdleLossWatch
from livesignals import metrics
from livesignals.contract import RawMessage
from livesignals.settings import Settings
from state.ownership import Ownership

log = logging.getLogger(__name__)
status_log = logging.getLogger("livesignals.status")
"""The JSON status lines: one JSON document per line, nothing around it."""


class Progress:
    """Committed messages and their freshness, shared by every worker of the process (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self.messages = 0
        self.batches = 0
        self._fresh_max = 0.0
        self._fresh_sum = 0.0
        self._fresh_n = 0

    def committed(self, messages: Iterable[RawMessage]) -> None:
        """``messages`` were committed (Redis, then the consumer group) just now."""
        now_ms = self.clock() * 1000
        batch = list(messages)
        ages = [(now_ms - m.origin.timestamp_ms) / 1000 for m in batch if m.origin.timestamp_ms > 0]
        metrics.EVENT_FRESHNESS.observe_many(max(age, 0.0) for age in ages)
        with self._lock:
            self.messages += len(batch)
            self.batches += 1
            if ages:
                self._fresh_max = max(self._fresh_max, *ages)
                self._fresh_sum += sum(ages)
                self._fresh_n += len(ages)
        metrics.BATCHES_COMMITTED.inc()

    def take_interval(self) -> dict[str, Any]:
        """Totals so far, and the freshness of the messages committed since the last call."""
        with self._lock:
            fresh = {
                "max": round(self._fresh_max, 3),
                "mean": round(self._fresh_sum / self._fresh_n, 3) if self._fresh_n else None,
            }
            self._fresh_max = self._fresh_sum = 0.0
            self._fresh_n = 0
            return {"messages": self.messages, "batches": self.batches, "freshness_s": fresh}


PROGRESS = Progress()
"""This process's progress (one per process, like the metrics registry)."""


class SuppressionWatch:
    """Notices when the contact policy has held back every action for ``alert_after_s``."""

    def __init__(self, alert_after_s: float) -> None:
        self.alert_after_s = alert_after_s
        self._sent = _total(metrics.TRIGGERS)
        self._held = _total(metrics.TRIGGERS_SUPPRESSED)
        self._since: float | None = None
        self._prev: dict[str, float] = _by_label(metrics.TRIGGERS_SUPPRESSED, "reason")
        self._base: dict[str, float] = {}
        self._alerted = False
        self.duration = 0.0
        """Seconds every action has been held back (0: not)."""

    def tick(self, now: float) -> float:
        """Look at the trigger counters; returns for how long everything has been suppressed (0: not)."""
        sent, held = _total(metrics.TRIGGERS), _total(metrics.TRIGGERS_SUPPRESSED)
        reasons = _by_label(metrics.TRIGGERS_SUPPRESSED, "reason")
        if sent > self._sent:
            if self._alerted:
                log.info("triggers flow again after the contact policy held back every one")
            self._since, self._alerted = None, False
        elif held > self._held and self._since is None:
            self._since, self._base = now, self._prev
        self._sent, self._held, self._prev = sent, held, reasons
        duration = self.duration = now - self._since if self._since is not None else 0.0
        metrics.TRIGGERS_ALL_SUPPRESSED_SECONDS.set(duration)
        if self._since is not None and duration >= self.alert_after_s and not self._alerted:
            self._alerted = True
            why = {r: int(n - self._base.get(r, 0)) for r, n in reasons.items() if n > self._base.get(r, 0)}
            log.warning(
                "the contact policy held back every trigger for %.0f s (%s): no trigger reached marketing; "
                "quiet_hours (customer-local, UTC when the zone is unknown), contact caps and consent decide this",
                duration, ", ".join(f"{r}: {n}" for r, n in sorted(why.items())) or "no reasons recorded",
            )  # fmt: skip
        return duration


class Monitor:
    """Lag, dependency probes, the suppression watch and the JSON status line, on a daemon thread."""

    def __init__(self, settings: Settings, ownership: Ownership, topics: tuple[str, ...]) -> None:
        self.settings = settings
        self.ownership = ownership
        self.topics = topics
        self.checks: dict[str, bool | None] = {"redis": None, "kafka": None, "rules_loaded": None}
        self.suppression = SuppressionWatch(settings.suppressed_alert_s)
        self.losses = IdleLossWatch(settings, ownership)
        self._consumer: Consumer | None = None
        self._redis: Any = None
        self._lags: dict[tuple[str, int], int] = {}
        self._partitions: dict[str, tuple[int, float]] = {}
        self._lowered: set[str] = set()
        self.started_counts: dict[str, int] | None = None
        """Each topic's partition count when the engine started (:meth:`started_with`; else the first read)."""
        self._started = time.monotonic()
        self._last_log = (time.monotonic(), 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livesignals-monitor", daemon=True)

    def start(self) -> Monitor:
        """Start the monitor thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread after its current pass."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.status_interval_s if self._lags or self.checks["kafka"] else 0.5):
            try:
                self.tick()
            except Exception:  # never let monitoring end the engine
                log.exception("monitor pass failed")

    def tick(self) -> None:
        """One pass: lag, Redis probe, suppression watch, and the status line when due."""
        self.checks["kafka"] = self._read_lag()
        self._check_partition_counts()
        self.checks["redis"] = self._ping_redis()
        if self.checks["redis"]:
            self._check_state()
        for dependency in ("kafka", "redis"):
            self._publish_probe(dependency, self.checks[dependency])
        self.suppression.tick(time.time())
        every = self.settings.status_log_interval_s
        if every > 0 and time.monotonic() - self._last_log[0] >= every:
            self.log_status()

    def started_with(self, counts: dict[str, int]) -> None:
        """The source listed its partitions from these counts (topic -> partitions)."""
        self.started_counts = dict(counts)

    def _check_partition_counts(self) -> None:
        """Stop for a restart when a topic's partition count changed since the start (see the module docstring)."""
        if self._consumer is None or self.checks["kafka"] is not True:
            return
        try:
            now = {topic: self._partition_count(topic) for topic in self.topics}
        except KafkaException:
            return  # the next pass asks again
        if self.started_counts is None:
            if all(now.values()):
                self.started_counts = now
            return
        changed = {t: (self.started_counts[t], n) for t, n in now.items() if n and n != self.started_counts.get(t, n)}
        if not changed:
            return
        from flows.shutdown import EXIT_PARTITIONS_CHANGED, exit_between_batches

        metrics.PARTITION_COUNT_CHANGED.set(1)
        metrics.READY.set(0)
        what = ", ".join(f"{t} {old} -> {new}" for t, (old, new) in sorted(changed.items()))
        log.critical(
            "PARTITION COUNT CHANGED while running (%s): the new partitions are not read until a restart; "
            "finishing the batch in flight and exiting with code %d for a restart, which reads every partition "
            "(grow every input topic and the repartition topic together)",
            what, EXIT_PARTITIONS_CHANGED,
        )  # fmt: skip
        exit_between_batches(EXIT_PARTITIONS_CHANGED, self.settings.shutdown_grace_s)

    def _read_lag(self) -> bool | None:
        owned = self.ownership.owned()
        for tp in [tp for tp in self._lags if tp[1] not in owned]:
            del self._lags[tp]
            metrics.CONSUMER_LAG.remove(tp[0], str(tp[1]))
        if not owned:
            return None
        if self._consumer is None:
            config = self.settings.kafka_client_config(**{"group.id": self.settings.consumer_group})
            self._consumer = Consumer({**config, "enable.auto.commit": False})
        for p in owned:
            held = self.ownership.get(p)
            if held is None:
                continue
            for topic in self.topics:
                try:
                    if p >= self._partition_count(topic):
                        continue  # this topic has fewer partitions than the source (the repartition topic may)
                    low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)
                except KafkaException as exc:
                    log.warning("lag: Kafka did not answer for %s[%d]: %s", topic, p, exc)
                    return False
                fetched = self.ownership.log_end(p, topic)  # the embedded broker's ListOffsets says 1
                end = max(int(high), fetched if fetched is not None else -1)
                done = held.offsets.get(topic)
                lag = max(0, end - (done if done is not None else int(low)))
                self._lags[(topic, p)] = lag
                metrics.CONSUMER_LAG.labels(topic, str(p)).set(lag)
        return True

    def _publish_probe(self, dependency: str, answered: bool | None) -> None:
        """Let the metrics say what the probe found: an idle engine has no batch to notice an outage, so
        without this ``livesignals_dependency_up`` and ``livesignals_ready`` would stay 1 and no alert
        would fire. What a probe lowered, its next success raises again; a batch's own failure stays
        the sink's to clear (:mod:`flows.engine_sink`)."""
        if answered is False:
            if dependency not in self._lowered:
                metrics.DEPENDENCY_RETRIES.labels(dependency).inc()
            self._lowered.add(dependency)
            metrics.DEPENDENCY_UP.labels(dependency).set(0)
            metrics.READY.set(0)
        elif answered is True and dependency in self._lowered:
            self._lowered.discard(dependency)
            metrics.DEPENDENCY_UP.labels(dependency).set(1)
            if not self._lowered:
                metrics.READY.set(1)

    def _partition_count(self, topic: str) -> int:
        """How many partitions ``topic`` has, from metadata at most ``status_interval_s`` (and a minute) old
        (0 while unknown: a
        topic that does not exist has no lag to report and must not make Kafka look unreachable).
        Raises ``KafkaException`` when Kafka does not answer."""
        cached = self._partitions.get(topic)
        if cached is not None and time.monotonic() - cached[1] < min(60.0, self.settings.status_interval_s):
            return cached[0]
        meta = self._consumer.list_topics(topic, timeout=5).topics.get(topic)  # type: ignore[union-attr]
        count = len(meta.partitions) if meta is not None and meta.error is None else 0
        if count:  # a topic not (yet) in the metadata is asked about again next time
            self._partitions[topic] = (count, time.monotonic())
        return count

    def _check_state(self) -> None:
        """Redis answers: does it still hold the owned partitions' state? (:mod:`flows.state_probe`)"""
        try:
            self.losses.tick(self._redis)
        except Exception as exc:  # an outage between the ping and these reads: the next pass asks again
            log.warning("state check between batches failed: %s", exc)

    def _ping_redis(self) -> bool:
        from state.connection import connect

        try:
            if self._redis is None:
                self._redis = connect(self.settings)
            return bool(self._redis.ping())
        except Exception as exc:  # any client error means: not reachable now
            log.warning("Redis did not answer a ping: %s", exc)
            return False

    def status(self) -> dict[str, Any]:
        """The status line's document (also handy in tests)."""
        now = time.monotonic()
        took = PROGRESS.take_interval()
        since, before = self._last_log
        self._last_log = (now, took["messages"])
        lags = dict(self._lags)
        worst = max(lags.items(), key=lambda kv: kv[1], default=None)
        return {
            "event": "status",
            "ts": round(time.time(), 3),
            "uptime_s": round(now - self._started, 1),
            "interval_s": round(now - since, 1),
            "messages_committed": took["messages"],
            "batches_committed": took["batches"],
            "throughput_per_s": round((took["messages"] - before) / max(now - since, 1e-9), 1),
            "lag_messages": sum(lags.values()),
            "lag_max_partition": {"topic": worst[0][0], "partition": worst[0][1], "lag": worst[1]} if worst else None,
            "freshness_s": took["freshness_s"],
            "batch_failures": int(_total(metrics.BATCH_FAILURES)),
            "partitions_owned": self.ownership.owned(),
            "redis": self.checks["redis"],
            "kafka": self.checks["kafka"],
            "triggers_all_suppressed_s": round(self.suppression.duration, 1),
        }

    def log_status(self, event: str = "status", **extra: Any) -> None:
        """Write one JSON status line (``event`` names it: ``status`` or ``shutdown``)."""
        doc = {**self.status(), "event": event, **extra}
        status_log.info(orjson.dumps(doc).decode())


def json_line_handler() -> logging.Handler:
    """A stderr handler that writes the status lines bare: one JSON document per line."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def setup_status_log() -> None:
    """Route ``livesignals.status`` to its own bare-JSON handler (once)."""
    if not status_log.handlers:
        status_log.addHandler(json_line_handler())
        status_log.propagate = False
        status_log.setLevel(logging.INFO)


def _total(metric: Any) -> float:
    return sum(s.value for fam in metric.collect() for s in fam.samples if s.name.endswith("_total"))


def _by_label(metric: Any, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for fam in metric.collect():
        for s in fam.samples:
            if s.name.endswith("_total"):
                out[s.labels[label]] = out.get(s.labels[label], 0.0) + s.value
    return out
