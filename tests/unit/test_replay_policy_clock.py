"""A STATE LOSS replay below what was published judges the contact policy at stream time (break-test 10g, W1).

With ``policy_clock = "wall"`` (the default) a trigger is admitted or suppressed by the wall clock of its batch,
and only an admitted one is recorded as sent. A replay runs later: judged by its own wall clock it found every
trigger older than ``trigger_max_age_s`` stale and rebuilt profiles with no send and no pending offer, while the
triggers were on Kafka. The replay (``Engine.process(publish=False)``) now judges at the events' present, as the
original did when it kept up with its input.
"""

from __future__ import annotations

from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.settings import Settings
from operators.engine import Engine
from operators.ports import OutRecord
from state.memory import InMemoryStore
from tests.helpers import T0

N = 3_000
DAY_S = 86_400


class Capture:
    """The publisher: keeps every record."""

    def __init__(self) -> None:
        self.records: list[OutRecord] = []

    def publish(self, records: list[OutRecord]) -> None:
        self.records.extend(records)


def run(messages: list[RawMessage], now_s: float, publish: bool) -> tuple[InMemoryStore, Capture]:
    settings = Settings(metrics_port=0, input_topics=("in",), quiet_hours="0-0", models_enabled=False)
    assert settings.policy_clock == "wall"
    store, out = InMemoryStore(), Capture()
    engine = Engine(settings, store, out, clock=lambda: now_s)
    for start in range(0, len(messages), 200):
        engine.process(messages[start : start + 200], publish=publish)
    return store, out


def test_a_replay_days_later_rebuilds_the_sends_the_original_recorded():
    sim = Simulator(SimulatorConfig(customers=150, seed=31, start_ms=T0, step_ms=200))
    docs = [e for e, _ in sim.stream(N)]
    messages = [RawMessage(serde.dumps(e), None, Origin("in", 0, i, T0 + i)) for i, e in enumerate(docs)]
    ended_s = max(e["event_time"] for e in docs) / 1000 + 1  # the original kept up: its wall clock at the end
    original, sent = run(messages, ended_s, publish=True)
    assert any(r.topic == "ls.triggers" for r in sent.records), "triggers to rebuild"
    rebuilt, again = run(messages, ended_s + 2 * DAY_S, publish=False)
    assert again.records == []
    assert {k: s.to_bytes() for k, s in rebuilt.states.items()} == {k: s.to_bytes() for k, s in original.states.items()}
