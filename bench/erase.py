"""Erase latency (issue 14): one ``erase`` event through the engine into a real Redis, per customer.

Each erased customer has a full timeline (``--timeline`` entries, default the
200 kept), linked identifiers and flags; the flags stream holds ``--flags``
entries (default 100,000, the default ``flags_stream_maxlen``), which the erase
scrubs. The time measured is the engine's whole batch for the erase event:
load, erase, tombstones (to a publisher that drops them), the flags-stream
scrub and the commit (ledger, deletes, audit). Kafka is not measured.

    python -m bench.erase [--customers 200] [--timeline 200] [--flags 100000]

Set ``LIVESIGNALS_BENCH_REDIS_URL`` to measure another Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

from app import embedded
from bench.common import write_result
from livesignals import serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.settings import Settings
from operators.engine import Engine
from state.connection import connect
from state.keys import Keys
from state.store import ProfileStore

T0 = int(time.time() * 1000) - 30 * 86_400_000


class _Drop:
    def publish(self, records):  # tombstones are not what is measured
        pass


def _events(i: int, n: int) -> list[dict]:
    ids = {"customer_id": f"c{i}", "email": f"c{i}@example.org", "device_id": f"d{i}"}
    out = []
    for j in range(n):
        kind = ("chat", "email")[j % 2]  # contacts: every one is a timeline entry
        payload = {"text": f"message {j} about my order", "topic": "delivery"}
        out.append({
            "schema_version": 1, "event_id": f"e{i}-{j}", "type": kind,
            "channel": kind, "customer": ids,
            "event_time": T0 + j * 600_000, "payload": payload,
        })  # fmt: skip
    return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(redis_url: str, customers: int, timeline: int, flags: int) -> dict[str, float]:
    """Erase ``customers`` customers one batch each; latency figures in ms."""
    s = Settings.load(env={}).replace(redis_url=redis_url, key_prefix=f"berase{os.getpid()}", models_enabled=False,
                                      policy_clock="stream", timeline_max_entries=timeline)  # fmt: skip
    client, keys = connect(s), Keys(s.key_prefix)
    engine = Engine(s, ProfileStore(client, keys), _Drop(), clock=lambda: (T0 + 60 * 86_400_000) / 1000)
    offset = 0
    for i in range(customers):
        batch = [
            RawMessage(serde.dumps(e), b"k", Origin("in", 0, offset + k, T0))
            for k, e in enumerate(_events(i, timeline))
        ]
        offset += len(batch)
        engine.process(batch)
    pipe = client.pipeline(transaction=False)
    for n in range(max(0, flags - client.xlen(keys.flags_stream))):
        pipe.xadd(keys.flags_stream, {"flag_id": f"f{n}", "customer": f"customer_id:x{n % 5000}", "flag": "vip",
                                      "doc": b"{}"})  # fmt: skip
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()
    full = client.zcard(keys.timeline("customer_id:c0"))
    times = []
    for i in range(customers):
        erase = {"schema_version": 1, "event_id": f"x{i}", "type": "erase", "channel": "backoffice",
                 "customer": {"customer_id": f"c{i}"}, "event_time": T0 + 40 * 86_400_000, "payload": {}}  # fmt: skip
        started = time.perf_counter()
        engine.process([RawMessage(serde.dumps(erase), b"k", Origin("in", 0, offset, T0))])
        times.append((time.perf_counter() - started) * 1000)
        offset += 1
    for key in client.scan_iter(f"{s.key_prefix}:*", count=1000):
        client.delete(key)
    return {
        "customers": customers, "timeline_entries": full, "flags_stream": flags,
        "p50_ms": round(statistics.median(times), 2), "p99_ms": round(_percentile(times, 0.99), 2),
        "max_ms": round(max(times), 2),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=200)
    ap.add_argument("--timeline", type=int, default=200)
    ap.add_argument("--flags", type=int, default=100_000)
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        url = os.environ.get("LIVESIGNALS_BENCH_REDIS_URL")
        if not url:
            url = f"redis://{stack.enter_context(embedded.start_redis(prefer_system=True)).address}/0"
        result = {
            "full_flags_stream": run(url, args.customers, args.timeline, args.flags),
            "empty_flags_stream": run(url, args.customers, args.timeline, 0),
        }
    write_result("erase", result)


if __name__ == "__main__":
    main()
