"""Flag latency at 25, 50 and 80 % of the measured capacity, and where the milliseconds go (issue 16, item 3).

1. **Capacity**: one engine worker (full engine: models on, shipped rules) drains a
   backlog of the reference mix (:func:`bench.common.drain`): its steady events/s.
2. **Live**: for each of ``--loads`` (fractions of that capacity) a fresh engine
   tails a topic of its own while events arrive at that rate, event time = now.
   Measured per flag, from the raising message's Kafka timestamp:

   * *to Redis*: to its entry in the desks' flags stream (the entry id's time);
   * *to the topic*: to its arrival at a consumer of the flags topic.

   p50/p99/p99.9 of both, and the engine's batch histograms over the live span
   (scraped from its ``/metrics`` before and after; with rounds of several
   partitions processed as one batch, :mod:`flows.one_batch`, how many): the stages of
   ``livesignals_batch_stage_seconds`` (wait: Kafka timestamp of a batch's
   oldest message to the batch's start; check, decode, apply, publish = until
   Kafka confirmed, commit = Redis) as mean ms per batch, and events per batch.

``--compare-ref REV`` runs that commit's engine (a temporary worktree) at every
load too, before ours, at the same rates (the capacity is ours, measured once).

``--burst N`` measures a backlog instead: N events at once (event time = now)
into an idle engine, for each ``batch_max_s`` of ``--burst-bounds`` (0 and 0.25:
the time bound of :mod:`flows.batch_bound` off and on) in ``--pairs`` rounds.

    python -m bench.latency [--events 30000] [--customers 30000] [--loads 0.25,0.5,0.8]
                            [--live-seconds 30] [--capacity N] [--compare-ref REV]
    python -m bench.latency --burst 6000 [--burst-bounds 0,0.25] [--pairs 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time
import urllib.request
import uuid
from typing import Any

from app.engine_process import start_engine, stop_process
from bench.common import (
    bench_settings,
    drain,
    percentile,
    produce_events,
    reference_simulator,
    services,
    tail_from_start,
    write_result,
)
from bench.cpu_shares import CpuSpan
from bench.reference import worktree
from livesignals import serde
from livesignals.settings import Settings
from state.connection import connect
from state.keys import Keys

STAGES = ("wait", "check", "decode", "apply", "plan", "publish", "commit", "offsets")


class FlagTail(threading.Thread):
    """Reads a flags topic from its start; keeps (source_timestamp, arrival ms) of every flag."""

    def __init__(self, kafka: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.kafka, self.topic = kafka, topic
        self.arrivals: list[tuple[int, float]] = []
        self.stopping = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        tail_from_start(self.kafka, self.topic, "latency", self.stopping, self.ready, self._arrived)

    def _arrived(self, doc: dict[str, Any], now: float) -> None:
        ts = doc.get("source_timestamp")
        if ts:
            self.arrivals.append((ts, now))


def redis_flag_latencies(settings: Settings, since_ms: int) -> list[float]:
    """Flags-stream entry time minus the raising message's Kafka timestamp, for messages from ``since_ms`` on."""
    r = connect(settings)
    out = []
    for entry_id, fields in r.xrange(Keys(settings.key_prefix).flags_stream, min=f"{since_ms - 60_000}-0"):
        ts = serde.loads(fields[b"doc"]).get("source_timestamp")
        if ts and ts >= since_ms:
            out.append(int(entry_id.split(b"-")[0]) - ts)
    return out


def scrape(port: int) -> dict[str, float]:
    """The engine's /metrics samples of the batch histograms (name{labels} -> value)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(
            (
                "livesignals_batch_stage_seconds",
                "livesignals_batch_events",
                "livesignals_batch_wait",
                "livesignals_engine_rounds_total",
            )
        ):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def stage_breakdown(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Mean ms per batch of each stage, batches and mean events per batch over the span between two scrapes."""

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    batches = delta("livesignals_batch_events_count")
    out: dict[str, Any] = {"batches": int(batches)}
    if batches:
        out["events_per_batch"] = round(delta("livesignals_batch_events_sum") / batches, 1)
    for path in ("combined", "split", "fallback"):  # rounds of several partitions (flows.one_batch; ours only)
        rounds = delta(f'livesignals_engine_rounds_total{{path="{path}"}}')
        if rounds:
            out[f"rounds_{path}"] = int(rounds)
    for stage in STAGES:
        n = delta(f'livesignals_batch_stage_seconds_count{{stage="{stage}"}}')
        if n:
            out[f"{stage}_ms"] = round(delta(f'livesignals_batch_stage_seconds_sum{{stage="{stage}"}}') / n * 1000, 2)
            out[f"{stage}_p99_le_ms"] = bucket_quantile(before, after, stage, n, 0.99)
    return out


def bucket_quantile(before: dict[str, float], after: dict[str, float], stage: str, n: float, q: float) -> float:
    """The upper bound (ms) of the histogram bucket holding a stage's q-quantile between two scrapes."""
    bounds = []
    for name, value in after.items():
        if name.startswith("livesignals_batch_stage_seconds_bucket{") and f'stage="{stage}"' in name:
            bound = name.split('le="', 1)[1].split('"', 1)[0]
            bounds.append((float(bound), value - before.get(name, 0.0)))
    for upper, count in sorted(bounds):
        if count >= q * n:
            return round(upper * 1000, 1)
    return float("nan")


def summary(values: list[float]) -> dict[str, Any]:
    """Count and p50/p99/p99.9 in ms."""
    return {"n": len(values), **{f"p{k}_ms": round(percentile(values, q), 1)
                                 for k, q in (("50", 0.5), ("99", 0.99), ("99.9", 0.999))}}  # fmt: skip


def wait_committed(settings: Settings, proc: Any, at_least: int, timeout_s: float) -> None:
    """Until the engine committed ``at_least`` input messages (it has started and owns its partitions)."""
    from bench.common import committed

    deadline = time.monotonic() + timeout_s
    while committed(settings) < at_least:
        if proc.poll() is not None:
            raise RuntimeError(f"engine exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"engine not started after {timeout_s}s")
        time.sleep(0.2)


def live(
    kafka: str,
    redis_url: str,
    rate: float,
    args: argparse.Namespace,
    code_dir: str | None,
    burst: int = 0,
    **changes: Any,
) -> dict[str, Any]:
    """One engine tailing a fresh topic at ``rate`` events/s: flag latencies and the batch stages.

    ``burst``: instead, that many events at once (event time = now) once the engine idles: a backlog's flags."""
    tag = uuid.uuid4().hex[:8]
    topic = f"bench.lat.{tag}"
    s = bench_settings(kafka, redis_url, f"lat{tag}", input_topics=(topic,), flags_topic=f"bench.latflags.{tag}",
                       **changes)  # fmt: skip
    connect(s).flushall()
    proc = start_engine(s, code_dir=code_dir)
    tail = FlagTail(kafka, s.flags_topic)
    try:
        tail.start()
        tail.ready.wait(15)
        warm = produce_events(reference_simulator(args.customers, seed=9), kafka, topic, 200, rate=200)
        wait_committed(s, proc, warm, args.start_wait)
        time.sleep(1)
        before = scrape(s.metrics_port)
        since = int(time.time() * 1000)
        load0, cpu = os.getloadavg()[0], CpuSpan(proc.pid)
        if burst:
            produce_events(reference_simulator(args.customers, seed=8), kafka, topic, burst, rate=1e9,
                           pace_every=burst)  # fmt: skip
            wait_committed(s, proc, warm + burst, 600)
        else:
            count, pace = warm + int(rate * args.live_seconds), max(1, int(rate / 500))
            produce_events(reference_simulator(args.customers, seed=8), kafka, topic, count, rate=rate, pace_every=pace)
        cores = cpu.stop()  # over the live span (a burst: until applied), beside the broker, Redis and this producer
        time.sleep(3)
        after = scrape(s.metrics_port)
        load1 = os.getloadavg()[0]
    finally:
        tail.stopping.set()
        tail.join(10)
        stop_process(proc)
    to_topic = [now - ts for ts, now in tail.arrivals if ts >= since]
    return {
        "rate": round(rate),
        "load_average": [round(load0, 1), round(load1, 1)],
        "cpu_cores": cores,
        "to_redis": summary(redis_flag_latencies(s, since)),
        "to_topic": summary(to_topic),
        "stages": stage_breakdown(before, after),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=30_000, help="backlog drained to measure the capacity")
    ap.add_argument("--customers", type=int, default=30_000)
    ap.add_argument("--capacity", type=float, help="events/s to take as capacity instead of measuring it")
    ap.add_argument("--loads", default="0.25,0.5,0.8", help="fractions of the capacity driven live")
    ap.add_argument("--live-seconds", type=float, default=30.0)
    ap.add_argument("--start-wait", type=float, default=120.0)
    ap.add_argument("--compare-ref", help="also run this commit's engine at every load (before ours)")
    ap.add_argument(
        "--burst",
        type=int,
        default=0,
        help="only: this many events at once into an idle engine, "
        "for each of --burst-bounds (batch_max_s values): a backlog's flag latency",
    )
    ap.add_argument("--burst-bounds", default="0,0.25")
    ap.add_argument("--pairs", type=int, default=2, help="with --burst: rounds of --burst-bounds")
    args = ap.parse_args()
    loads = [float(x) for x in args.loads.split(",")]

    result: dict[str, Any] = {"customers": args.customers, "live_seconds": args.live_seconds}
    if args.burst:
        with services() as (kafka, redis_url):
            result["burst"] = args.burst
            for bound in [float(b) for b in args.burst_bounds.split(",")] * args.pairs:
                r = {"batch_max_s": bound, **live(kafka, redis_url, 0, args, None, args.burst, batch_max_s=bound)}
                result.setdefault("bursts", []).append(r)
                print(r)
        write_result("latency_burst", result)
        return
    with services() as (kafka, redis_url):
        capacity = args.capacity
        if capacity is None:
            produce_events(reference_simulator(args.customers), kafka, "bench.in", args.events)
            settings = bench_settings(kafka, redis_url, "capacity")
            connect(settings).flushall()
            capacity = drain(settings, args.events).steady_events_per_s
            result["capacity_load_average"] = round(os.getloadavg()[0], 1)
        result["capacity_events_per_s"] = round(capacity)
        print(f"capacity: {capacity:.0f} events/s")
        runs: dict[str, list[dict[str, Any]]] = {"ours": []}
        with worktree(args.compare_ref) if args.compare_ref else contextlib.nullcontext() as ref_dir:
            for load in loads:
                if ref_dir:
                    r = {"load": load, **live(kafka, redis_url, capacity * load, args, ref_dir)}
                    runs.setdefault(args.compare_ref, []).append(r)
                    print(f"{args.compare_ref} {r}")
                r = {"load": load, **live(kafka, redis_url, capacity * load, args, None)}
                runs["ours"].append(r)
                print(f"ours {r}")
        result["runs"] = runs
    write_result("latency", result)


if __name__ == "__main__":
    main()
