"""Per-batch cost of small live batches, in process, on real Redis and Kafka (issue 16: latency).

One engine (``flows.engine_sink.default_engine``: the Kafka publisher, the Redis store, models on) is fed batches
of ``--sizes`` events of the reference simulator (event time = now) directly, no Bytewax and no consumer, and each
``Engine.process`` is timed: wall time (what a live batch's latency is made of: CPU and the round trips to Kafka
and Redis), the process's CPU time, and the engine's wait for Kafka (``KafkaPublisher.publish``: produce and
wait, before the commit was planned while Kafka writes; then ``KafkaPublisher.confirm``: the wait left after the
plan). With ``--compare-ref`` the same is run with that commit's code, alternating with ours size by size and
round by round (a shared machine's noise falls on both alike); each run is a fresh process (``python -c``: the
code of the tree it runs in) on fresh keys and the same services.

    PYTHONPATH=$PWD python -m bench.inprocess --sizes 10,100,300 --compare-ref 76e31fb
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
from typing import Any

from bench.common import services, write_result
from bench.reference import worktree

CHILD = r"""
import json, os, statistics, sys, time, uuid, zlib, collections
from bench.common import bench_settings, reference_simulator
from flows.engine_sink import default_engine
from livesignals import serde
from livesignals.contract import RawMessage, primary_key
from livesignals.errors import Origin
from state.connection import connect

from flows.publisher import KafkaPublisher
kafka, redis_url, size, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
waits = []  # the engine's wait for Kafka: publish (produce and wait) or, split, confirm (after the plan)
waiting = getattr(KafkaPublisher, "confirm", None) and "confirm" or "publish"
real = getattr(KafkaPublisher, waiting)
def timed(self, *a):
    t = time.perf_counter()
    try:
        return real(self, *a)
    finally:
        waits.append(time.perf_counter() - t)
setattr(KafkaPublisher, waiting, timed)
s = bench_settings(kafka, redis_url, "inproc" + uuid.uuid4().hex[:8], models_enabled=True)
connect(s).flushall()
engine = default_engine(s)
sim = reference_simulator(30_000, seed=3)
offsets = collections.Counter()
def batch(k):
    out = []
    for e, _ in sim.stream(k):
        e["event_time"] = int(time.time() * 1000)
        p = zlib.crc32(primary_key(e["customer"]).encode()) % 4
        out.append(RawMessage(serde.dumps(e), None, Origin("bench.in", p, offsets[p], int(time.time() * 1000))))
        offsets[p] += 1
    return out
for _ in range(20):
    engine.process(batch(size))
batches = [batch(size) for _ in range(n)]
waits.clear()
wall, cpu = [], []
for b in batches:
    w, c = time.perf_counter(), time.process_time()
    engine.process(b)
    wall.append(time.perf_counter() - w)
    cpu.append(time.process_time() - c)
print(json.dumps({"wall_ms": [round(1000 * x, 3) for x in wall], "cpu_ms": [round(1000 * x, 3) for x in cpu],
                  "kafka_wait_ms": [round(1000 * x, 3) for x in waits]}))
"""


def run_one(code_dir: str, kafka: str, redis_url: str, size: int, batches: int) -> dict[str, Any]:
    """One fresh engine process in ``code_dir``: per-batch wall and CPU milliseconds (mean, median, p90)."""
    env = {**os.environ, "PYTHONPATH": code_dir}
    done = subprocess.run([sys.executable, "-c", CHILD, kafka, redis_url, str(size), str(batches)], cwd=code_dir,
                          env=env, check=True, capture_output=True, text=True)  # fmt: skip
    got = json.loads(done.stdout.strip().splitlines()[-1])
    out: dict[str, Any] = {}
    for kind in ("wall_ms", "cpu_ms", "kafka_wait_ms"):
        values = sorted(got[kind])
        out[kind] = {"mean": round(statistics.mean(values), 2), "median": round(statistics.median(values), 2),
                     "p90": round(values[int(0.9 * (len(values) - 1))], 2)}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,300", help="events per batch")
    ap.add_argument("--batches", type=int, default=150, help="timed batches per run (after 20 to warm up)")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each size per tree, alternating")
    ap.add_argument("--compare-ref", help="also run this commit's engine (before ours, every round)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    ours = os.getcwd()
    result: dict[str, Any] = {"batches": args.batches, "rounds": args.rounds, "load_average": []}
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {}
    reference = worktree(args.compare_ref) if args.compare_ref else contextlib.nullcontext()
    with services() as (kafka, redis_url), reference as ref_dir:
        trees = ([(args.compare_ref, ref_dir)] if ref_dir else []) + [("ours", ours)]
        for _ in range(args.rounds):
            for size in sizes:
                for name, code_dir in trees:
                    result["load_average"].append(round(os.getloadavg()[0], 1))
                    r = run_one(code_dir, kafka, redis_url, size, args.batches)
                    runs.setdefault(name, {}).setdefault(size, []).append(r)
                    print(f"{name:>8} size {size:4d}: wall {r['wall_ms']} cpu {r['cpu_ms']} kafka {r['kafka_wait_ms']}",
                          flush=True)  # fmt: skip
    result["runs"] = runs
    if args.compare_ref:
        result["ratios"] = {}
        for size in sizes:
            row = {}
            for kind in ("wall_ms", "cpu_ms", "kafka_wait_ms"):
                for stat in ("mean", "median"):
                    ref = statistics.mean(r[kind][stat] for r in runs[args.compare_ref][size])
                    our = statistics.mean(r[kind][stat] for r in runs["ours"][size])
                    row[f"{kind}_{stat}"] = round(ref / our, 3)  # > 1: ours is faster
            result["ratios"][size] = row
            print(f"size {size}: {args.compare_ref} / ours = {row}")
    write_result("inprocess", result)


if __name__ == "__main__":
    main()
