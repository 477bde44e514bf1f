"""Claims seen from both sides: Redis (who owns a partition, where it resumes) and Kafka (what was committed).

After each Redis commit the engine also commits its offsets to its Kafka
consumer group (``settings.consumer_group``): standard lag tooling then sees
it, and Kafka keeps a second record of how far the state went. A claim whose
Redis offsets are behind the group's — or missing while the group has some —
means Redis lost or rolled back data. Then, with ``on_state_loss = "rebuild"``
and Kafka still holding every event from the offset Redis has (the earliest
offset when it has none), the partition is replayed from there: the profiles'
applied offsets and the aggregates' ``applied`` make the replay count each
event once, and outputs are re-emitted with the same ids — except below the
group offsets whose commit metadata this deployment wrote and Kafka's log
confirms (:mod:`flows.confirmed`): those outputs went out, and the replay there
publishes nothing and judges the contact policy at stream time. Otherwise the
process stops with exit code :data:`EXIT_STATE_LOST` and a clear log line.

Exit codes: :data:`EXIT_FENCED` (3) when every partition this process claimed
is now owned by another engine — a supervisor should not restart it blindly,
the other engine is doing the work; :data:`EXIT_STATE_LOST` (4) when state
cannot be rebuilt, or when one partition lost its state more than
``state_loss_max_rebuilds`` times within ``state_loss_window_s`` (a rebuild loop:
:mod:`flows.rebuild_guard`); :data:`EXIT_BAD_CONFIG` (2) when a Redis master may
evict keys (:mod:`state.eviction`: checked at start-up, at every state loss and
every minute). Everything else (Redis or Kafka unreachable) is waited out.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from typing import Any, NoReturn

from confluent_kafka import Consumer, KafkaException, TopicPartition
from redis import RedisError
from redis.exceptions import RedisClusterException

from flows.confirmed import applied_mark, confirmed, metadata
from flows.log_reset import MARK_FIELD, LogMarks, LogReset, check_log_holds, marks_of
from flows.rebuild_guard import RebuildGuard
from livesignals import metrics
from livesignals.settings import Settings
from state import deployments, rebuild
from state.connection import Backoff, connect
from state.eviction import EvictingRedis, check_no_eviction, unknown
from state.keys import Keys
from state.ownership import Claim, claim

log = logging.getLogger(__name__)

EXIT_FENCED = 3
EXIT_STATE_LOST = 4
EXIT_BAD_CONFIG = 2

MEMORY_CHECK_EVERY_S = 60.0
"""How often a running engine reads Redis's eviction policy again (a restart or ``CONFIG SET`` may change it)."""


class StateNotRebuildable(Exception):
    """Redis lost state that Kafka no longer holds (or ``on_state_loss = "stop"``)."""


class KafkaClaimer:
    """Claims partitions in Redis, checks them against Kafka, commits offsets to the consumer group."""

    def __init__(self, settings: Settings, topics: tuple[str, ...]) -> None:
        self.settings = settings
        self.topics = topics
        self.client = connect(settings)
        self.keys = Keys(settings.key_prefix)
        self.redis_retry = Backoff.for_redis(settings, self.client)
        self._consumer = Consumer(
            settings.kafka_client_config(**{"group.id": settings.consumer_group, "enable.auto.commit": False})
        )
        self.kafka_retry = Backoff("kafka", settings.retry_backoff_s, settings.retry_backoff_max_s, (KafkaException,),
                                   probe=lambda: self._consumer.list_topics(timeout=1))  # fmt: skip
        self._lock = threading.Lock()
        self._log_marks = LogMarks()
        self._rebuilds = RebuildGuard(settings.state_loss_max_rebuilds, settings.state_loss_window_s)
        self._memory_checked = time.monotonic()
        self.check_redis_memory()  # waits for Redis like every start-up step; exits if it may evict keys
        self._warned: set[str] = set()
        self._applied: dict[tuple[str, int], tuple[int, str]] = {}
        """(topic, partition) -> (offset, its metadata: :func:`flows.confirmed.metadata`) last committed to the group
        by this process, or found there at the claim."""
        self._committed_here: set[tuple[str, int]] = set()
        """(topic, partition) this process committed to the group: a loss it finds there is the sink's to mark."""
        self._floor: dict[tuple[str, int], int] = {}
        """(topic, partition) -> the highest offset this process committed to the group, or found there confirmed
        by Kafka's log at a loss: a replay's commits never move the group below it (:meth:`commit_offsets`)."""
        self._wait_for_other_deployments()  # another key_prefix on our topics (state.deployments)

    def __call__(self, partition: int) -> Claim:
        """Claim ``partition``; if Redis is behind the consumer group, rebuild or stop (see the module)."""
        cluster = self.settings.redis_cluster
        held = self.redis_retry.run(lambda: claim(self.client, self.keys, partition, self.topics, cluster))
        if held.lost_nodes:
            why = f"Redis Cluster masters lost their data (markers {', '.join(held.lost_nodes)})"
            committed = self.kafka_retry.run(lambda: self._committed(partition))
            self._carry_metadata(partition, committed)
            self._confirm_published(held, committed)  # the replay from 0 publishes nothing below them (10h L3)
            if self._rebuild_whole(held, why, {}):  # exact, and resumed by the next claim after a crash
                log.info("claimed partition %d (epoch %s), rebuilding it from offset 0", partition, held.epoch)
                return held
            held.replay_from = self.resolve_loss(partition, dict.fromkeys(self.topics, 0), why)
            log.info("claimed partition %d (epoch %s), replaying from %s", partition, held.epoch, held.replay_from)
            return held
        committed = self.kafka_retry.run(lambda: self._committed(partition))
        group = {t: offset for t, (offset, _) in committed.items()}
        self._carry_metadata(partition, committed)
        behind = {
            t: (held.offsets[t], k) for t, k in group.items() if k >= 0 and (held.offsets[t] or 0) < k
        }  # fmt: skip
        why = ""
        if behind:
            detail = ", ".join(f"{t}[{partition}] Redis {r} < Kafka group {k}" for t, (r, k) in behind.items())
            why = f"Redis is behind the committed offsets: {detail}"
            self._confirm_published(held, committed)  # the replay below them publishes nothing (10h L3)
        if cluster and self._rebuild_whole(held, why, group):
            log.info("claimed partition %d (epoch %s), rebuilding it from offset 0 (profiles written before are "
                     "stale until %s)", partition, held.epoch, held.stale_until)  # fmt: skip
            return held
        if held.rolled_back:  # profiles on those masters are older than the resume offsets (state.watermarks)
            rolled = f"Redis Cluster masters rolled back (applied watermarks of {', '.join(held.rolled_back)} " \
                     f"behind the resume offsets {held.rebuild_until})"  # fmt: skip
            starts: dict[str, int | None] = dict(held.replay_from or {})  # <= Redis's resume offsets
            held.replay_from = self.resolve_loss(partition, starts, "; ".join(filter(None, [why, rolled])))
        elif behind:
            held.replay_from = self.resolve_loss(partition, held.offsets, why)
        self._check_log_holds(partition, held.offsets, held.log_marks)  # durability (#10 break-tests F3, G1)
        log.info("claimed partition %d (epoch %s), resuming at %s", partition, held.epoch, held.offsets)
        return held

    def _confirm_published(self, held: Claim, committed: dict[str, tuple[int, str | None]]) -> None:
        """A loss found at a claim: mark as published the group's offsets that this deployment committed, checked
        against the record in Kafka's log (:mod:`flows.confirmed`); for the others, one WARNING line."""
        partition = held.partition
        if self.settings.republish_replays:
            return

        def check() -> tuple[dict[str, int], dict[str, str]]:
            with self._lock:
                return confirmed(self._consumer, partition, committed, self.settings.key_prefix,
                                 self._watermarks_unlocked)  # fmt: skip

        ok, why = self.kafka_retry.run(check)
        held.mark_published(ok)
        with self._lock:  # a loss found while running: the sink marks what this process committed itself
            for topic, offset in ok.items():
                self._floor[(topic, partition)] = max(self._floor.get((topic, partition), -1), offset)
            why = {t: reason for t, reason in why.items() if (t, partition) not in self._committed_here}
            found_at_start = not any((t, partition) in self._committed_here for t in ok)
        # the secret signing the waiting reroutes went with Redis: the replay routes their events again
        held.reroute_again = bool(ok) and found_at_start and not self.settings.repartition_secret
        metrics.GROUP_OFFSETS_CHECKED.labels("confirmed").inc(len(ok))
        metrics.GROUP_OFFSETS_CHECKED.labels("unconfirmed").inc(len(why))
        if why:
            log.warning("STATE LOSS partition %d: the consumer group's offsets are not confirmed for %s: the replay "
                        "below them judges by the %s clock and publishes again (a decision may be re-sent with "
                        "another verdict, caps rebuilt from the replay's; README, Redis losing data)", partition,
                        ", ".join(f"{t} ({reason})" for t, reason in why.items()),
                        self.settings.policy_clock)  # fmt: skip
        if ok:
            log.info(
                "STATE LOSS partition %d: the consumer group's offsets %s are confirmed by Kafka's log: the "
                "replay below them rebuilds state at stream time and publishes nothing again",
                partition,
                ok,
            )

    def _carry_metadata(self, partition: int, committed: dict[str, tuple[int, str | None]]) -> None:
        """Keep the group's metadata of this deployment's commits, to send it again with the same offset (a restart
        that commits nothing new before SIGTERM would otherwise blank it). Checked against the log only at a loss."""
        with self._lock:
            for topic, (offset, meta) in committed.items():
                known = self._applied.get((topic, partition), (-1, ""))[0]
                if offset > known and applied_mark(meta, self.settings.key_prefix, offset)[0] is not None:
                    self._applied[(topic, partition)] = (offset, meta or "")

    def _check_log_holds(
        self, partition: int, offsets: dict[str, int | None], marks: dict[str, str] | None = None
    ) -> None:
        """Kafka's log must still hold where ``partition`` resumes, and the records the engine applied
        (:mod:`flows.log_reset`); else the claim fails."""

        def check() -> None:
            with self._lock:
                check_log_holds(self._consumer, partition, offsets, self._watermarks_unlocked, marks=marks)

        try:
            self.kafka_retry.run(check)  # a broker still starting is waited out, as for every claim step
        except LogReset as exc:
            raise StateNotRebuildable(str(exc)) from None

    def _rebuild_whole(self, held: Claim, why: str, group: dict[str, int]) -> bool:
        """Redis Cluster: rebuild the partition as a whole when its ``{part:<p>}`` master lost or rolled back its
        data and Kafka holds every event (:mod:`state.rebuild`); False leaves it to the usual resume or replay.

        Profiles are stale until the replay passes the end of the log as Kafka reports it, or the group's or
        Redis's offsets if further (one broker, the embedded Tansu, reports 1 as every high watermark), or the
        highest offset any owner committed on a master (:func:`state.watermarks.highest_applied`): an older
        owner's surviving profiles may have applied events past the group's offsets."""
        partition = held.partition
        fresh = all(offset is None for offset in held.offsets.values())
        if not (why or fresh):
            return False
        marks = {t: self.kafka_retry.run(functools.partial(self._watermarks, t, partition)) for t in self.topics}
        lows = {t: m[0] for t, m in marks.items()}
        reported = {t: max(m[1], group.get(t, -1)) for t, m in marks.items()}
        highs = self.redis_retry.run(lambda: rebuild.stale_until(self.client, held, reported))
        if not rebuild.wanted(held, bool(why), lows, highs):
            return False
        if why:  # a loss: counted, logged and bounded like every rebuild (never on a first start)
            self.resolve_loss(partition, dict.fromkeys(self.topics), why + "; rebuilding the partition as a whole")
        self.redis_retry.run(lambda: rebuild.begin(self.client, self.keys, held, highs))
        return True

    def resolve_loss(self, partition: int, offsets: dict[str, int | None], why: str) -> dict[str, int]:
        """Where to replay ``partition`` from after a loss; raises :class:`StateNotRebuildable` if nowhere."""
        self.check_redis_memory()  # eviction is a configuration error, not a loss to rebuild from
        starts: dict[str, int] = {}
        for topic in self.topics:
            low = self.kafka_retry.run(functools.partial(self._low_watermark, topic, partition))
            start = offsets.get(topic)
            if self.settings.on_state_loss == "stop" or (start if start is not None else 0) < low:
                metrics.STATE_LOSS.labels("stopped").inc()
                raise StateNotRebuildable(
                    f"{why}; cannot rebuild {topic}[{partition}] (Redis resumes at {start}, Kafka keeps offsets "
                    f">= {low}, on_state_loss={self.settings.on_state_loss}): restore Redis from a backup or "
                    f"accept the loss by resetting the consumer group"
                )
            starts[topic] = start if start is not None else low
        if not self._rebuilds.allow(partition):
            metrics.STATE_LOSS.labels("stopped").inc()
            raise StateNotRebuildable(
                f"{why}; partition {partition} lost its state more than {self.settings.state_loss_max_rebuilds} "
                f"times in {self.settings.state_loss_window_s:.0f}s: something keeps deleting Redis's data (an "
                f"evicting maxmemory-policy, a Redis restarting without persistence, a flush); stopping instead of "
                f"rebuilding in a loop"
            )
        metrics.STATE_LOSS.labels("rebuilt").inc()
        log.error("STATE LOSS partition %d: %s; rebuilding by replaying from Kafka at %s", partition, why, starts)
        return starts

    def remember_log(self, partition: int, messages: list[Any]) -> None:
        """After a commit: record in ``partition``'s meta which records were applied (at most every
        :data:`flows.log_reset.MARK_EVERY_S`; one attempt: a failure waits for the next commit)."""
        if not messages or not self._log_marks.due(partition):
            return
        fields = {MARK_FIELD + t: mark for t, mark in marks_of(messages).items()}
        try:
            self.client.hset(self.keys.partition_meta(partition), mapping=fields)
        except (RedisError, RedisClusterException) as exc:
            self._log_marks.forget(partition)
            log.debug("log marks not written (%s); next commit tries again", exc)

    def pin_log_marks(self, partition: int, marks: dict[str, str]) -> None:
        """A running check found the log reset (:mod:`flows.log_watch`): write the applied records' fingerprints
        back as ``partition``'s log marks, so that a restart's claim stops too. One attempt, logged if it fails."""
        self._log_marks.freeze(partition)
        try:
            self.client.hset(self.keys.partition_meta(partition), mapping={MARK_FIELD + t: m for t, m in marks.items()})
        except (RedisError, RedisClusterException) as exc:
            log.error("log marks of partition %d not written back (%s): a restart may not notice the reset", partition,
                      exc)  # fmt: skip

    def check_redis_memory(self) -> None:
        """Exit with :data:`EXIT_BAD_CONFIG` if a Redis master may evict keys (waits while Redis is down)."""
        try:
            policies = self.redis_retry.run(lambda: check_no_eviction(self.client, self.settings.redis_cluster))
        except EvictingRedis as exc:
            exit_now(EXIT_BAD_CONFIG, f"CONFIGURATION ERROR: {exc}")
        if unknown(policies):
            log.warning("cannot read maxmemory-policy of %s (CONFIG and INFO refused): it must be noeviction",
                        unknown(policies))  # fmt: skip

    def watch_redis_memory(self) -> None:
        """:meth:`check_redis_memory` at most every :data:`MEMORY_CHECK_EVERY_S`, one attempt (the next batch
        tries again): a Redis restarted or reconfigured since start-up is caught before it evicts for long."""
        now = time.monotonic()
        if now - self._memory_checked < MEMORY_CHECK_EVERY_S:
            return
        self._memory_checked = now
        try:
            check_no_eviction(self.client, self.settings.redis_cluster)
        except EvictingRedis as exc:
            exit_now(EXIT_BAD_CONFIG, f"CONFIGURATION ERROR: {exc}")
        except (RedisError, RedisClusterException) as exc:
            log.debug("eviction policy not read (%s); next batch tries again", exc)
            self._memory_checked = 0.0

    def _wait_for_other_deployments(self) -> None:
        """Register this deployment, first waiting (unregistered) while another ``key_prefix`` reads our topics
        through our consumer group; then refresh the entry every ``REFRESH_S`` in the background."""
        said = 0.0
        while True:
            try:
                self.redis_retry.run(lambda: self.check_deployments(force=False))
                break
            except deployments.SharedGroup as exc:
                if time.monotonic() - said > 30.0:
                    said = time.monotonic()
                    log.error("TWO DEPLOYMENTS, one consumer group: %s; waiting until it stops", exc)
                time.sleep(2.0)
        threading.Thread(target=self._refresh_deployment, name="deployment-entry", daemon=True).start()

    def _refresh_deployment(self) -> None:
        while True:
            time.sleep(deployments.REFRESH_S)
            try:
                self.check_deployments(force=True)
            except deployments.SharedGroup as exc:  # both started at once: say so, keep running
                if str(exc) not in self._warned:
                    self._warned.add(str(exc))
                    log.error("TWO DEPLOYMENTS, one consumer group: %s", exc)
            except (RedisError, RedisClusterException) as exc:
                log.debug("deployment entry not refreshed (%s)", exc)

    def check_deployments(self, force: bool = True) -> None:
        """Register (or refresh) this deployment, warning once per other deployment on our topics; raises
        :class:`~state.deployments.SharedGroup` if one uses our consumer group (see there for ``force``)."""
        s = self.settings
        warnings = deployments.register(self.client, s.key_prefix, s.input_topics, s.consumer_group, force=force,
                                        repartition=s.repartition_topic)  # fmt: skip
        for warning in warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                log.warning("TWO DEPLOYMENTS: %s", warning)

    def leave(self) -> None:
        """At a clean shutdown: drop this deployment's entry (one attempt; a stale one expires by itself)."""
        try:
            deployments.leave(self.client, self.settings.key_prefix)
        except (RedisError, RedisClusterException) as exc:
            log.debug("deployment entry not removed (%s)", exc)

    def commit_offsets(
        self,
        offsets: dict[tuple[str, int], int],
        asynchronous: bool = True,
        applied: dict[tuple[str, int], str] | None = None,
    ) -> None:
        """Commit the engine's next offsets to its Kafka consumer group (asynchronous unless at shutdown;
        never fails a batch), each with metadata naming the record applied below it (``applied``: the
        :func:`~flows.log_reset.fingerprint` of the record at offset - 1; remembered, so a later commit of the same
        offset, at SIGTERM, carries it too): a claim that finds Redis lost its data checks it
        (:mod:`flows.confirmed`).

        Never below what this process committed before, or found confirmed at a loss (``_floor``): a STATE LOSS
        replay's commits moved the group back, so a crash during the replay left Redis and the group agreeing,
        no loss was seen at the restart, and the rest of the replay published again by the wall clock
        (break-test 10i, P2: 353 decisions re-sent as ``stale``, caps broken)."""
        with self._lock:
            offsets = {pos: o for pos, o in offsets.items() if o >= self._floor.get(pos, -1)}
        if not offsets:
            return
        try:
            with self._lock:
                for pos, o in offsets.items():
                    self._floor[pos] = o
                for pos, mark in (applied or {}).items():
                    if pos in offsets:
                        self._applied[pos] = (offsets[pos], metadata(self.settings.key_prefix, mark))
                self._committed_here.update(offsets)
                listed = [TopicPartition(t, p, o, metadata=self._metadata((t, p), o)) for (t, p), o in offsets.items()]
                if asynchronous:
                    self._consumer.commit(offsets=listed, asynchronous=True)
                else:
                    self._consumer.commit(offsets=listed, asynchronous=False)
                self._consumer.poll(0)
            metrics.KAFKA_OFFSET_COMMITS.labels("sent").inc()
        except KafkaException as exc:
            metrics.KAFKA_OFFSET_COMMITS.labels("failed").inc()
            log.warning("could not commit offsets to the consumer group: %s", exc)

    def _metadata(self, pos: tuple[str, int], offset: int) -> str:
        """The group commit's metadata for ``offset`` of ``pos`` (empty when the applied record is not known)."""
        at, meta = self._applied.get(pos, (-1, ""))
        return meta if at == offset else ""

    def _committed(self, partition: int) -> dict[str, tuple[int, str | None]]:
        with self._lock:
            got = self._consumer.committed([TopicPartition(t, partition) for t in self.topics], timeout=10)
        return {tp.topic: (tp.offset, tp.metadata) for tp in got}

    def _low_watermark(self, topic: str, partition: int) -> int:
        return self._watermarks(topic, partition)[0]

    def _watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        with self._lock:
            return self._watermarks_unlocked(topic, partition)

    def _watermarks_unlocked(self, topic: str, partition: int) -> tuple[int, int]:
        low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        return int(low), int(high)

    def close(self) -> None:
        """Close the Kafka client."""
        self._consumer.close()


def exit_now(code: int, message: str) -> NoReturn:
    """Log ``message`` and end the whole process at once with ``code`` (no further writes, from any worker)."""
    log.critical(message)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(code)
