"""Where a machine's CPU went over a span: the engine's process, the benchmark's own, and the rest (Linux ``/proc``).

On a 2-core machine the broker, Redis and the benchmark's producer run beside the engine: a live
latency figure is only read right next to how much of the machine each of them took. Measured here
(``bench.latency`` at 1,544 events/s): engine 83 % of a core, the broker 61-89 % (Apache Kafka, Tansu),
the benchmark ~20 %: the machine was nearly saturated at "50 % of capacity".

>>> span = CpuSpan(os.getpid())
>>> shares = span.stop()
>>> sorted(shares) == ["bench", "engine", "machine", "others"]
True
"""

from __future__ import annotations

import os
import time

__all__ = ["CpuSpan"]


def _machine_busy_s() -> float:
    """Seconds of CPU spent busy by the whole machine (every core), from ``/proc/stat``."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _process_s(pid: int) -> float:
    """Seconds of CPU (user + system) spent by ``pid`` so far; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuSpan:
    """Started at construction; :meth:`stop` gives each party's CPU over the span in cores (1.0 = one core busy):
    ``engine`` (the process ``engine_pid``), ``bench`` (this process), ``others`` (the rest of the machine:
    broker, Redis, anything else) and ``machine`` (all of it; at most the number of cores)."""

    def __init__(self, engine_pid: int) -> None:
        self.engine_pid = engine_pid
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        return time.monotonic(), _machine_busy_s(), _process_s(self.engine_pid), _process_s(os.getpid())

    def stop(self) -> dict[str, float]:
        """The shares, in cores, rounded to 0.01."""
        end = self._sample()
        wall = max(end[0] - self._start[0], 1e-9)
        machine, engine, bench = ((b - a) / wall for a, b in zip(self._start[1:], end[1:], strict=True))
        return {name: round(value, 2) for name, value in
                (("engine", engine), ("bench", bench), ("others", max(machine - engine - bench, 0.0)),
                 ("machine", machine))}  # fmt: skip
