"""A batch bounded by time as well as size: the source reads what the engine can process in ``batch_max_s``.

A batch's flags reach Kafka and Redis only once the whole batch is processed,
and a worker processes its partitions' batches one after another. Bounded by
size alone (``batch_size``, 5,000 by default), a batch taken from a backlog --
after a restart, a stall, a burst -- holds seconds of work: every flag in it
waits for all of it, and every other partition of the worker waits too. So the
sink measures what an event costs (:meth:`BatchBound.observe`: the engine's own
wall seconds decoding and applying a batch, per event, from batches of at least
:data:`MIN_EVENTS` events), and the source reads at most ``batch_max_s`` worth of
events per batch (:meth:`BatchBound.limit`), never fewer than :data:`MIN_EVENTS`.
The round trips a batch pays whatever its size (the state check, the loads, the models'
catch-up, Kafka's confirmation, the commit: :attr:`operators.engine.Engine.work_seconds`)
are not counted: a smaller batch cannot shorten them, and
counted in, a slow Redis made every batch 100 events and capped a worker near
100 per round-trip time (break-test 16a, A3).
Until a batch was measured (a start on a backlog) a batch holds at most
:data:`MIN_EVENTS` events: the first one measures, so the first round of a
restart is bounded too. Small live batches are not touched: they never reach the
bound. ``batch_max_s`` 0 turns the bound off (the size alone, as before).

**A round, not a partition.** A worker's sink processes what all of its
partitions fetched in one activation as one batch (:mod:`flows.one_batch`), or
their batches one after another: either way a flag waits for the whole round.
So the round is what ``batch_max_s`` allows: each source partition reads what
the worker's other partitions left of it in their last poll, at least its share
(the bound divided by the partitions its worker reads:
:meth:`flows.worker_round.WorkerRound.budget`). With ``one_batch_per_round`` off
each partition's batch has the whole bound, as before rounds.

**Up fast, down slowly.** A cheap batch (a STATE LOSS replay of events already
applied, ~95 µs an event; dead-lettered garbage, ~18 µs) says little about the
next one, a dear one says the next may be as dear: the measured cost follows
a rise at once and a fall by :data:`SMOOTHING` (break-test C4: smoothed both
ways, batches after a replay ran 2-4x past ``batch_max_s`` for several batches).

Nothing waits for more input: the source hands out what Kafka has fetched (up
to the limit) at once. What the bound leaves unread stays in the consumer's
queue for the next batch, so the order per partition, the commit order
(publish, confirm, commit) and what a batch commits are unchanged.
"""

from __future__ import annotations

import threading

MIN_EVENTS = 100
"""Fewest events a bounded batch holds, and the fewest a batch must hold to be measured: smaller batches would
make the fixed cost of a batch look like a cost per event, shrink the bound, and pay that fixed cost more often."""

SMOOTHING = 0.2
"""Weight of a cheaper newest batch in the cost per event (an exponential moving average); a dearer one is
taken as it is."""


class BatchBound:
    """The measured wall seconds per event of the engine's batches, and the batch size they allow (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.per_event_s = 0.0
        """Smoothed wall seconds per event; 0 until a batch of :data:`MIN_EVENTS` was measured."""

    def observe(self, events: int, seconds: float) -> None:
        """A batch of ``events`` took ``seconds`` of wall time (ignored under :data:`MIN_EVENTS` events)."""
        if events < MIN_EVENTS or seconds <= 0:
            return
        cost = seconds / events
        with self._lock:
            old = self.per_event_s
            self.per_event_s = cost if cost >= old else old + SMOOTHING * (cost - old)

    def limit(self, batch_size: int, max_s: float, shares: int = 1) -> int:
        """Most events to read for the next batch: ``batch_size``, or fewer when ``max_s`` of them would not fit;
        ``shares``: the partitions read in the same round, each taking its share of ``max_s``.

        >>> b = BatchBound()
        >>> b.limit(5000, 0.25), b.limit(5000, 0)  # nothing measured yet: a batch just large enough to measure
        (100, 5000)
        >>> b.observe(1000, 2.0)  # 2 ms an event
        >>> b.limit(5000, 0.25), b.limit(5000, 0), b.limit(50, 0.25), b.limit(5000, 0.01)
        (125, 5000, 50, 100)
        >>> b.limit(5000, 1.0), b.limit(5000, 1.0, shares=4), b.limit(5000, 0.25, shares=4)
        (500, 125, 100)
        """
        per_event = self.per_event_s
        if max_s <= 0:
            return batch_size
        if per_event <= 0:  # not measured yet (a start on a backlog): measure first, on the smallest batch that counts
            return min(batch_size, MIN_EVENTS)
        return min(batch_size, max(MIN_EVENTS, int(max_s / max(shares, 1) / per_event)))

    def reset(self) -> None:
        """Forget what was measured (tests)."""
        with self._lock:
            self.per_event_s = 0.0


BOUND = BatchBound()
"""The process's bound: measured by the engine sink, read by the Kafka source's partitions."""
