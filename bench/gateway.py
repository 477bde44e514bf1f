"""The agent desktop service under load: 360 reads through the API, and live push fan-out.

Fills Redis with the simulator's reference mix through the engine (real
profiles), gives ``--targets`` customers an open contact in queue ``bench``,
starts ``python -m gateway serve`` as its own process and measures, with a
supervisor's token for that queue:

* **reads**: ``GET /v1/customers/<id>`` on one keep-alive connection for
  ``--seconds``: p50/p99 latency at the client and requests/s; then
  ``--threads`` connections at once: requests/s (every read is authorised
  and audited: two to four Redis round trips and one XADD);
* **push**: ``--connections`` SSE connections, each following one target
  customer; ``--flags`` flags appended to the stream for random targets;
  delivery latency (stream append to client receipt) p50/p99, every flag
  received exactly by its followers, and the service's RSS and CPU seconds.

This 2-core machine is shared and drifts: read the figures as ratios of runs
made back to back. ``LIVESIGNALS_BENCH_REDIS_URL`` measures against another Redis.

    python -m bench.gateway [--events 20000] [--customers 5000] [--targets 1000] [--connections 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import redis

from app import embedded
from app.engine_process import engine_env
from bench.apply import messages
from gateway.auth import issue_token
from livesignals import serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.settings import Settings
from operators.engine import Engine
from state.keys import Keys
from state.store import ProfileStore


class _Drop:
    def publish(self, records: Any) -> None:
        """Drop the records."""


def fill(settings: Settings, client: Any, events: int, customers: int, targets: int) -> list[str]:
    """Profiles of the reference mix, and an open contact in queue ``bench`` for ``targets`` customers."""
    engine = Engine(settings, ProfileStore(client, Keys(settings.key_prefix), cache_size=0), _Drop())
    msgs = messages(events, customers)
    for i in range(0, len(msgs), 2000):
        engine.process(msgs[i : i + 2000])
    now = int(time.time() * 1000)
    ids = [f"c{i:07d}" for i in random.Random(1).sample(range(customers), targets)]
    contacts = [{"schema_version": 1, "event_id": f"bench-{c}", "type": "chat", "channel": "chat",
                 "customer": {"customer_id": c}, "event_time": now, "payload": {"queue": "bench", "text": "hi"}}
                for c in ids]  # fmt: skip
    engine.process([RawMessage(serde.dumps(e), None, Origin("bench", 99, i, now)) for i, e in enumerate(contacts)])
    return ids


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def reads(base: str, headers: dict[str, str], ids: list[str], seconds: float, threads: int) -> dict[str, float]:
    lat: list[float] = []
    with httpx.Client(headers=headers, timeout=10) as c:
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end:
            t = time.perf_counter()
            r = c.get(f"{base}/v1/customers/{ids[n % len(ids)]}")
            lat.append(time.perf_counter() - t)
            if r.status_code != 200:
                raise RuntimeError(f"read failed: {r.status_code} {r.text[:200]}")
            n += 1
    counts = [0] * threads

    def worker(k: int) -> None:
        with httpx.Client(headers=headers, timeout=10) as c:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                c.get(f"{base}/v1/customers/{ids[(counts[k] * threads + k) % len(ids)]}")
                counts[k] += 1

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return {"p50_ms": percentile(lat, 0.5) * 1000, "p99_ms": percentile(lat, 0.99) * 1000,
            "rps_one_connection": len(lat) / seconds, f"rps_{threads}_connections": sum(counts) / seconds}  # fmt: skip


async def push(base: str, headers: dict[str, str], ids: list[str], connections: int, flags: int, client: Any,
               stream: str, pid: int) -> dict[str, float]:  # fmt: skip
    received: dict[int, list[tuple[str, float]]] = {i: [] for i in range(connections)}
    ready = asyncio.Event()
    opened = 0
    follows = [ids[i % len(ids)] for i in range(connections)]

    async def conn(i: int, http: httpx.AsyncClient) -> None:
        nonlocal opened
        async with http.stream("GET", f"{base}/v1/push?customer={follows[i]}", headers=headers) as r:
            opened += 1
            if opened == connections:
                ready.set()
            async for line in r.aiter_lines():
                if line.startswith("data: {"):
                    doc = serde.loads(line[6:])
                    received[i].append((doc["flag"]["flag_id"], time.time() * 1000 - doc["flag"]["raised_at"]))

    rss_before = rss_mb(pid)
    limits = httpx.Limits(max_connections=connections + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, read=None), limits=limits) as http:
        tasks = [asyncio.create_task(conn(i, http)) for i in range(connections)]
        await asyncio.wait_for(ready.wait(), 300)
        rss_connected, cpu0 = rss_mb(pid), cpu_s(pid)
        rng = random.Random(2)
        sent: dict[str, str] = {}
        for k in range(flags):
            c = rng.choice(ids)
            now = int(time.time() * 1000)
            doc: dict[str, Any] = {"flag_id": f"bf{k}", "customer": f"customer_id:{c}", "flag": "bench",
                                   "severity": "info", "reason": "bench", "evidence": [], "raised_at": now,
                                   "expires_at": 0}  # fmt: skip
            client.xadd(stream, {"flag_id": doc["flag_id"], "customer": doc["customer"], "flag": "bench",
                                 "doc": serde.dumps(doc)})  # fmt: skip
            sent[doc["flag_id"]] = c
            await asyncio.sleep(0.005)
        expected = {i: [f for f, c in sent.items() if c == follows[i]] for i in range(connections)}
        deadline = time.time() + 60
        while time.time() < deadline and any(len(received[i]) < len(expected[i]) for i in range(connections)):
            await asyncio.sleep(0.2)
        cpu = cpu_s(pid) - cpu0
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    lat = [ms for got in received.values() for _, ms in got]
    exact = all([f for f, _ in received[i]] == expected[i] for i in range(connections))
    return {"connections": connections, "flags": flags, "deliveries": len(lat), "exactly_expected": exact,
            "p50_ms": percentile(lat, 0.5) if lat else -1, "p99_ms": percentile(lat, 0.99) if lat else -1,
            "rss_mb_idle": rss_before, "rss_mb_connected": rss_connected, "cpu_s_during_flags": cpu}  # fmt: skip


def main() -> None:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--customers", type=int, default=5_000)
    ap.add_argument("--targets", type=int, default=1_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--connections", type=int, default=1_000)
    ap.add_argument("--flags", type=int, default=1_000)
    args = ap.parse_args()
    server = None
    url = os.environ.get("LIVESIGNALS_BENCH_REDIS_URL")
    if not url:
        server = embedded.start_redis(prefer_system=True)
        url = f"redis://{server.address}/0"
    secret = secrets.token_hex(32)
    settings = Settings.load(env={}).replace(
        redis_url=url, key_prefix=f"bgw{secrets.token_hex(3)}", models_enabled=False, quiet_hours="0-0",
        policy_clock="stream", gateway_port=embedded.free_port(), gateway_token_secrets=(secret,),
        gateway_push_max_customers=50,
    )  # fmt: skip
    client = redis.Redis.from_url(url)
    proc = None
    try:
        t0 = time.perf_counter()
        ids = fill(settings, client, args.events, args.customers, args.targets)
        print(f"filled {args.customers} customers ({args.events} events) in {time.perf_counter() - t0:.0f} s")
        argv = [sys.executable, "-P", "-m", "gateway", "serve"]
        out = subprocess.DEVNULL
        proc = subprocess.Popen(argv, env=engine_env(settings), stdout=out, stderr=out, start_new_session=True)
        base = f"http://127.0.0.1:{settings.gateway_port}"
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        tok = issue_token(secret, "sup", "supervisor", ["bench"], ttl_s=3600, now=int(time.time()))
        headers = {"Authorization": f"Bearer {tok}"}
        r = reads(base, headers, ids, args.seconds, args.threads)
        print("360 reads:", {k: round(v, 2) for k, v in r.items()})
        p = asyncio.run(push(base, headers, ids, args.connections, args.flags, client,
                             Keys(settings.key_prefix).flags_stream, proc.pid))  # fmt: skip
        print("push:", {k: round(v, 2) if isinstance(v, float) else v for k, v in p.items()})
        print("audit entries:", client.xlen(f"{settings.key_prefix}:audit"))
    finally:
        if proc is not None:
            embedded.stop_process(proc)
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
