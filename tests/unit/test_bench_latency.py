"""bench.latency's arithmetic: stages as mean ms per batch between two /metrics scrapes, a bucket's quantile."""

from __future__ import annotations

import math

from bench.latency import stage_breakdown, summary

B = "livesignals_batch_stage_seconds"


def _scrape(batches: int, events: int, commit_s: float, buckets: dict[str, int]) -> dict[str, float]:
    out = {
        "livesignals_batch_events_count": float(batches),
        "livesignals_batch_events_sum": float(events),
        f'{B}_count{{stage="commit"}}': float(batches),
        f'{B}_sum{{stage="commit"}}': commit_s,
    }
    for le, n in buckets.items():
        out[f'{B}_bucket{{le="{le}",stage="commit"}}'] = float(n)
    return out


def test_stages_are_the_mean_of_the_span_between_two_scrapes_and_the_p99_its_bucket():
    before = _scrape(10, 100, 1.0, {"0.005": 10, "0.1": 10, "+Inf": 10})
    after = _scrape(110, 1100, 1.5, {"0.005": 108, "0.1": 110, "+Inf": 110})  # 100 batches, 0.5 s, 2 slow
    got = stage_breakdown(before, after)
    assert got["batches"] == 100 and got["events_per_batch"] == 10.0
    assert got["commit_ms"] == 5.0
    assert got["commit_p99_le_ms"] == 100.0  # 98 of the 100 within 5 ms: the 99th in the 0.1 s bucket
    assert "decode_ms" not in got  # a stage not observed is left out


def test_summary_gives_nearest_rank_percentiles_and_nan_for_none():
    got = summary([float(i) for i in range(1, 1001)])
    assert (got["n"], got["p50_ms"], got["p99_ms"], got["p99.9_ms"]) == (1000, 501.0, 991.0, 1000.0)
    assert math.isnan(summary([])["p99_ms"])


def test_cpu_span_gives_the_engine_its_own_share_and_the_rest_to_others():
    """bench.latency prints each party's cores beside its latencies: a busy child counts as the engine."""
    import subprocess
    import sys
    import time

    from bench.cpu_shares import CpuSpan

    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 5: pass"])
    try:
        span = CpuSpan(child.pid)
        time.sleep(0.5)
        shares = span.stop()
    finally:
        child.kill()
        child.wait()
    assert set(shares) == {"engine", "bench", "others", "machine"}
    assert shares["engine"] > 0.1, shares  # a busy loop: about one core
    assert shares["machine"] >= shares["engine"] - 0.05, shares  # the machine includes it (tick rounding)
