"""The agent desktop service under load: 360 reads through the API, and live push fan-out.

Fills Redis with the simulator's reference mix through the engine (real
profiles), gives ``--targets`` customers an open contact in queue ``bench``,
starts ``python -m gateway serve`` as its own process and measures, with a
supervisor's token for that queue:

* **reads**: ``GET /v1/customers/<id>`` on one keep-alive connection for
  ``--seconds``: p50/p99 latency at the client and requests/s; then
  ``--threads`` connections at once: requests/s, and requests per CPU second
  of the service (the figure the shared machine disturbs least). Every read
  is authorised and audited: one round trip for the profile and timeline
  (two with linked identifiers), one XADD. ``--clone-to N`` first copies the
  engine's profiles and timelines to N customers in all (1M: the issue's
  scale); reads then go to every copy of a target. ``--compare-ref REV`` also
  serves that commit's code as it ran then (h11, asyncio loop) and alternates
  the two, ``--pairs`` times: ratios of runs close in time. ``--workers N``
  alternates one process with ``livesignals serve --workers N``;
* **push**: ``--connections`` SSE connections, each following one target
  customer; ``--flags`` flags appended to the stream for random targets;
  delivery latency (stream append to client receipt) p50/p99, every flag
  received exactly by its followers, and the service's RSS and CPU seconds.

This 2-core machine is shared and drifts: read the figures as ratios of runs
made back to back. ``LIVESIGNALS_BENCH_REDIS_URL`` measures against another Redis.

    python -m bench.gateway [--events 20000] [--customers 5000] [--targets 1000] [--connections 1000]
                            [--clone-to 1000000] [--compare-ref main] [--workers 2] [--no-push]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from app import embedded
from app.engine_process import engine_env
from bench.apply import messages
from bench.reference import worktree
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


def clone(client: Any, keys: Keys, customers: int, targets: list[str], total: int) -> list[str]:
    """Copy the engine's ``customers`` profiles and timelines round-robin to ``c<customers>`` .. ``c<total-1>``;
    the ids to read: the targets and every copy of one (they have the targets' open contacts)."""
    pool = [f"c{i:07d}" for i in range(customers)]
    pipe = client.pipeline(transaction=False)
    for c in pool:
        pipe.get(keys.profile(f"customer_id:{c}"))
        pipe.zrange(keys.timeline(f"customer_id:{c}"), 0, -1, withscores=True)
    rows = pipe.execute()
    profiles, timelines = rows[0::2], rows[1::2]
    wanted, read_ids = set(targets), list(targets)
    pipe = client.pipeline(transaction=False)
    for j in range(customers, total):
        src, c = j % customers, f"c{j:07d}"
        if profiles[src]:
            pipe.set(keys.profile(f"customer_id:{c}"), profiles[src])
        if timelines[src]:
            pipe.zadd(keys.timeline(f"customer_id:{c}"), dict(timelines[src]))
        if pool[src] in wanted:
            read_ids.append(c)
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()
    return read_ids


SERVE = """
import sys, uvicorn
from gateway.app import create_app
from livesignals.settings import Settings
s = Settings.load(None)
uvicorn.run(create_app(s), host="127.0.0.1", port=s.gateway_port, log_level="warning", access_log=False,
            http=sys.argv[1], loop=sys.argv[2])
"""


def serve(settings: Settings, code_dir: str | None = None, workers: int = 1) -> subprocess.Popen[bytes]:
    """The service in its own process: this checkout's ``livesignals serve``, or ``code_dir``'s code as it
    ran then (httptools and uvloop when its pyproject names them, else h11 and the asyncio loop)."""
    env = engine_env(settings)
    if code_dir is None:
        argv = [sys.executable, "-P", "-m", "gateway", "serve", "--workers", str(workers)]
    else:
        known = Path(code_dir, "livesignals", "settings.py").read_text()
        env = {k: v for k, v in env.items() if not k.startswith("LIVESIGNALS_") or k[12:].lower() in known}
        env["PYTHONPATH"] = code_dir + os.pathsep + env.get("PYTHONPATH", "")
        fast = "httptools" in Path(code_dir, "pyproject.toml").read_text()  # a ref that had them used them
        argv = [sys.executable, "-P", "-c", SERVE, *(("httptools", "uvloop") if fast else ("h11", "asyncio"))]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd=code_dir)  # fmt: skip
    base = f"http://127.0.0.1:{settings.gateway_port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    embedded.stop_process(proc)
    raise RuntimeError("the service did not start")


async def _get_loop(port: int, token: str, ids: list[str], start: int, step: int, end: float,
                    lat: list[float] | None) -> int:  # fmt: skip
    """GET 360s on one keep-alive connection until ``end``: a lean HTTP/1.1 client (httpx's own cost would
    be a large share of the machine's CPU); returns how many."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n, i = 0, start
    try:
        while time.perf_counter() < end:
            t = time.perf_counter()
            writer.write(f"GET /v1/customers/{ids[i % len(ids)]} HTTP/1.1\r\nHost: b\r\n"
                         f"Authorization: Bearer {token}\r\n\r\n".encode())  # fmt: skip
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"read failed: {head[:200]!r}")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            if lat is not None:
                lat.append(time.perf_counter() - t)
            n, i = n + 1, i + step
    finally:
        writer.close()
    return n


def reads(port: int, token: str, ids: list[str], seconds: float, threads: int, pid: int) -> dict[str, float]:
    """One connection (latency), then ``threads`` connections at once (throughput, per CPU second too)."""
    lat: list[float] = []
    asyncio.run(_get_loop(port, token, ids, 0, 1, time.perf_counter() + seconds, lat))

    async def many() -> int:
        end = time.perf_counter() + seconds
        return sum(await asyncio.gather(*(_get_loop(port, token, ids, k, threads, end, None) for k in range(threads))))

    cpu0 = cpu_s(pid) + sum(cpu_s(c) for c in _children(pid))
    done = asyncio.run(many())
    cpu = cpu_s(pid) + sum(cpu_s(c) for c in _children(pid)) - cpu0
    return {"p50_ms": percentile(lat, 0.5) * 1000, "p99_ms": percentile(lat, 0.99) * 1000,
            "rps_one_connection": len(lat) / seconds, f"rps_{threads}_connections": done / seconds,
            "requests_per_service_cpu_s": done / cpu if cpu else 0.0}  # fmt: skip


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


async def push(base: str, headers: dict[str, str], ids: list[str], connections: int, flags: int, client: Any,
               stream: str, pid: int) -> dict[str, float]:  # fmt: skip
    received: dict[int, list[tuple[str, float]]] = {i: [] for i in range(connections)}
    ready = asyncio.Event()
    opened = 0
    follows = [ids[i % len(ids)] for i in range(connections)]

    async def conn(i: int, http: httpx.AsyncClient) -> None:
        nonlocal opened
        async with http.stream("GET", f"{base}/v1/push?customer={follows[i]}", headers=headers) as r:
            if r.status_code != 200:
                raise RuntimeError(f"push refused: {r.status_code}")
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
    ap.add_argument("--clone-to", type=int, default=0, help="customers in Redis in all (copies of the engine's)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=8, help="connections at once for the throughput figure")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--compare-ref", help="also serve this commit's code (e.g. main), alternating")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--connections", type=int, default=1_000)
    ap.add_argument("--flags", type=int, default=1_000)
    ap.add_argument("--no-push", action="store_true")
    ap.add_argument("--no-reads", action="store_true")
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
        gateway_push_max_customers=50, gateway_push_max_connections=args.connections + 10,
        gateway_audited_per_min=1_000_000,  # one token makes every read: no per-caller bound here
    )  # fmt: skip
    client = redis.Redis.from_url(url)
    keys = Keys(settings.key_prefix)
    proc = None
    try:
        t0 = time.perf_counter()
        ids = fill(settings, client, args.events, args.customers, args.targets)
        print(f"filled {args.customers} customers ({args.events} events) in {time.perf_counter() - t0:.0f} s")
        read_ids = ids
        if args.clone_to > args.customers:
            t0 = time.perf_counter()
            read_ids = clone(client, keys, args.customers, ids, args.clone_to)
            print(f"copied to {args.clone_to} customers in {time.perf_counter() - t0:.0f} s; "
                  f"{client.dbsize()} keys, Redis {client.info('memory')['used_memory_human']}")  # fmt: skip
        random.Random(3).shuffle(read_ids)
        tok = issue_token(secret, "sup", "supervisor", ["bench"], ttl_s=3600, now=int(time.time()))
        runs: list[tuple[str, dict[str, float]]] = []

        def measure(name: str, code_dir: str | None, workers: int = args.workers) -> None:
            p = serve(settings, code_dir, workers if code_dir is None else 1)
            try:
                r = reads(settings.gateway_port, tok, read_ids, args.seconds, args.threads, p.pid)
            finally:
                embedded.stop_process(p)
            print(f"360 reads, {name}:", {k: round(v, 2) for k, v in r.items()})
            runs.append((name, r))

        if args.no_reads:
            pass
        elif args.compare_ref:
            with worktree(args.compare_ref) as code_dir:
                for _ in range(args.pairs):
                    measure(args.compare_ref, code_dir)
                    measure("this", None)
            _ratios(args.compare_ref, runs, args.threads)
        elif args.workers > 1:  # one process against --workers, back to back
            for _ in range(args.pairs):
                measure("this, 1 worker", None, 1)
                measure(f"this, {args.workers} workers", None)
            _ratios("1 worker", runs, args.threads)
        else:
            measure("this", None)
        if not args.no_push:
            proc = serve(settings, None, 1)
            headers = {"Authorization": f"Bearer {tok}"}
            base = f"http://127.0.0.1:{settings.gateway_port}"
            p = asyncio.run(push(base, headers, ids, args.connections, args.flags, client, keys.flags_stream,
                                 proc.pid))  # fmt: skip
            print("push:", {k: round(v, 2) if isinstance(v, float) else v for k, v in p.items()})
        print("audit entries:", client.xlen(f"{settings.key_prefix}:audit"))
    finally:
        if proc is not None:
            embedded.stop_process(proc)
        if server is not None:
            server.stop()


def _ratios(ref: str, runs: list[tuple[str, dict[str, float]]], threads: int) -> None:
    """This code's figures over the reference's, pair by pair (each pair ran back to back)."""
    for (_, old), (_, new) in zip(runs[0::2], runs[1::2], strict=True):
        print(f"ratio this/{ref}:", {
            "p50": round(new["p50_ms"] / old["p50_ms"], 3), "p99": round(new["p99_ms"] / old["p99_ms"], 3),
            f"rps_{threads}": round(new[f"rps_{threads}_connections"] / old[f"rps_{threads}_connections"], 2),
            "per_cpu_s": round(new["requests_per_service_cpu_s"] / old["requests_per_service_cpu_s"], 2),
        })  # fmt: skip


if __name__ == "__main__":
    main()
