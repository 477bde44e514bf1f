"""Start-up steps of an engine process (:mod:`flows.startup`, issue #10: where a restart's seconds go)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from prometheus_client import REGISTRY

from flows.startup import StartupClock


def _gauge(step: str) -> float | None:
    return REGISTRY.get_sample_value("livesignals_startup_seconds", {"step": step})


def test_each_step_is_recorded_once_in_seconds_since_the_start_and_exported():
    now = [100.0]
    clock = StartupClock(started_s=98.0, clock=lambda: now[0])
    assert clock.mark("imports") == 2.0
    now[0] = 105.0
    assert clock.mark("imports") == 2.0, "the first end counts"
    assert clock.mark("claimed") == 7.0
    now[0] = 106.0
    assert clock.mark("claimed", again=True) == 8.0, "a step done per partition: the last one counts"
    assert _gauge("claimed") == 8.0
    assert set(clock.cpu) == {"imports", "claimed"}


def test_the_first_commit_logs_every_step_once_in_order(caplog: pytest.LogCaptureFixture):
    now = [10.5]
    clock = StartupClock(started_s=10.0, clock=lambda: now[0])
    clock.mark("engine")
    now[0] = 11.2
    clock.mark("imports")
    clock.mark("claimed", again=True)
    now[0] = 12.0
    with caplog.at_level(logging.INFO, logger="flows.startup"):
        clock.committed()
        now[0] = 13.0
        clock.committed()
        clock.mark("claimed", again=True)
    lines = [r.getMessage() for r in caplog.records if "start-up" in r.getMessage()]
    assert len(lines) == 1
    listed = lines[0].split("): ", 1)[1]
    assert [part.split()[0] for part in listed.split(", ")] == ["engine", "imports", "claimed", "first_commit"]
    assert clock.steps["first_commit"] == 2.0
    assert clock.steps["claimed"] == 1.2, "a claim after the start-up (a state loss) is not start-up time"


_STARTED = """
import time
time.sleep(0.5)
from flows.startup import process_started_s
print(time.time() - process_started_s())
"""


def test_the_start_is_the_process_start_not_the_first_import():
    out = subprocess.run([sys.executable, "-c", _STARTED], capture_output=True, text=True, timeout=120, check=True)
    since = float(out.stdout)
    assert 0.45 <= since < 120, "the interpreter's own start and the wait before the import count"
