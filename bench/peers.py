"""LiveSignals beside two Python peers on one "360-lite" workload (issue 16, item 1).

The workload: decode each JSON event, keep per-customer counters and 1 h /
24 h windows, evaluate three flag rules, publish the flags to Kafka. Three
implementations read the same simulated stream from the same Kafka, one worker
each:

* ``quix``: a Quix Streams application, its own RocksDB state store
  (``bench.peers_quix``);
* ``bytewax``: a per-item Bytewax ``stateful_map`` flow (``bench.peers_bytewax``);
* ``livesignals``: the engine itself, models off, with ``bench/peers_rules.toml``
  (the same three rules), state in Redis.

For each, in alternating runs (``--pairs`` rounds of all three over the same
backlog, each from a fresh state): events/s from the tenth-percent message to
the end (start-up left out), CPU µs per event of the worker process over the
same span (for LiveSignals also the Redis server's, which the peers do not
have), flags published. Then each in turn tails a topic of its own while events
arrive at a steady ``--live-rate`` (event time = now): p50/p99 flag latency,
from the input message's Kafka timestamp to the flag's arrival at a consumer.

Quix Streams needs Apache Kafka (3.28 fails on the embedded broker's
``describe_configs``) and is an optional extra::

    .venv/bin/pip install -e '.[bench]'
    KAFKA_PORT=39492 deploy/local/apache-kafka.sh start
    LIVESIGNALS_BENCH_KAFKA=127.0.0.1:39492 .venv/bin/python -m bench.peers
    KAFKA_PORT=39492 deploy/local/apache-kafka.sh stop

``--peers bytewax,livesignals`` runs without either (on the embedded broker).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from app.engine_process import start_engine, stop_process
from bench.common import bench_settings, percentile, produce_events, reference_simulator, services, tail_from_start
from bench.scale import committed_fast
from livesignals import serde
from state.connection import connect

PEERS = ("quix", "bytewax", "livesignals")
WARM_UP = "warmup0"
"""Customer id of the events that tell a live run has started (their flags are not measured)."""
RULES = Path(__file__).with_name("peers_rules.toml")
NEEDS_QUIX = "bench.peers needs Quix Streams for --peers quix: .venv/bin/pip install -e '.[bench]'"
NEEDS_KAFKA = ("bench.peers needs Apache Kafka for --peers quix: KAFKA_PORT=39492 deploy/local/apache-kafka.sh start, "
               "then set LIVESIGNALS_BENCH_KAFKA=127.0.0.1:39492")  # fmt: skip


def create_topics(kafka: str, names: list[str], partitions: int = 4) -> None:
    """Create ``names`` with ``partitions`` partitions (existing ones are left as they are)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka})
    for name, future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).items():
        try:
            future.result(30)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise RuntimeError(f"cannot create topic {name}: {exc}") from exc


def published(kafka: str, topic: str, idle_s: float = 2.0) -> int:
    """Messages on ``topic``, read from its start until none came for ``idle_s`` (the embedded
    broker's high watermarks are not reliable enough to count with)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": kafka, "group.id": f"peers-count-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 50})  # fmt: skip
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        n, idle = 0, time.monotonic()
        while time.monotonic() - idle < idle_s:
            got = sum(1 for m in c.consume(10_000, 0.2) if m.error() is None)
            if got:
                n, idle = n + got, time.monotonic()
        return n
    finally:
        c.close()


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) of process ``pid``, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_s(settings: Any) -> float:
    """CPU seconds the Redis server has used so far."""
    info = connect(settings).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def peer_argv(peer: str, kafka: str, topic: str, flags: str, events: int) -> list[str]:
    """Command line of a Quix or Bytewax child (``events`` 0: tail until stopped)."""
    argv = [sys.executable, "-P", "-m", f"bench.peers_{peer}", "--kafka", kafka, "--topic", topic, "--flags", flags,
            "--events", str(events)]  # fmt: skip
    if peer == "quix":
        argv += ["--group", f"peers-{uuid.uuid4().hex[:8]}", "--state-dir", tempfile.mkdtemp(prefix="peers-quix-")]
    return argv


def remove_state(argv: list[str]) -> None:
    """Delete the Quix child's state directory (each run starts from an empty store)."""
    if "--state-dir" in argv:
        shutil.rmtree(argv[argv.index("--state-dir") + 1], ignore_errors=True)


def child_env() -> dict[str, str]:
    """The children import ``bench`` from this checkout (``-P`` leaves out the current directory)."""
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


def run_peer(peer: str, kafka: str, topic: str, events: int, timeout_s: float) -> dict[str, Any]:
    """One drain of the backlog by a Quix or Bytewax child: its own marks give the figures."""
    flags = f"peers.flags.{peer}.{uuid.uuid4().hex[:8]}"
    create_topics(kafka, [flags])
    argv = peer_argv(peer, kafka, topic, flags, events)
    try:
        done = subprocess.run(argv, env=child_env(), capture_output=True, timeout=timeout_s, check=False)
    finally:
        remove_state(argv)
    lines = done.stdout.decode().strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{peer} exited with {done.returncode}: {done.stderr.decode()[-2000:]}")
    report = serde.loads(lines[-1])
    (t_mark, cpu_mark), (t_end, cpu_end) = report["marks"]["mark"], report["marks"]["end"]
    span = events - report["mark_at"]
    return {"events_per_s": span / (t_end - t_mark), "cpu_us_per_event": (cpu_end - cpu_mark) / span * 1e6,
            "flags": published(kafka, flags), "seen": report["seen"]}  # fmt: skip


def run_livesignals(kafka: str, redis_url: str, topic: str, events: int, timeout_s: float) -> dict[str, Any]:
    """One drain of the backlog by one LiveSignals worker (models off, the 360-lite rules), on an emptied Redis."""
    name = f"peers{uuid.uuid4().hex[:6]}"
    s = bench_settings(kafka, redis_url, name, input_topics=(topic,), models_enabled=False, rules_path=str(RULES))
    connect(s).flushall()
    proc = start_engine(s)
    t0 = time.monotonic()
    mark: tuple[float, int, float, float] | None = None
    try:
        while (n := committed_fast(s)) < events:
            if proc.poll() is not None:
                raise RuntimeError(f"engine exited with {proc.returncode}")
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"livesignals: {n}/{events} after {timeout_s}s")
            if mark is None and n >= events // 10:
                mark = (time.monotonic(), n, proc_cpu_s(proc.pid), redis_cpu_s(s))
            time.sleep(0.02)
        t_end, cpu_end, redis_end = time.monotonic(), proc_cpu_s(proc.pid), redis_cpu_s(s)
    finally:
        stop_process(proc)
    if mark is None:  # all of it committed before the first look
        mark = (t0, 0, 0.0, redis_end)
    span = events - mark[1]
    return {"events_per_s": span / (t_end - mark[0]), "cpu_us_per_event": (cpu_end - mark[2]) / span * 1e6,
            "redis_cpu_us_per_event": (redis_end - mark[3]) / span * 1e6,
            "flags": published(kafka, s.flags_topic), "seen": events}  # fmt: skip


class FlagClock(threading.Thread):
    """Reads a flags topic from its start; keeps arrival time minus ``source_timestamp`` of each flag (ms)."""

    def __init__(self, kafka: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.kafka, self.topic = kafka, topic
        self.latencies: list[float] = []
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.warm = threading.Event()
        """Set when a flag of the warm-up customer arrived: the peer is consuming and publishing."""

    def run(self) -> None:
        tail_from_start(self.kafka, self.topic, "peers-clock", self.stopping, self.ready, self._arrived)

    def _arrived(self, doc: dict[str, Any], now: float) -> None:
        if WARM_UP in doc["customer"]:
            self.warm.set()
        else:
            self.latencies.append(now - doc["source_timestamp"])


def warm_up(kafka: str, topic: str, clock: FlagClock, timeout_s: float) -> None:
    """Events of one warm-up customer, 10 every second, until its flag arrives: the peer has started,
    has its partitions and publishes (start-up is not latency)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": kafka, "linger.ms": 5})
    deadline, i = time.monotonic() + timeout_s, 0
    while not clock.warm.wait(1.0 if i else 0):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no warm-up flag on {clock.topic} after {timeout_s}s")
        for _ in range(10):
            i += 1
            e: dict[str, Any] = {
                "schema_version": 1, "event_id": f"{WARM_UP}-{i}", "type": "web_event", "channel": "web",
                "customer": {"customer_id": WARM_UP}, "event_time": int(time.time() * 1000),
                "payload": {"action": "page_view", "session_id": WARM_UP},
            }  # fmt: skip
            p.produce(topic, serde.dumps(e), f"customer_id:{WARM_UP}".encode())
        p.flush(10)


def live_latency(peer: str, kafka: str, redis_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Flag latency of ``peer`` tailing a topic of its own at a steady ``--live-rate``."""
    tag = uuid.uuid4().hex[:8]
    topic, flags = f"peers.live.{peer}.{tag}", f"peers.liveflags.{peer}.{tag}"
    create_topics(kafka, [topic, flags])
    if peer == "livesignals":
        s = bench_settings(kafka, redis_url, f"live{tag}", input_topics=(topic,), flags_topic=flags,
                           models_enabled=False, rules_path=str(RULES))  # fmt: skip
        connect(s).flushall()
        proc = start_engine(s)
    else:
        argv = peer_argv(peer, kafka, topic, flags, 0)
        proc = subprocess.Popen(argv, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
    clock = FlagClock(kafka, flags)
    try:
        clock.start()
        clock.ready.wait(15)
        warm_up(kafka, topic, clock, args.start_wait)
        sim = reference_simulator(args.live_customers, seed=8)
        produce_events(sim, kafka, topic, int(args.live_rate * args.live_seconds), rate=args.live_rate)
        time.sleep(3)
    finally:
        clock.stopping.set()
        clock.join(10)
        stop_process(proc)
        if peer != "livesignals":
            remove_state(argv)
    lat = clock.latencies
    return {"flags": len(lat), "p50_ms": round(percentile(lat, 0.5), 1), "p99_ms": round(percentile(lat, 0.99), 1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole comparison; returns the figures."""
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = set(peers) - set(PEERS)
    if unknown:
        raise SystemExit(f"unknown peers {sorted(unknown)}; choose from {', '.join(PEERS)}")
    if "quix" in peers:
        try:
            import quixstreams  # noqa: F401
        except ImportError:
            raise SystemExit(NEEDS_QUIX) from None
        if not os.environ.get("LIVESIGNALS_BENCH_KAFKA"):
            raise SystemExit(NEEDS_KAFKA)
    with services() as (kafka, redis_url):
        topic = f"peers.in.{uuid.uuid4().hex[:8]}"
        create_topics(kafka, [topic])
        if args.pairs:
            produce_events(reference_simulator(args.customers), kafka, topic, args.events)
        runs: dict[str, list[dict[str, Any]]] = {p: [] for p in peers}
        for i in range(args.pairs):
            for peer in peers:
                if peer == "livesignals":
                    r = run_livesignals(kafka, redis_url, topic, args.events, args.timeout)
                else:
                    r = run_peer(peer, kafka, topic, args.events, args.timeout)
                runs[peer].append(r)
                print(f"round {i}: {peer:>11}: {r['events_per_s']:8.0f} events/s  "
                      f"{r['cpu_us_per_event']:6.1f} µs CPU/event  {r['flags']} flags", flush=True)  # fmt: skip
        live = {p: live_latency(p, kafka, redis_url, args) for p in peers} if args.live_seconds > 0 else {}
    return summarise(args, runs, live)


def summarise(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]], live: dict[str, Any]) -> dict[str, Any]:
    """Medians per implementation, LiveSignals' ratio to each peer per round."""
    result: dict[str, Any] = {"events": args.events, "customers": args.customers, "rounds": args.pairs,
                              "load_average": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    for peer, rs in runs.items():
        result[peer] = {"live_rate": args.live_rate, "live": live[peer]} if peer in live else {}
        if not rs:  # --pairs 0: latency only
            continue
        result[peer].update({
            "events_per_s": [round(r["events_per_s"]) for r in rs],
            "events_per_s_median": round(statistics.median(r["events_per_s"] for r in rs)),
            "cpu_us_per_event_median": round(statistics.median(r["cpu_us_per_event"] for r in rs), 1),
            "flags": [r["flags"] for r in rs],
        })  # fmt: skip
        if "redis_cpu_us_per_event" in rs[0]:
            result[peer]["redis_cpu_us_per_event_median"] = round(
                statistics.median(r["redis_cpu_us_per_event"] for r in rs), 1
            )
    if runs.get("livesignals"):
        for peer in runs:
            if peer != "livesignals":
                pairs = list(zip(runs["livesignals"], runs[peer], strict=True))
                ratios = [a["events_per_s"] / b["events_per_s"] for a, b in pairs]
                result[f"livesignals_to_{peer}_per_round"] = [round(x, 2) for x in ratios]
                result[f"livesignals_to_{peer}_median"] = round(statistics.median(ratios), 2)
                cpu = statistics.median(a["cpu_us_per_event"] / b["cpu_us_per_event"] for a, b in pairs)
                result[f"livesignals_cpu_per_event_to_{peer}_median"] = round(cpu, 2)
    return result


def parser() -> argparse.ArgumentParser:
    """Command-line options (the test runs the same with tiny sizes)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument(
        "--pairs", type=int, default=2, help="rounds of all the peers over the same backlog (0: latency only)"
    )
    ap.add_argument("--peers", default=",".join(PEERS), help="which to run, comma-separated")
    ap.add_argument("--live-rate", type=float, default=200.0)
    ap.add_argument("--live-seconds", type=float, default=30.0, help="0: no latency phase")
    ap.add_argument("--live-customers", type=int, default=1000)
    ap.add_argument("--start-wait", type=float, default=120.0, help="most seconds a live run may take to start")
    ap.add_argument("--timeout", type=float, default=900.0)
    return ap


def main() -> None:
    from bench.common import write_result

    write_result("peers", run(parser().parse_args()))


if __name__ == "__main__":
    main()
