"""Every flag of the shipped catalogue is raised, with evidence, and cleared (in memory).

The same journeys run through real Kafka and Redis in
``tests/integration/test_flag_catalogue.py``; this one checks the rules alone.
"""

from __future__ import annotations

import pytest

from livesignals import serde
from livesignals.settings import Settings
from operators.engine import Engine
from operators.scoring.learner import seed_checkpoint
from state.memory import InMemoryStore
from tests.flag_journeys import DAY, extra_evidence, journeys, trained_models
from tests.helpers import T0, raw

JOURNEYS = journeys(T0)


class Publisher:
    def __init__(self) -> None:
        self.records: list = []

    def publish(self, records) -> None:
        self.records.extend(records)


def flag_records(flag: str) -> list[dict]:
    """The flag records of this flag's journey, each event in its own batch."""
    store = InMemoryStore()
    seed_checkpoint(store.models_log, trained_models())
    pub = Publisher()
    engine = Engine(Settings(metrics_port=0), store, pub, clock=lambda: (T0 + 30 * DAY) / 1000)
    raise_events, clear_events = JOURNEYS[flag]
    for message in raw([*raise_events, *clear_events]):
        engine.process([message])
    docs = [serde.loads(r.value) for r in pub.records if r.topic == engine.settings.flags_topic]
    return [d for d in docs if d["flag"] == flag]


@pytest.mark.parametrize("flag", sorted(JOURNEYS))
def test_each_catalogue_flag_is_raised_with_evidence_and_then_cleared(flag):
    raise_events, clear_events = JOURNEYS[flag]
    records = flag_records(flag)
    assert [r["state"] for r in records] == ["raised", "cleared"], records
    raised, cleared = records
    raise_ids = {e["event_id"] for e in raise_events}
    assert raised["evidence"][0] in raise_ids, "the triggering event is the first evidence"
    if extra_evidence(flag):
        assert any(extra_evidence(flag) in item for item in raised["evidence"][1:]), raised
    assert raised["reason"] and "{" not in raised["reason"] and raised["reason"] != "-"
    assert cleared["raised_at"] >= clear_events[0]["event_time"]
