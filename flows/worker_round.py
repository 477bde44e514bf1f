"""One worker's round: what its Kafka source partitions fetched in one pass, handed to the engine sink at once.

Bytewax hands a sink each source partition's batch in a ``write_batch`` call
of its own (bytewax 0.21: a worker reading four partitions gets four calls per
pass, ``tests/unit/test_worker_round.py`` pins it), so a worker's engine
processed its partitions one after another, each batch paying every round trip
a batch pays whatever its size, and a flag read on the last partition waited
for the other partitions' batches. So the source partitions of one worker
*gather*: each reader adds what it fetched to its worker's round
(:meth:`WorkerRound.gather`), and the round is handed out whole, as the batch
of the reader that completes it:

* the last of the worker's partitions (:meth:`WorkerRound.join`) to add to it, or
* a partition that adds to it a second time (one of the others was not polled in
  between: it is handed out then, with this reader's new messages after its own
  earlier ones, so each partition's order holds).

Nothing waits for more input: a round is handed out within the pass over the
worker's partitions that fetched it. A worker is one thread (Bytewax builds and
polls its partitions on it), so the round is kept per thread -- by its id, not
in a ``threading.local``: Bytewax enters Python from its Rust threads with a
short-lived thread state, which drops thread-local data between calls. A released
partition (fenced) leaves the round (:meth:`WorkerRound.leave`). The engine sink
splits a round by partition again (:mod:`flows.one_batch`). The round's time
bound is shared among its partitions (:meth:`WorkerRound.budget`, :mod:`flows.batch_bound`).
With ``one_batch_per_round`` off the source does not gather (:mod:`flows.kafka_source`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Round:
    partitions: set[int] = field(default_factory=set)
    added: set[int] = field(default_factory=set)
    pending: list[Any] = field(default_factory=list)
    fetched: dict[int, int] = field(default_factory=dict)
    """Per partition, how many messages its last poll added."""


class WorkerRound:
    """The calling worker thread's partitions and the round they are gathering."""

    def __init__(self) -> None:
        self._rounds: dict[int, _Round] = {}
        self._lock = threading.Lock()

    @property
    def _mine(self) -> _Round:
        with self._lock:
            return self._rounds.setdefault(threading.get_ident(), _Round())

    def join(self, partition: int) -> None:
        """The calling worker reads ``partition`` (its source partition was built on this thread)."""
        self._mine.partitions.add(partition)

    def leave(self, partition: int) -> None:
        """The calling worker no longer reads ``partition`` (released: fenced, or closed)."""
        self._mine.partitions.discard(partition)
        self._mine.fetched.pop(partition, None)

    def partitions(self) -> int:
        """How many partitions the calling worker reads (at least 1)."""
        return max(1, len(self._mine.partitions))

    def budget(self, partition: int, round_events: int, share: int) -> int:
        """Most events ``partition`` may fetch now: what the round's budget (``round_events``) leaves after what the
        worker's other partitions added in their last poll, and never less than its ``share`` of it.

        Under a backlog every partition fetches its share; a partition lagging alone (a hot key, a replay after a
        STATE LOSS) gets about the whole round, whatever order the partitions are polled in. When the others
        wake up, one round may exceed the budget by their shares; the next is back within it.

        >>> r = WorkerRound()
        >>> for p in range(4): r.join(p)
        >>> r.budget(0, 1000, 250)  # nothing fetched yet: the whole round
        1000
        >>> r.gather(0, ["x"] * 1000) + r.gather(1, []) + r.gather(2, []) + r.gather(3, []) == ["x"] * 1000
        True
        >>> r.budget(0, 1000, 250), r.budget(1, 1000, 250)  # 0 alone busy: all of it; the others their share
        (1000, 250)
        """
        mine = self._mine
        others = sum(n for q, n in mine.fetched.items() if q != partition and q in mine.partitions)
        return max(share, round_events - others)

    def gather(self, partition: int, messages: list[Any]) -> list[Any]:
        """Add what ``partition`` fetched; the whole round when this call completes it, else ``[]``.

        >>> r = WorkerRound()
        >>> r.join(0); r.join(1)
        >>> r.gather(0, ["a0"]), r.gather(1, ["b0", "b1"])
        ([], ['a0', 'b0', 'b1'])
        >>> r.gather(1, ["b2"]), r.gather(1, ["b3"])  # partition 0 not polled in between
        ([], ['b2', 'b3'])
        >>> r.leave(1); r.gather(0, [])  # alone now: handed out at once, nothing to hand
        []
        """
        mine = self._mine
        again = partition in mine.added
        mine.fetched[partition] = len(messages)
        mine.pending.extend(messages)
        mine.added.add(partition)
        if not again and not mine.partitions <= mine.added:
            return []
        out, mine.pending, mine.added = mine.pending, [], set()
        return out

    def reset(self) -> None:
        """Forget every thread's partitions and rounds (tests)."""
        with self._lock:
            self._rounds.clear()


ROUND = WorkerRound()
"""The process's rounds, one per worker thread: gathered by the Kafka source, read by the batch bound."""
