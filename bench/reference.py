"""Reference workload benchmark (issue 2).

Pushes the simulator's reference mix (70 % web/app, 10 % orders, 10 % text,
5 % surveys, 5 % the rest; skewed activity over 100k customers) through real
Kafka and Redis and reports, in one run:

* events/s of one engine worker draining a backlog, batched Redis I/O, with the
  online models on (the default) and off;
* with ``--compare-ref``: that commit's engine and the 360 update alone (models
  off, no rules file: no flags, no actions) run in alternating pairs
  (``--pairs``, default 3), each pair's ratio and the median: this 2-core
  machine's speed drifts by tens of percent over minutes, so only runs close
  in time compare;
* with ``--full-ref``: that commit's full engine (models on, shipped rules) and
  ours in ``--pairs`` alternating pairs, each pair's ratio and the median (what
  a change of the engine gained or cost);
* the same with one Redis round trip per event (the baseline), and the ratio;
* Redis commands per event for both;
* Kafka-in to flag-in-Redis latency p50/p99 under a steady live rate.

    python -m bench.reference [--events 200000] [--customers 100000] [--live-rate 3000] [--compare-ref REV]
                              [--full-ref REV [--full-ref-layout skeleton]]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tempfile
import time
from typing import Any

from app.engine_process import start_engine, stop_process
from bench.common import (
    bench_settings,
    drain,
    percentile,
    produce_events,
    reference_simulator,
    services,
    write_result,
)
from livesignals import serde
from livesignals.settings import Settings
from state.connection import connect
from state.keys import Keys


def flag_latencies_ms(settings, since_ms: int) -> list[float]:
    """Stream-entry time minus Kafka timestamp of the raising message, per flag."""
    r = connect(settings)
    out = []
    for entry_id, fields in r.xrange(Keys(settings.key_prefix).flags_stream, min=f"{since_ms}-0"):
        doc = serde.loads(fields[b"doc"])
        if doc.get("source_timestamp"):
            out.append(int(entry_id.split(b"-")[0]) - doc["source_timestamp"])
    return out


@contextlib.contextmanager
def worktree(ref: str):
    """A temporary checkout of ``ref`` (to run an older engine in the same benchmark run)."""
    path = tempfile.mkdtemp(prefix="ls-ref-")
    subprocess.run(["git", "worktree", "add", "--detach", path, ref], check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", path], check=False, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--baseline-events", type=int, default=50_000)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--live-rate", type=float, default=3000.0)
    ap.add_argument("--live-seconds", type=float, default=20.0)
    ap.add_argument("--compare-ref", help="also run this git commit's engine on the same backlog (e.g. the skeleton)")
    ap.add_argument("--pairs", type=int, default=3, help="alternating runs of --compare-ref and the 360 alone")
    ap.add_argument(
        "--ref-layout",
        choices=["skeleton", "current"],
        default="skeleton",
        help="where --compare-ref's engine keeps its offsets: the skeleton's one hash per topic (default), or today's",
    )
    ap.add_argument("--full-ref", help="also run this git commit's full engine in --pairs alternating pairs with ours")
    ap.add_argument(
        "--full-ref-layout",
        choices=["skeleton", "current"],
        default="current",
        help="where --full-ref's engine keeps its offsets (commits before session 9's, e.g. 7a01cd4: skeleton)",
    )
    args = ap.parse_args()

    with services() as (kafka, redis_url):
        t = time.monotonic()
        produce_events(reference_simulator(args.customers), kafka, "bench.in", args.events)
        print(f"produced {args.events} events in {time.monotonic() - t:.1f}s")

        def fresh(name: str, **changes: Any) -> Settings:
            """Settings for one run, on an emptied Redis (a fuller Redis is a slower one: every run starts equal)."""
            settings = bench_settings(kafka, redis_url, name, **changes)
            connect(settings).flushall()
            return settings

        def run(name: str, **changes: Any) -> float:
            result = drain(fresh(name, **changes), args.events)
            print(f"{name:>12}: {result.steady_events_per_s:9.0f} events/s  "
                  f"{result.redis_commands_per_event:.3f} Redis commands/event")  # fmt: skip
            commands[name] = result.redis_commands_per_event
            return result.steady_events_per_s

        commands: dict[str, float] = {}
        full = run("full")
        models_off = run("nomodels", models_enabled=False)
        baseline = min(args.baseline_events, args.events)  # never more than were produced: it would wait forever
        slow = drain(fresh("perevent", redis_mode="per_event", batch_size=1000), baseline)
        print(f"   per-event: {slow.steady_events_per_s:9.0f} events/s  "
              f"{slow.redis_commands_per_event:.3f} Redis commands/event  (first {baseline})")  # fmt: skip
        pairs: list[tuple[float, float]] = []
        if args.compare_ref:
            with worktree(args.compare_ref) as code_dir:
                for i in range(args.pairs):
                    ref = drain(fresh(f"ref{i}"), args.events, code_dir=code_dir, layout=args.ref_layout)
                    print(f"{args.compare_ref:>12}: {ref.steady_events_per_s:9.0f} events/s")
                    pairs.append((ref.steady_events_per_s, run(f"profile{i}", models_enabled=False, rules_path="none")))
        full_pairs: list[tuple[float, float]] = []
        if args.full_ref:
            with worktree(args.full_ref) as code_dir:
                for i in range(args.pairs):
                    old = drain(fresh(f"fullref{i}"), args.events, code_dir=code_dir, layout=args.full_ref_layout)
                    print(f"{args.full_ref:>12}: {old.steady_events_per_s:9.0f} events/s (its full engine)")
                    full_pairs.append((old.steady_events_per_s, run(f"full{i + 1}")))
        latencies = live_latencies(kafka, redis_url, args)

    result: dict[str, Any] = {
        "events": args.events,
        "customers": args.customers,
        "full_events_per_s": round(full),
        "models_off_events_per_s": round(models_off),
        "models_on_off_ratio": round(full / models_off, 2),
        "per_event_events_per_s": round(slow.steady_events_per_s),
        "full_speedup_vs_per_event": round(full / slow.steady_events_per_s, 1),
        "full_redis_commands_per_event": round(commands["full"], 3),
        "per_event_redis_commands_per_event": round(slow.redis_commands_per_event, 3),
    }
    if pairs:
        ref_median = statistics.median(r for r, _ in pairs)
        result.update({
            f"{args.compare_ref}_events_per_s": [round(r) for r, _ in pairs],
            "profile_only_events_per_s": [round(p) for _, p in pairs],
            "profile_only_ratio_per_pair": [round(p / r, 2) for r, p in pairs],
            "profile_only_ratio_median": round(statistics.median(p / r for r, p in pairs), 2),
            "models_off_ratio_to_ref_median": round(models_off / ref_median, 2),
            "full_ratio_to_ref_median": round(full / ref_median, 2),
        })  # fmt: skip
    if full_pairs:
        result.update({
            f"{args.full_ref}_full_events_per_s": [round(r) for r, _ in full_pairs],
            "full_events_per_s_paired": [round(p) for _, p in full_pairs],
            "full_ratio_to_full_ref_per_pair": [round(p / r, 2) for r, p in full_pairs],
            "full_ratio_to_full_ref_median": round(statistics.median(p / r for r, p in full_pairs), 2),
        })  # fmt: skip
    result.update({
        "live_rate": args.live_rate, "flags_measured": len(latencies),
        "flag_latency_p50_ms": percentile(latencies, 0.5), "flag_latency_p99_ms": percentile(latencies, 0.99),
    })  # fmt: skip
    write_result("reference", result)


def live_latencies(kafka: str, redis_url: str, args: argparse.Namespace) -> list[float]:
    """Kafka-in to flag-in-Redis latencies of the full engine under a steady live rate."""
    live = bench_settings(kafka, redis_url, "live", input_topics=("bench.live",))
    connect(live).flushall()
    proc = start_engine(live)
    try:
        time.sleep(3)  # start-up, partition assignment
        since = int(time.time() * 1000)
        produce_events(reference_simulator(args.customers, seed=8), kafka, "bench.live",
                       int(args.live_rate * args.live_seconds), rate=args.live_rate)  # fmt: skip
        time.sleep(2)
    finally:
        stop_process(proc)
    return flag_latencies_ms(live, since)


if __name__ == "__main__":
    main()
