"""``/readyz``'s verdict from the engine's gauges and the monitor's probes (flows.health)."""

from __future__ import annotations

from flows.health import engine_readiness, metric_value
from livesignals import metrics

PROBES: dict[str, bool | None] = {"redis": True, "kafka": True, "rules_loaded": True}


def test_ready_only_when_every_check_passes_and_each_failure_is_named():
    before = (metric_value("livesignals_partitions_owned") or 0.0, metric_value("livesignals_ready") or 0.0)
    try:
        metrics.PARTITIONS_OWNED.set(4)
        metrics.READY.set(1)
        metrics.DEPENDENCY_UP.labels("redis").set(1)
        metrics.DEPENDENCY_UP.labels("kafka").set(1)
        ready, checks = engine_readiness(PROBES)
        assert ready and checks["partitions"] == 4
        assert engine_readiness({**PROBES, "redis": None})[0]  # not probed yet: the batches' view decides

        cases: list[tuple[dict[str, bool | None], str]] = [
            ({**PROBES, "kafka": False}, "kafka"),
            ({**PROBES, "rules_loaded": None}, "rules_loaded"),
        ]
        for probes, failing in cases:
            ready, checks = engine_readiness(probes)
            assert not ready and checks[failing] is False
            assert [k for k, v in checks.items() if v is False] == [failing]

        metrics.DEPENDENCY_UP.labels("redis").set(0)  # a batch found Redis down, the probe has not yet
        ready, checks = engine_readiness(PROBES)
        assert not ready and checks["redis"] is False
        metrics.DEPENDENCY_UP.labels("redis").set(1)

        metrics.READY.set(0)  # backing off
        assert engine_readiness(PROBES)[1]["not_backing_off"] is False
        metrics.READY.set(1)
        metrics.PARTITIONS_OWNED.set(0)
        ready, checks = engine_readiness(PROBES)
        assert not ready and checks["partitions_owned"] is False
    finally:
        metrics.PARTITIONS_OWNED.set(before[0])
        metrics.READY.set(before[1])


def test_an_outage_the_probe_sees_reaches_the_metrics_even_when_no_batch_runs(monkeypatch):
    """Outside review of #13: with Kafka stopped under an idle engine, /readyz said 503 but
    livesignals_ready and livesignals_dependency_up{kafka} stayed 1, so no alert could fire."""
    from flows.monitor import Monitor
    from livesignals import metrics
    from livesignals.settings import Settings
    from state.ownership import Ownership

    watch = Monitor(Settings.load(env={}), Ownership(), ("ls.interactions",))
    answers = iter([False, False, True])
    monkeypatch.setattr(watch, "_read_lag", lambda: next(answers))
    monkeypatch.setattr(watch, "_ping_redis", lambda: True)
    metrics.DEPENDENCY_UP.labels("kafka").set(1)
    metrics.READY.set(1)
    retries = metrics.DEPENDENCY_RETRIES.labels("kafka")._value.get()
    watch.tick()
    watch.tick()
    assert metrics.DEPENDENCY_UP.labels("kafka")._value.get() == 0
    assert metrics.READY._value.get() == 0
    assert metrics.DEPENDENCY_RETRIES.labels("kafka")._value.get() == retries + 1  # one outage, counted once
    watch.tick()  # Kafka answers again
    assert metrics.DEPENDENCY_UP.labels("kafka")._value.get() == 1
    assert metrics.READY._value.get() == 1
