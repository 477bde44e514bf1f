"""The batch's time bound (flows.batch_bound): the cost per event it measures and the batch size it allows."""

from __future__ import annotations

from flows.batch_bound import MIN_EVENTS, BatchBound


def test_nothing_measured_reads_a_batch_just_large_enough_to_measure():
    """A start on a backlog: the first batch is measured before seconds of work are taken."""
    assert BatchBound().limit(5000, 0.25) == MIN_EVENTS
    assert BatchBound().limit(50, 0.25) == 50
    assert BatchBound().limit(5000, 0) == 5000  # off


def test_the_limit_is_what_fits_in_the_time_at_the_measured_cost():
    bound = BatchBound()
    bound.observe(1000, 1.0)  # 1 ms an event
    assert bound.limit(5000, 0.25) == 250
    assert bound.limit(200, 0.25) == 200  # the size bound still holds
    assert bound.limit(5000, 0) == 5000  # 0: off


def test_small_batches_are_not_measured_and_the_limit_never_goes_under_the_floor():
    bound = BatchBound()
    bound.observe(MIN_EVENTS - 1, 10.0)  # a small batch is mostly its fixed cost: not a cost per event
    assert bound.per_event_s == 0
    bound.observe(MIN_EVENTS, 10.0)  # 0.1 s an event
    assert bound.limit(5000, 0.25) == MIN_EVENTS


def test_the_cost_follows_the_newer_batches():
    bound = BatchBound()
    bound.observe(1000, 1.0)
    for _ in range(40):
        bound.observe(1000, 4.0)  # the engine became four times slower
    assert abs(bound.per_event_s - 0.004) < 1e-5
    assert bound.limit(5000, 1.0) == 250
    assert bound.limit(5000, 2.0) == 500
