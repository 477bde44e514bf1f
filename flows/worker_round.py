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
splits a round by partition again (:mod:`flows.one_batch`).
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

    def partitions(self) -> int:
        """How many partitions the calling worker reads (at least 1)."""
        return max(1, len(self._mine.partitions))

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
