"""Property test: decode -> Engine.process -> 360 views, whatever the messages.

The engine runs on the in-memory store with a list publisher. Whatever arrives
(``tests/fuzzing.py``: damaged events, any JSON in any field, the poison
corpus), ``Engine.process`` never raises, every message is either applied,
skipped as a replay or a duplicate, or dead-lettered with a reason -- exactly one of these --
and every customer's 360 views can still be built and serialised.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.settings import Settings
from operators.engine import Engine
from state.memory import InMemoryStore
from tests.fuzzing import ListPublisher, check_report, messages, the_360
from tests.helpers import T0

NOW_MS = T0 + 10 * 86_400_000


def run(batches: list[list[bytes | None]]) -> None:
    store, publisher = InMemoryStore(), ListPublisher()
    engine = Engine(Settings(metrics_port=0), store, publisher, clock=lambda: NOW_MS / 1000)
    offset = 0
    for batch in batches:
        msgs = []
        for value in batch:
            msgs.append(RawMessage(value, b"k", Origin("in", offset % 2, offset, NOW_MS)))
            offset += 1
        check_report(engine.process(msgs), len(msgs))  # never raises
    for record in publisher.records:
        assert len(record.value) <= 65_536 + 1024
    for state in store.states.values():
        the_360(state, NOW_MS)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.lists(messages(), min_size=1, max_size=12), min_size=1, max_size=3))
def test_the_engine_applies_or_dead_letters_every_message_and_the_360_stays_readable(batches):
    run(batches)
