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
