"""``bench.peers`` runs end to end at a tiny size, and its three implementations agree.

Bytewax and LiveSignals run on the session's Kafka; Quix Streams only on Apache
Kafka (``LIVESIGNALS_TEST_KAFKA``: Quix 3.28 fails on the embedded broker's
``describe_configs``) with the optional ``[bench]`` extra installed. Each test
gets a Redis server of its own: the benchmark empties Redis before every run.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

from app import embedded
from bench import peers
from bench.peers_lite import apply, new_state

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TINY = ["--events", "1500", "--customers", "150", "--pairs", "1", "--live-seconds", "1", "--live-rate", "300"]


def _run(monkeypatch: pytest.MonkeyPatch, kafka: str, which: str) -> dict:
    with embedded.start_redis(prefer_system=True) as redis:
        monkeypatch.setenv("LIVESIGNALS_BENCH_KAFKA", kafka)
        monkeypatch.setenv("LIVESIGNALS_BENCH_REDIS_URL", f"redis://{redis.address}/0")
        return peers.run(peers.parser().parse_args([*TINY, "--peers", which]))


def _check(result: dict, which: list[str]) -> None:
    for name in which:
        assert result[name]["events_per_s_median"] > 0, name
        assert result[name]["cpu_us_per_event_median"] > 0, name
        assert result[name]["live"]["flags"] > 0, name
        assert result[name]["live"]["p99_ms"] >= result[name]["live"]["p50_ms"] > 0, name
    # the same stream under the same three rules: about the same number of flags published
    counts = {name: result[name]["flags"][0] for name in which}
    assert min(counts.values()) > 0 and max(counts.values()) <= 1.1 * min(counts.values()), counts


def test_bytewax_flow_and_livesignals_agree(monkeypatch, kafka_bootstrap):
    result = _run(monkeypatch, kafka_bootstrap, "bytewax,livesignals")
    _check(result, ["bytewax", "livesignals"])
    assert result["livesignals_to_bytewax_median"] > 0


def test_quix_agrees_with_the_others(monkeypatch):
    """Skipped without the extra or Apache Kafka, unless LIVESIGNALS_TEST_QUIX=required (CI's Apache leg)."""
    missing = None
    if importlib.util.find_spec("quixstreams") is None:
        missing = "Quix Streams is an optional extra: pip install -e '.[bench]'"
    elif not os.environ.get("LIVESIGNALS_TEST_KAFKA"):
        missing = "Quix Streams needs Apache Kafka (LIVESIGNALS_TEST_KAFKA), not the embedded broker"
    if missing:
        if os.environ.get("LIVESIGNALS_TEST_QUIX") == "required":
            pytest.fail(missing)
        pytest.skip(missing)
    result = _run(monkeypatch, os.environ["LIVESIGNALS_TEST_KAFKA"], "quix,bytewax,livesignals")
    _check(result, ["quix", "bytewax", "livesignals"])


def test_without_quix_it_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "quixstreams", None)  # import fails as when not installed
    with pytest.raises(SystemExit) as stop:
        peers.run(peers.parser().parse_args(["--peers", "quix"]))
    assert str(stop.value) == peers.NEEDS_QUIX
    assert "\n" not in peers.NEEDS_QUIX and "pip install -e '.[bench]'" in peers.NEEDS_QUIX


def test_quix_without_apache_kafka_says_how_to_start_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "quixstreams", type(sys)("quixstreams"))  # installed or not
    monkeypatch.delenv("LIVESIGNALS_BENCH_KAFKA", raising=False)
    with pytest.raises(SystemExit) as stop:
        peers.run(peers.parser().parse_args(["--peers", "quix"]))
    assert str(stop.value) == peers.NEEDS_KAFKA
    assert "\n" not in peers.NEEDS_KAFKA and "apache-kafka.sh start" in peers.NEEDS_KAFKA


def test_lite_state_round_trips_through_json_and_expires_flags():
    """The peers' state is what Quix's store keeps (JSON); a flag past its TTL is cleared by the next event."""
    import json

    state = new_state()
    for i in range(8):
        apply(state, "k", {"type": "web_event", "event_time": i, "payload": {}}, 0)
    assert set(state["flags"]) == {"busy_hour"}
    state = json.loads(json.dumps(state))
    out = apply(state, "k", {"type": "web_event", "event_time": 3_600_000 * 2, "payload": {}}, 0)
    assert [(f["flag"], f["state"], f["reason"]) for f in out] == [("busy_hour", "cleared", "expired")]
