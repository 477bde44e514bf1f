"""One engine batch per worker round: the round's partitions checked, processed and committed together.

A worker's Kafka source partitions hand the engine sink what they fetched in
one pass as one round (:mod:`flows.worker_round`). Processed partition by
partition, a live round of four partitions paid every round trip a batch pays
whatever its size four times (the state check, the loads, the models' catch-up,
Kafka's confirmation, the commit, the consumer group's offsets), and a flag
read on the last partition waited for the other three batches. So when every
partition of the round is *plain* (:func:`plain`), the round is one batch:

1. one state check of all its partitions (:meth:`state.store.ProfileStore.verify`
   with several partitions: their meta hashes in one pipelined round trip; on
   Redis Cluster one per master holding them, then each partition's masters' markers);
2. one :meth:`operators.engine.Engine.process` of all their messages (each
   partition's in its order): one load, one publish and Kafka confirmation,
   one commit, which checks and writes every partition's claim, aggregates and
   resume offsets (one MULTI/EXEC under WATCH of every partition's meta; Redis
   Cluster: :mod:`state.cluster_commit`, every step per partition);
3. one commit of the consumer group's offsets.

A partition that is not plain -- not owned or released, rewinding after a
STATE LOSS, replaying below what Kafka confirmed (``Claim.published``), carrying
replayed reroutes, a probe or a rewind mark -- makes the whole round go
partition by partition, as before (``one_batch_per_round`` off: always).

**What a failure of one partition costs the others.** Any exception in the
combined batch (Fenced, StateLost, Redis or Kafka out, a bug) drops the
engine's caches (``Engine.forget``, as the retry path does) and processes the
round again partition by partition, where each partition meets its own check:

* found by the check (the common case: a claim or a loss between two rounds):
  nothing was computed or published; the round costs the others one round trip;
* found later (fenced or lost between the check and the commit, or an outage
  the store's own retries did not cover): the round's outputs went out
  once and its state was not committed -- one Redis: the transaction wrote
  nothing; Redis Cluster: the commit may have reached some partitions, whose
  events are then skipped as applied, and the aggregates of the others are
  taken from their write-ahead records first (:mod:`state.write_ahead`), so
  the replay counts none twice. The other partitions then publish their
  outputs again with the same ids (at least once, as after an outage retry or
  a crash) and commit their state once; the fenced partition's check fails
  first, so it publishes nothing after the engine saw it fenced; the lost one
  is rewound. Nothing is lost: a partition commits its resume offsets only
  with its state.

``tests/flows/test_one_batch.py`` (a fence at the check and at the commit, on one Redis),
``tests/integration/test_cluster_one_batch.py`` (a fence in the middle of a Cluster commit: without the
write-ahead step the others' aggregates came out short) and ``tests/integration/test_ownership.py`` (a claim
by another owner while an engine runs combined rounds) prove it.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from flows.rewind import is_rewind_mark
from flows.state_probe import is_probe
from livesignals import metrics
from livesignals.contract import RawMessage
from state import write_ahead
from state.ownership import Fenced, StateLost

log = logging.getLogger(__name__)


def plain(sink: Any, partition: int, messages: list[RawMessage]) -> bool:
    """Whether ``partition``'s messages of the round take today's plain path: owned, not rewinding, no marks,
    nothing below what Kafka confirmed before a loss, no replayed reroutes."""
    if partition in sink._rewinding or any(is_rewind_mark(m) or is_probe(m) for m in messages):
        return False
    if sink.ownership is None:
        return True
    held = sink.ownership.get(partition)
    if held is None or held.released:
        return False
    if sink.settings.republish_replays:
        return True
    if held.published is not None and not all(held.unpublished(m.origin.topic, m.origin.offset) for m in messages):
        return False
    return not sink._replayed_reroutes(messages)


def write_round(sink: Any, rounds: dict[int, list[RawMessage]]) -> bool:
    """Process ``rounds`` (partition -> its messages) as one batch; False when it was not (one partition, one not
    plain, or the combined batch failed: then the caller processes it partition by partition)."""
    if len(rounds) < 2:
        return False
    if not all(plain(sink, p, messages) for p, messages in rounds.items()):
        metrics.ENGINE_ROUNDS.labels("split").inc()
        return False
    messages = [m for batch in rounds.values() for m in batch]
    partitions = sorted(rounds)
    begun = time.time()
    stamps = [m.origin.timestamp_ms for m in messages if m.origin.timestamp_ms > 0]
    if stamps:
        metrics.BATCH_STAGE_SECONDS.labels("wait").observe(max(begun - min(stamps) / 1000, 0.0))
    engine = sink.engine
    worked = getattr(engine, "work_seconds", 0.0)
    try:
        checked = time.perf_counter()
        verify = getattr(engine.store, "verify", None)
        if verify is not None:
            verify(*partitions)  # owned, and Redis still holds our state: else no output goes out
        metrics.BATCH_STAGE_SECONDS.labels("check").observe(time.perf_counter() - checked)
        engine.process(messages)
    except Exception as exc:  # each partition meets its own check and fate: see the module docstring
        engine.forget()
        metrics.ENGINE_ROUNDS.labels("fallback").inc()
        log.warning("round of partitions %s not processed as one batch (%s: %s); partition by partition",
                    partitions, type(exc).__name__, exc)  # fmt: skip
        _settle_write_ahead(sink, partitions)
        return False
    metrics.ENGINE_ROUNDS.labels("combined").inc()
    sink._committed(rounds, worked)
    return True


def _settle_write_ahead(sink: Any, partitions: list[int]) -> None:
    """Redis Cluster, after a failed combined batch: write the aggregates its commit recorded ahead for the
    partitions still ours (exactly once, :func:`state.write_ahead.apply_pending`), so that their replay, which
    skips the events whose profiles the commit reached, counts every event once."""
    store = sink.engine.store
    if not sink.settings.redis_cluster or sink.ownership is None or not hasattr(store, "verify"):
        return
    for partition in partitions:
        held = sink.ownership.get(partition)
        if held is None or held.released:
            continue
        try:  # waits Redis out: the partition's own commit would drop the record unapplied
            (store.retry or _once)(functools.partial(_settle, store, partition, list(held.offsets)))
        except (Fenced, StateLost):
            continue  # its own batch finds out


def _settle(store: Any, partition: int, topics: list[str]) -> None:
    store.verify(partition)  # still ours: else the next owner's claim applies it
    write_ahead.apply_pending(store.client, store.keys, partition, topics)


def _once(run: Any) -> None:
    run()
