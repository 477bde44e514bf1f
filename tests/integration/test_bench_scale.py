"""``bench.scale`` runs end to end at a tiny size (its figures come from full-size runs, not tests).

Each test gets a Redis server of its own: the benchmark empties Redis before every run.
"""

from __future__ import annotations

import pytest

from app import embedded
from bench import scale

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _run(monkeypatch: pytest.MonkeyPatch, kafka: str, argv: list[str]) -> dict:
    with embedded.start_redis(prefer_system=True) as redis:
        monkeypatch.setenv("LIVESIGNALS_BENCH_KAFKA", kafka)
        monkeypatch.setenv("LIVESIGNALS_BENCH_REDIS_URL", f"redis://{redis.address}/0")
        return scale.run(scale.parser().parse_args(argv))


def test_one_and_two_processes(monkeypatch, kafka_bootstrap):
    result = _run(
        monkeypatch,
        kafka_bootstrap,
        ["processes", "--events", "1500", "--customers", "200", "--pairs", "1", "--models", "off"],
    )
    assert result["one_process_events_per_s"][0] > 0 and result["two_processes_events_per_s"][0] > 0
    assert result["ratio_median"] == result["ratio_per_pair"][0] > 0


def test_customer_counts(monkeypatch, kafka_bootstrap):
    result = _run(monkeypatch, kafka_bootstrap, ["customers", "--counts", "200,400", "--models", "off"])
    small, large = result["runs"]
    assert small["events"] == 400 and large["events"] == 800
    for row in (small, large):
        assert row["events_per_s"] > 0
        assert 0.8 * row["customers"] <= row["customers_with_profile"] <= row["customers"]
        assert row["redis_bytes_per_customer"] > row["profile_document_bytes_mean"] > 0
