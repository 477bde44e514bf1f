"""Reference workload benchmark (issue 2).

Pushes the simulator's reference mix (70 % web/app, 10 % orders, 10 % text,
5 % surveys, 5 % the rest; skewed activity over 100k customers) through real
Kafka and Redis and reports, in one run:

* events/s of one engine worker draining a backlog, batched Redis I/O, with the
  online models on (the default), off, and the 360 update alone (models off,
  no rules file: no flags, no actions);
* the same with one Redis round trip per event (the baseline), and the ratio;
* Redis commands per event for both;
* Kafka-in to flag-in-Redis latency p50/p99 under a steady live rate.

    python -m bench.reference [--events 200000] [--customers 100000] [--live-rate 5000]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import tempfile
import time

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
from livesignals.engine_process import start_engine, stop_process
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
    ap.add_argument("--live-rate", type=float, default=5000.0)
    ap.add_argument("--live-seconds", type=float, default=20.0)
    ap.add_argument("--compare-ref", help="also run this git commit's engine on the same backlog (e.g. the skeleton)")
    args = ap.parse_args()

    with services() as (kafka, redis_url):
        batched = bench_settings(kafka, redis_url, "batched")
        per_event = bench_settings(kafka, redis_url, "perevent", redis_mode="per_event", batch_size=1000)
        t = time.monotonic()
        produce_events(reference_simulator(args.customers), kafka, "bench.in", args.events)
        print(f"produced {args.events} events in {time.monotonic() - t:.1f}s")

        fast = drain(batched, args.events)
        print(
            f"batched:   {fast.steady_events_per_s:9.0f} events/s  "
            f"{fast.redis_commands_per_event:.3f} Redis commands/event"
        )
        other = None
        if args.compare_ref:
            with worktree(args.compare_ref) as code_dir:
                other = drain(bench_settings(kafka, redis_url, "ref"), args.events, code_dir=code_dir)
            print(f"{args.compare_ref}: {other.steady_events_per_s:9.0f} events/s")
        models_off = drain(bench_settings(kafka, redis_url, "nomodels", models_enabled=False), args.events)
        print(f"models off: {models_off.steady_events_per_s:9.0f} events/s")
        profile_only = drain(
            bench_settings(kafka, redis_url, "profile", models_enabled=False, rules_path="none"), args.events
        )
        print(f"360 only:   {profile_only.steady_events_per_s:9.0f} events/s")
        slow = drain(per_event, args.baseline_events)
        print(
            f"per-event: {slow.steady_events_per_s:9.0f} events/s  "
            f"{slow.redis_commands_per_event:.3f} Redis commands/event  "
            f"(first {args.baseline_events})"
        )

        live = bench_settings(kafka, redis_url, "live", input_topics=("bench.live",))
        proc = start_engine(live)
        try:
            time.sleep(3)  # start-up, partition assignment
            since = int(time.time() * 1000)
            n = int(args.live_rate * args.live_seconds)
            sim = reference_simulator(args.customers, seed=8)
            produce_events(sim, kafka, "bench.live", n, rate=args.live_rate)
            time.sleep(2)
        finally:
            stop_process(proc)
        lat = flag_latencies_ms(live, since)

    result = {
        "events": args.events,
        "customers": args.customers,
        "batched_events_per_s": round(fast.steady_events_per_s),
        **(
            {
                f"{args.compare_ref}_events_per_s": round(other.steady_events_per_s),
                f"ratio_to_{args.compare_ref}": round(fast.steady_events_per_s / other.steady_events_per_s, 2),
            }
            if other
            else {}
        ),
        "models_off_events_per_s": round(models_off.steady_events_per_s),
        "profile_only_events_per_s": round(profile_only.steady_events_per_s),
        **(
            {
                f"profile_only_ratio_to_{args.compare_ref}": round(
                    profile_only.steady_events_per_s / other.steady_events_per_s, 2
                )
            }
            if other
            else {}
        ),
        "models_on_off_ratio": round(fast.steady_events_per_s / models_off.steady_events_per_s, 2),
        "per_event_events_per_s": round(slow.steady_events_per_s),
        "speedup_vs_per_event": round(fast.steady_events_per_s / slow.steady_events_per_s, 1),
        "batched_redis_commands_per_event": round(fast.redis_commands_per_event, 3),
        "per_event_redis_commands_per_event": round(slow.redis_commands_per_event, 3),
        "live_rate": args.live_rate,
        "flags_measured": len(lat),
        "flag_latency_p50_ms": percentile(lat, 0.5),
        "flag_latency_p99_ms": percentile(lat, 0.99),
    }
    write_result("reference", result)


if __name__ == "__main__":
    main()
