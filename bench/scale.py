"""Scale-out and customer-count scaling of the engine (issue 16, item 4).

``processes``: the same backlog on a 4-partition topic drained by one engine
process and by two (Bytewax ``-i``/``-a``, one worker each), in alternating
pairs (``--pairs``), each run on an emptied Redis: events/s of each, the ratio
per pair and its median. On a 2-core machine two processes can at best double.

``customers``: for each customer count (``--counts``, default 100k and 1M), a
stream of ``--events-per-customer`` events per customer on average (activity
skew 0.6, so most customers appear) drained by one engine process into an
emptied Redis: events/s (from the tenth-percent message to the end), customers
with a profile, Redis bytes per customer (used memory grown / customers with
a profile) and the mean profile document (MEMORY USAGE, sampled) -- how the
cost per event and per customer move as the customer count grows.

Kafka and Redis: ``LIVESIGNALS_BENCH_KAFKA`` / ``LIVESIGNALS_BENCH_REDIS_URL``,
else the embedded ones (see ``bench.common``).

    python -m bench.scale processes [--events 50000] [--customers 100000] [--pairs 2] [--models on|off]
    python -m bench.scale customers [--counts 100000,1000000] [--events-per-customer 2] [--models on|off]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import time
import uuid
from typing import Any

from app import embedded
from app.engine_process import engine_argv, engine_env, start_engine, stop_process
from app.simulator import Simulator, SimulatorConfig
from bench.common import bench_settings, produce_events, reference_simulator, services
from livesignals.settings import Settings
from state.connection import connect
from state.keys import Keys

HOURS_BEHIND_MS = 5 * 3_600_000
"""Simulated streams end before now (the engine dead-letters events from the future)."""


def start_processes(settings: Settings, n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` engine processes of one cluster (one worker each); one process is :func:`start_engine`."""
    if n == 1:
        return [start_engine(settings)]
    addresses = ";".join(f"127.0.0.1:{embedded.free_port()}" for _ in range(n))
    return [subprocess.Popen(engine_argv("-w", "1", "-i", str(i), "-a", addresses), env=engine_env(settings),
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
            for i in range(n)]  # fmt: skip


def committed_fast(settings: Settings) -> int:
    """Input messages committed, read from the partitions' meta hashes (``bench.common.committed``
    SCANs the whole keyspace: polled 20 times a second, that would load Redis and the machine)."""
    keys, pipe = Keys(settings.key_prefix), connect(settings).pipeline(transaction=False)
    for topic in settings.input_topics:
        for p in range(settings.topic_partitions):
            pipe.hget(keys.partition_meta(p), f"offset:{topic}")
    return sum(int(v) for v in pipe.execute() if v is not None)


def drain(settings: Settings, total: int, processes: int, timeout_s: float) -> float:
    """Events/s of ``processes`` engine processes on the backlog, from the tenth-percent commit to the last."""
    procs = start_processes(settings, processes)
    t0 = time.monotonic()
    mark: tuple[float, int] | None = None
    try:
        while (done := committed_fast(settings)) < total:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"engine process exited with {p.returncode}")
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"{done}/{total} after {timeout_s}s")
            if mark is None and done >= total // 10:
                mark = (time.monotonic(), done)
            time.sleep(0.05)
        t1 = time.monotonic()
    finally:
        for p in procs:
            stop_process(p)
    mark = mark or (t0, 0)
    return (total - mark[1]) / (t1 - mark[0])


def fresh(kafka: str, redis_url: str, topic: str, models: bool) -> Settings:
    """Settings of one run, on an emptied Redis."""
    s = bench_settings(kafka, redis_url, f"sc{uuid.uuid4().hex[:6]}", input_topics=(topic,), models_enabled=models)
    connect(s).flushall()
    return s


def processes(args: argparse.Namespace) -> dict[str, Any]:
    """1 vs 2 engine processes on the same 4-partition backlog, alternating pairs."""
    with services() as (kafka, redis_url):
        topic = f"scale.in.{uuid.uuid4().hex[:8]}"
        fresh(kafka, redis_url, topic, args.models == "on")  # creates the topic (4 partitions)
        produce_events(reference_simulator(args.customers), kafka, topic, args.events)
        pairs = []
        for i in range(args.pairs):
            one = drain(fresh(kafka, redis_url, topic, args.models == "on"), args.events, 1, args.timeout)
            two = drain(fresh(kafka, redis_url, topic, args.models == "on"), args.events, 2, args.timeout)
            print(f"pair {i}: 1 process {one:8.0f} events/s, 2 processes {two:8.0f} events/s ({two / one:.2f}x)",
                  flush=True)  # fmt: skip
            pairs.append((one, two))
    return {
        "events": args.events, "customers": args.customers, "partitions": 4, "models": args.models,
        "cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
        "one_process_events_per_s": [round(a) for a, _ in pairs],
        "two_processes_events_per_s": [round(b) for _, b in pairs],
        "ratio_per_pair": [round(b / a, 2) for a, b in pairs],
        "ratio_median": round(statistics.median(b / a for a, b in pairs), 2),
    }  # fmt: skip


def memory_usage(client: Any, keys: list[bytes]) -> list[int]:
    """MEMORY USAGE of each key."""
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.memory_usage(k, samples=0)
    return [u or 0 for u in pipe.execute()]


def one_count(kafka: str, redis_url: str, customers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Drain ``customers`` x ``--events-per-customer`` events into an emptied Redis; speed and bytes."""
    total = int(customers * args.events_per_customer)
    topic = f"scale.customers.{uuid.uuid4().hex[:8]}"
    s = fresh(kafka, redis_url, topic, args.models == "on")
    client = connect(s)
    base = client.info("memory")["used_memory"]
    step = min(20.0, HOURS_BEHIND_MS / total)
    start = int(time.time() * 1000) - HOURS_BEHIND_MS - 3_600_000
    sim = Simulator(SimulatorConfig(customers=customers, seed=7, start_ms=start, step_ms=step, activity_skew=0.6))
    t = time.monotonic()
    produce_events(sim, kafka, topic, total)
    produced_s = time.monotonic() - t
    speed = drain(s, total, 1, args.timeout)
    used = client.info("memory")["used_memory"] - base
    keys = Keys(s.key_prefix)
    profiles = list(client.scan_iter(f"{keys.prefix}:{{*}}:profile", count=10_000))
    sample = random.Random(1).sample(profiles, min(2000, len(profiles)))
    doc = sum(memory_usage(client, sample)) / max(1, len(sample))
    row = {"customers": customers, "events": total, "produced_s": round(produced_s, 1),
           "events_per_s": round(speed), "customers_with_profile": len(profiles),
           "redis_bytes_per_customer": round(used / max(1, len(profiles))),
           "profile_document_bytes_mean": round(doc), "redis_keys": client.dbsize()}  # fmt: skip
    print(row, flush=True)
    client.flushall(asynchronous=True)  # a synchronous FLUSHALL of a million customers outlasts the socket timeout
    return row


def customers(args: argparse.Namespace) -> dict[str, Any]:
    """Events/s and Redis bytes per customer at each customer count."""
    counts = [int(c) for c in args.counts.split(",")]
    with services() as (kafka, redis_url):
        rows = [one_count(kafka, redis_url, n, args) for n in counts]
    return {"events_per_customer": args.events_per_customer, "models": args.models,
            "load_average": [round(x, 2) for x in os.getloadavg()], "runs": rows}  # fmt: skip


def parser() -> argparse.ArgumentParser:
    """Command-line options (the test runs the same with tiny sizes)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["processes", "customers"])
    ap.add_argument("--events", type=int, default=50_000, help="processes: backlog size")
    ap.add_argument("--customers", type=int, default=100_000, help="processes: customers in the backlog")
    ap.add_argument("--pairs", type=int, default=2, help="processes: alternating 1-process / 2-process runs")
    ap.add_argument("--counts", default="100000,1000000", help="customers: customer counts, comma-separated")
    ap.add_argument("--events-per-customer", type=float, default=2.0)
    ap.add_argument("--models", choices=["on", "off"], default="on")
    ap.add_argument("--timeout", type=float, default=3600.0)
    return ap


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The chosen measurement's figures."""
    return processes(args) if args.what == "processes" else customers(args)


def main() -> None:
    from bench.common import write_result

    args = parser().parse_args()
    write_result(f"scale-{args.what}", run(args))


if __name__ == "__main__":
    main()
