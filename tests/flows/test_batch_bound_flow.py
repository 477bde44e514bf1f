"""The engine sink measures what an event costs for the source's time bound (flows.batch_bound), from its
committed batches of at least MIN_EVENTS events; what the flow computes does not change."""

from __future__ import annotations

import pytest

from flows.batch_bound import BOUND, MIN_EVENTS
from state.keys import Keys
from tests.flows.test_live_flow import MemoryPublisher, run_flow, state_of
from tests.helpers import T0, event, raw


@pytest.fixture(autouse=True)
def fresh_bound():
    BOUND.reset()
    yield
    BOUND.reset()


def _docs(n: int) -> list[dict]:
    return [event("web_event", f"c{i % 7}", T0 + i, action="page_view", session_id=f"s{i % 7}") for i in range(n)]


def test_a_committed_batch_of_enough_events_sets_the_cost_per_event(settings):
    pub = MemoryPublisher()
    run_flow(settings, raw(_docs(MIN_EVENTS + 20), settings.input_topics[0]), pub, batch_size=MIN_EVENTS + 20)
    assert 0 < BOUND.per_event_s < 10  # wall seconds per event, from the committed batch
    assert BOUND.limit(5000, settings.batch_max_s) <= 5000
    assert sum(state_of(settings, f"c{i}").events for i in range(7)) == MIN_EVENTS + 20


def test_the_cost_per_event_leaves_out_the_round_trips_a_batch_pays_whatever_its_size(settings):
    """Break-test 16a, A3: with a batch's wall time counted, a slow Redis or Kafka (here a broker that takes
    2 s to confirm) made every batch 100 events and capped a worker near 100 events per round-trip time."""
    import time

    class SlowToConfirm(MemoryPublisher):
        def publish(self, records):
            time.sleep(2.0)
            super().publish(records)

    run_flow(
        settings, raw(_docs(MIN_EVENTS + 20), settings.input_topics[0]), SlowToConfirm(), batch_size=MIN_EVENTS + 20
    )
    assert 0 < BOUND.per_event_s < 2.0 / (MIN_EVENTS + 20) / 2  # the engine's own work, not the 2 s wait
    assert BOUND.limit(5000, settings.batch_max_s) > MIN_EVENTS


def test_small_batches_leave_the_bound_unmeasured(settings):
    pub = MemoryPublisher()
    run_flow(settings, raw(_docs(60), settings.input_topics[0]), pub, batch_size=30)
    assert BOUND.per_event_s == 0
    assert BOUND.limit(5000, settings.batch_max_s) == MIN_EVENTS  # still to be measured
    assert sum(state_of(settings, f"c{i}").events for i in range(7)) == 60


def test_the_same_events_commit_the_same_profiles_whatever_the_batch_sizes(settings, redis_url):
    """A time bound only changes where batches split: the committed profiles are the same."""
    from tests.conftest import unique_settings

    other = unique_settings(redis_url)
    docs = _docs(250)
    run_flow(settings, raw(docs, settings.input_topics[0]), MemoryPublisher(), batch_size=250)
    run_flow(other, raw(docs, other.input_topics[0]), MemoryPublisher(), batch_size=MIN_EVENTS)
    for i in range(7):
        a, b = state_of(settings, f"c{i}"), state_of(other, f"c{i}")
        assert (a.events, a.history, a.value) == (b.events, b.history, b.value)
    assert Keys(settings.key_prefix).profile("x") != Keys(other.key_prefix).profile("x")


def _stage_count(stage: str) -> float:
    from livesignals import metrics

    return next(
        (s.value for m in metrics.BATCH_STAGE_SECONDS.collect() for s in m.samples
         if s.name.endswith("_count") and s.labels.get("stage") == stage),
        0.0,
    )  # fmt: skip


def test_the_sink_observes_wait_check_and_offsets_once_per_batch(settings):
    """livesignals_batch_stage_seconds' stages outside the engine: wait (Kafka timestamp to the batch's start),
    check (the Redis state check) and offsets (after the commit), once per committed batch."""
    stages = ("wait", "check", "offsets", "commit")
    before = {s: _stage_count(s) for s in stages}
    run_flow(settings, raw(_docs(90), settings.input_topics[0]), MemoryPublisher(), batch_size=30)
    assert {s: _stage_count(s) - before[s] for s in stages} == dict.fromkeys(stages, 3)
