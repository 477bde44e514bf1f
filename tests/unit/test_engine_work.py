"""Engine.work_seconds: what the source's time bound (flows.batch_bound) measures -- the engine's own work."""

from __future__ import annotations

import time

from bench.apply import _Drop
from livesignals.settings import Settings
from operators.engine import Engine
from state.memory import InMemoryStore
from tests.helpers import T0, event, raw


class SlowStore(InMemoryStore):
    """A store whose every load waits 0.3 s (a slow Redis's round trip)."""

    def load(self, customer_keys):
        time.sleep(0.3)
        return super().load(customer_keys)


def test_work_seconds_leave_out_the_loads_a_batch_pays_whatever_its_size():
    """Break-test 16c, C3: counted in, the state load's round trip (and the models' catch-up, the sweep) made
    a slow Redis shrink every batch to the floor of 100 events."""
    engine = Engine(Settings.load(env={}).replace(models_enabled=True, metrics_port=0), SlowStore(), _Drop(),
                    clock=lambda: (T0 + 60_000) / 1000)  # fmt: skip
    docs = [event("web_event", f"c{i % 5}", T0 + i, action="page_view", session_id="s1") for i in range(20)]
    started = time.perf_counter()
    engine.process(raw(docs))
    spent = time.perf_counter() - started
    assert spent >= 0.3 and 0 < engine.work_seconds < 0.3  # the engine's own work only
