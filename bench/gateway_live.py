"""Kafka-in to flag-in-the-browser latency (issue 12): the whole path, under the reference load.

Starts Kafka and Redis (embedded, or ``LIVESIGNALS_BENCH_KAFKA``/``_REDIS_URL``), one engine worker and
the agent desktop service (``livesignals serve``) as their own processes; opens push connections (SSE,
read as a browser's ``fetch`` reads them) following every one of ``--customers`` customers (an
analyst's token: any customer, ``gateway_push_max_customers`` per connection); then produces the
simulator's reference mix at ``--rate`` events/s for ``--seconds``. For each flag a connection
receives: its arrival time at the client minus the Kafka timestamp of the event that raised it
(``source_timestamp``), p50/p99, split at the engine's append to the flags stream (engine: Kafka to
stream; push: stream to browser); and how many mood and actions events arrived beside them.

This 2-core machine is shared: the engine, the broker, Redis, the service and the clients all run on
it. Read the figures as orders of magnitude.

    python -m bench.gateway_live [--customers 2000] [--rate 1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections import Counter
from typing import Any

import httpx

from app import embedded
from app.engine_process import start_engine, stop_process
from bench.common import bench_settings, percentile, produce_events, reference_simulator, services, write_result
from bench.gateway import serve
from gateway.auth import issue_token
from livesignals import serde

Latencies = dict[str, list[float]]


async def listen(base: str, headers: dict[str, str], customers: list[str], per: int, until: list[float],
                 got: Latencies, kinds: Counter[str], ready: asyncio.Event, total: int) -> None:  # fmt: skip
    """One push connection per ``per`` customers; records each flag's Kafka-to-client latency, split at the
    moment the engine appended it to the flags stream (the entry id's time, in the event's SSE id)."""
    opened = 0
    limits = httpx.Limits(max_connections=total + 5, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(120.0, read=None), limits=limits) as http:

        async def one(chunk: list[str]) -> None:
            nonlocal opened
            query = "&".join(f"customer={c}" for c in chunk)
            async with http.stream("GET", f"{base}/v1/push?{query}", headers=headers) as r:
                if r.status_code != 200:
                    raise RuntimeError(f"push refused: {r.status_code}")
                opened += 1
                if opened == total:
                    ready.set()
                event, entry_ms = "", 0
                async for line in r.aiter_lines():
                    if line.startswith("id: "):
                        entry_ms = int(line[4:].split("-", 1)[0])
                    elif line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event:
                        kinds[event] += 1
                        if event == "flag":
                            source = serde.loads(line[6:])["flag"].get("source_timestamp")
                            if source:
                                now = time.time() * 1000
                                got["total"].append(now - source)
                                got["engine"].append(entry_ms - source)
                                got["push"].append(now - entry_ms)
                    if time.time() > until[0]:
                        return

        chunks = [customers[i : i + per] for i in range(0, len(customers), per)]
        await asyncio.gather(*(one(c) for c in chunks), return_exceptions=False)


def main() -> None:
    """Run the benchmark and print the figures (kept in bench/results/gateway_live.json)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=2_000)
    ap.add_argument("--rate", type=float, default=1_000.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    secret = secrets.token_hex(32)
    per = 50
    with services() as (kafka, redis_url):
        settings = bench_settings(kafka, redis_url, f"gwlive{secrets.token_hex(2)}", input_topics=("bench.gwlive",),
                                  gateway_port=embedded.free_port(), gateway_token_secrets=(secret,),
                                  gateway_push_max_customers=per, gateway_push_max_connections=10_000,
                                  gateway_audited_per_min=1_000_000)  # fmt: skip
        engine = start_engine(settings)
        service = serve(settings)
        try:
            time.sleep(3)  # engine start-up, partition assignment
            customers = [f"c{i:07d}" for i in range(args.customers)]
            token = issue_token(secret, "bench", "analyst", ttl_s=3600, now=int(time.time()))
            headers = {"Authorization": f"Bearer {token}"}
            got: dict[str, list[float]] = {"total": [], "engine": [], "push": []}
            kinds: Counter[str] = Counter()
            until = [time.time() + 3600.0]
            total = (len(customers) + per - 1) // per

            async def run() -> None:
                ready = asyncio.Event()
                base = f"http://127.0.0.1:{settings.gateway_port}"
                task = asyncio.create_task(listen(base, headers, customers, per, until, got, kinds, ready, total))
                await asyncio.wait_for(ready.wait(), 300)
                count = int(args.rate * args.seconds)
                sim = reference_simulator(args.customers, seed=8)
                await asyncio.to_thread(produce_events, sim, kafka, "bench.gwlive", count, args.rate)
                await asyncio.sleep(3)  # the last flags
                until[0] = 0.0
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

            asyncio.run(run())
        finally:
            embedded.stop_process(service)
            stop_process(engine)
    result: dict[str, Any] = {
        "customers_followed": args.customers, "connections": total, "rate": args.rate, "seconds": args.seconds,
        "flags_received": len(got["total"]), "events_received": dict(kinds),
    }  # fmt: skip
    for part, name in (
        ("total", "kafka_to_browser"),
        ("engine", "kafka_to_flags_stream"),
        ("push", "stream_to_browser"),
    ):
        result[f"{name}_p50_ms"] = round(percentile(got[part], 0.5), 1)
        result[f"{name}_p99_ms"] = round(percentile(got[part], 0.99), 1)
    write_result("gateway_live", result)


if __name__ == "__main__":
    main()
