"""Backoff: waits are capped, and a dependency that answers again is retried at once, not after the cap."""

from __future__ import annotations

from state.connection import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, s: float) -> None:
        self.now += s


def test_a_dependency_back_after_an_outage_is_retried_within_a_probe_interval_not_after_the_cap():
    clock = Clock()
    back_at = 61.0  # down for a minute; the waits have long reached the 30 s cap
    attempts: list[float] = []

    def batch() -> str:
        attempts.append(clock.now)
        if clock.now < back_at:
            raise ConnectionError("down")
        return "committed"

    def ping() -> None:
        if clock.now < back_at:
            raise ConnectionError("down")

    retry = Backoff("redis", initial_s=0.5, max_s=30.0, errors=(ConnectionError,), sleep=clock.sleep, probe=ping)
    assert retry.run(batch) == "committed"
    assert back_at <= attempts[-1] <= back_at + retry.probe_every_s
    assert len(attempts) < 12, "the cap still spaces the batch's own attempts"


def test_without_a_probe_the_wait_is_the_backoff():
    clock = Clock()
    calls: list[float] = []

    def batch() -> None:
        calls.append(clock.now)
        if len(calls) < 4:
            raise ConnectionError("down")

    Backoff("kafka", initial_s=1.0, max_s=2.0, errors=(ConnectionError,), sleep=clock.sleep).run(batch)
    assert calls == [0.0, 1.0, 3.0, 5.0]


def test_a_probe_that_answers_while_the_batch_still_fails_stops_cutting_the_waits_short():
    clock = Clock()
    calls: list[float] = []

    def batch() -> None:
        calls.append(clock.now)
        if len(calls) < 6:
            raise ConnectionError("refusing writes")  # PING answers, writes do not (a node refusing writes)

    retry = Backoff("redis", initial_s=0.5, max_s=4.0, errors=(ConnectionError,), sleep=clock.sleep, probe=lambda: None)
    retry.run(batch)
    assert calls == [0.0, 0.25, 1.25, 3.25, 7.25, 11.25]


def test_kafka_clients_reconnect_within_a_second_unless_the_operator_says_otherwise():
    from livesignals.settings import Settings

    s = Settings.load(env={})
    assert s.kafka_client_config()["reconnect.backoff.max.ms"] == 1000
    assert (
        s.replace(kafka_config={"reconnect.backoff.max.ms": 5000}).kafka_client_config()["reconnect.backoff.max.ms"]
        == 5000
    )
