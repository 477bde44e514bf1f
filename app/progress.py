"""Progress of long commands on stderr: a line every few seconds, so a quiet terminal means a stuck command.

Stdout stays for results (tables, JSON) that scripts read.

>>> import io
>>> out = io.StringIO()
>>> p = Progress("produced", total=10, every_s=0, stream=out)
>>> p.add(4)
>>> out.getvalue().split(" (")[0]
'produced 4/10 events'
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

T = TypeVar("T")

EVERY_S = 5.0
"""Seconds between two progress lines."""


class Progress:
    """Counts items and prints ``<verb> N[/TOTAL] <unit> (R/s)`` to stderr at most every ``every_s`` seconds."""

    def __init__(
        self,
        verb: str,
        total: int | None = None,
        unit: str = "events",
        every_s: float | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        self.verb, self.total, self.unit = verb, total, unit
        self.every_s = EVERY_S if every_s is None else every_s
        self.stream = stream
        self.count = 0
        self.started = self._last = time.monotonic()

    def add(self, n: int = 1) -> None:
        """Count ``n`` more; print a line if ``every_s`` passed since the last one."""
        self.count += n
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.line()

    def line(self) -> None:
        """Print the current count now."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        stream = self.stream or sys.stderr
        print(f"{self.verb} {self.count}{of} {self.unit} ({self.count / elapsed:,.0f}/s)", file=stream, flush=True)

    def over(self, items: Iterable[T]) -> Iterator[T]:
        """``items``, counted as they are consumed."""
        for item in items:
            yield item
            self.add()
