"""A stop to rebuild loops: a partition whose state keeps being lost is not rebuilt for ever.

Rebuilding after Redis lost state is right once (Redis restarted empty, a
failover to a lagging replica). A partition found lost again and again means
something keeps deleting what the engine writes — an evicting
``maxmemory-policy`` changed at run time, a Redis restarting in a loop, a job
flushing keys — and rebuilding only replays the same events into the same hole.
More than ``max_rebuilds`` rebuilds of one partition within ``window_s`` seconds
is such a loop: the engine stops (exit code 4) and says why.

>>> now = [0.0]
>>> guard = RebuildGuard(max_rebuilds=2, window_s=60, clock=lambda: now[0])
>>> [guard.allow(7) for _ in range(3)]
[True, True, False]
>>> guard.allow(8)  # counted per partition
True
>>> now[0] = 61.0  # the window moved past the old rebuilds
>>> guard.allow(7)
True
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RebuildGuard:
    """Counts state-loss rebuilds per partition within a sliding window."""

    def __init__(self, max_rebuilds: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_rebuilds = max_rebuilds
        self.window_s = window_s
        self.clock = clock
        self._at: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, partition: int) -> bool:
        """Record one more rebuild of ``partition``; False if that makes more than ``max_rebuilds`` in the window."""
        now = self.clock()
        with self._lock:
            times = self._at.setdefault(partition, deque())
            while times and now - times[0] >= self.window_s:
                times.popleft()
            times.append(now)
            return len(times) <= self.max_rebuilds
