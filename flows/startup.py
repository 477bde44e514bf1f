"""Where a start's seconds go: steps from the process's start to its first commit (issue #10).

Kill -9 recovery is a new process's start, so its time is the sum of what the
start-up does before the first batch is committed. :data:`STARTUP` records,
once per process, when each step ended, in seconds since the process started
(the kernel's record of it, so the interpreter's own start and the imports
count too); ``livesignals_startup_seconds{step}`` holds each figure, and one
INFO line (logger ``flows.startup``) lists them all once the first batch is
committed. Steps, in the order they usually end:

* ``imports``: the dataflow's ``build()`` begins (interpreter, Bytewax and the engine's imports);
* ``redis_checks``: the claimer's Redis checks are done (eviction policy, deployments registry);
* ``warm_up``: the background warm-up is done (event validators loaded or compiled, River with models on);
* ``kafka_metadata``: the topics' partition counts are read (the source's ``list_parts``);
* ``engine``: the engine is built (warm-up joined, publisher, partition counts, rules);
* ``claimed``: every partition of this worker is claimed (Redis epoch, Kafka group offsets) and assigned;
* ``first_batch``: the first messages reach the engine;
* ``first_commit``: they are committed (Redis, then the consumer group).

Steps happen in several threads and workers: each is recorded the first time it ends.

>>> clock = StartupClock(started_s=100.0, clock=lambda: 101.5)
>>> clock.mark("imports")
1.5
>>> clock.mark("imports")  # recorded once
1.5
>>> clock.steps
{'imports': 1.5}
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable

from livesignals import metrics

log = logging.getLogger(__name__)

STEPS = ("imports", "redis_checks", "warm_up", "kafka_metadata", "engine", "claimed", "first_batch", "first_commit")
"""The steps recorded, in the order they usually end."""


def process_started_s() -> float:
    """Wall-clock time (``time.time()``) this process started; now where the kernel does not say (not Linux).

    Linux keeps a process's start in clock ticks since boot (``/proc/self/stat``, field 22): with the
    uptime read now, that gives the start to 1/100 s, before the interpreter ran a line.
    """
    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        with open("/proc/uptime") as f:
            uptime_s = float(f.read().split()[0])
        now = time.time()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # fields after the name start at field 3
        return now - uptime_s + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


class StartupClock:
    """Seconds from the process's start to the end of each start-up step (thread-safe; each step once)."""

    def __init__(self, started_s: float | None = None, clock: Callable[[], float] = time.time) -> None:
        self.started_s = process_started_s() if started_s is None else started_s
        self.clock = clock
        self.steps: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        """CPU seconds of the whole process (every thread) when each step ended: what a loaded machine multiplies."""
        self._lock = threading.Lock()
        self._logged = False

    def mark(self, step: str, again: bool = False) -> float:
        """Record that ``step`` ended now, unless recorded before (``again``: record the latest end, for a
        step done once per partition); its seconds since the process started."""
        with self._lock:
            if (again and not self._logged) or step not in self.steps:
                self.steps[step] = round(max(self.clock() - self.started_s, 0.0), 3)
                self.cpu[step] = round(time.process_time(), 3)
                metrics.STARTUP_SECONDS.labels(step).set(self.steps[step])
            return self.steps[step]

    def committed(self) -> None:
        """The first batch was committed: record it and log every step once (later calls cost a lookup)."""
        if self._logged:
            return
        self.mark("first_commit")
        with self._lock:
            if self._logged:
                return
            self._logged = True
            ordered = sorted(self.steps.items(), key=lambda kv: kv[1])
        log.info("start-up (s since the process started, wall/cpu): %s",
                 ", ".join(f"{k} {v:.2f}/{self.cpu[k]:.2f}" for k, v in ordered))  # fmt: skip


def read_steps(log_text: str) -> dict[str, tuple[float, float]]:
    """The steps of the engine's start-up line (this module) in ``log_text``: step -> (wall, cpu).

    >>> read_steps("... INFO flows.startup: start-up (s since the process started, wall/cpu): imports 1.61/0.70, "
    ...               "first_commit 2.94/1.19")
    {'imports': (1.61, 0.7), 'first_commit': (2.94, 1.19)}
    """
    for line in log_text.splitlines():
        if "flows.startup: start-up" in line:
            listed = line.split("): ", 1)[1]
            return {step: (float(wall), float(cpu)) for step, wall, cpu in
                    (re.split(r"[ /]", part.strip()) for part in listed.split(","))}  # fmt: skip
    return {}


STARTUP = StartupClock()
"""This process's start-up clock (one per process, like the metrics registry)."""
