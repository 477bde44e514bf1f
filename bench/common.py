"""Shared benchmark plumbing: services, workload production, engine runs."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from app import embedded
from app.engine_process import start_engine, stop_process
from app.simulator import Simulator, SimulatorConfig
from app.topics import ensure_topics
from livesignals import serde
from livesignals.contract import primary_key
from livesignals.settings import Settings
from state.connection import connect
from state.keys import Keys
from state.store import ProfileStore


@contextmanager
def services() -> Iterator[tuple[str, str]]:
    """Kafka bootstrap and Redis URL: given by LIVESIGNALS_BENCH_KAFKA/_REDIS_URL, else embedded."""
    started: list[embedded.Service] = []
    try:
        kafka = os.environ.get("LIVESIGNALS_BENCH_KAFKA")
        if not kafka:
            started.append(embedded.start_kafka())
            kafka = started[-1].address
        redis_url = os.environ.get("LIVESIGNALS_BENCH_REDIS_URL")
        if not redis_url:
            started.append(embedded.start_redis(prefer_system=True))
            redis_url = f"redis://{started[-1].address}/0"
        yield kafka, redis_url
    finally:
        for s in started:
            s.stop()


def bench_settings(kafka: str, redis_url: str, name: str, **changes: Any) -> Settings:
    """Settings for one benchmark run, isolated by key prefix and output topics."""
    s = Settings.load(env={}).replace(
        kafka_bootstrap=kafka,
        redis_url=redis_url,
        key_prefix=name,
        input_topics=("bench.in",),
        dead_letter_topic=f"bench.dlq.{name}",
        flags_topic=f"bench.flags.{name}",
        triggers_topic=f"bench.triggers.{name}",
        metrics_port=embedded.free_port(),
        topic_partitions=4,
        log_level="WARNING",
    )
    if not os.environ.get("LIVESIGNALS_BENCH_KAFKA"):  # the embedded broker (services())
        s = s.replace(kafka_fetch_wait_ms=embedded.FETCH_WAIT_MS)
    s = s.replace(**changes)
    ensure_topics(s)
    return s


def reference_simulator(customers: int, seed: int = 7, step_ms: float = 20.0, skew: float = 1.1) -> Simulator:
    """The reference workload: skewed activity over ``customers`` customers."""
    start = int(time.time() * 1000) - 6 * 3_600_000
    config = SimulatorConfig(customers=customers, seed=seed, start_ms=start, step_ms=step_ms, activity_skew=skew)
    return Simulator(config)


def ready_producer(kafka: str, timeout_s: float = 30.0) -> Any:
    """The benchmarks' idempotent, keyed producer, returned once librdkafka holds its producer id.

    A fresh idempotent producer keeps the records it is given for about 0.5-1 s while it acquires its
    producer id (measured here, on the embedded broker and on Apache Kafka alike: its first record
    confirmed after ~500 ms, the next after 0.4 ms), and Kafka stamps a record when it is produced. A
    benchmark that times a flag from its message's Kafka timestamp counted that wait as the engine's:
    the first half second of a live run's flags then carried it, enough to make a p99 (``bench.latency``
    at 25 % load, one run: p99 431 ms with those flags, 225 ms without the first 500 ms). Readiness is
    read from librdkafka's own statistics (``eos.idemp_state`` "Assigned"), so nothing is produced for it.
    """
    import orjson
    from confluent_kafka import Producer

    from livesignals.partitioner import PRODUCER_CONFIG

    states: list[str] = []
    p = Producer({"bootstrap.servers": kafka, "linger.ms": 5, "enable.idempotence": True, **PRODUCER_CONFIG,
                  "statistics.interval.ms": 50, "stats_cb": lambda raw: states.append(
                      orjson.loads(raw).get("eos", {}).get("idemp_state", ""))})  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while not states or states[-1] != "Assigned":
        if time.monotonic() > deadline:
            raise TimeoutError(f"the benchmark producer got no producer id from {kafka} in {timeout_s:g}s")
        p.poll(0.05)
    return p


def produce_events(
    sim: Simulator,
    kafka: str,
    topic: str,
    count: int,
    rate: float = 0.0,
    misrouted: float = 0.0,
    seed: int = 5,
    pace_every: int = 50,
) -> int:
    """Produce ``count`` simulated events keyed by customer (rate 0 = flat out).

    ``misrouted``: the share of customers whose events are keyed by their visitor cookie instead (a mis-keyed
    web tracker; one stable cookie per customer, chosen by ``seed``): with ``P`` partitions about
    ``(P - 1) / P`` of them land on a partition that does not own the customer and go through the repartition
    topic (:mod:`operators.routing`). One cookie per customer keeps each customer's events in order, so two
    uninterrupted runs still end in the same state (a random key per event would not: how a customer's
    direct and rerouted events interleave would depend on timing).

    ``pace_every``: with a ``rate``, the producer catches up with the clock every this many events (50: bursts
    of 50; ``bench.latency`` paces every few milliseconds, so that arrivals are steady, not bursts).
    """
    import zlib

    p = ready_producer(kafka)
    started = time.monotonic()
    for i, (e, _) in enumerate(sim.stream(count), 1):
        if rate:
            e["event_time"] = int(time.time() * 1000)
        key = primary_key(e["customer"])
        cookie = zlib.crc32(f"{seed}|{key}".encode())
        if cookie % 10_000 < misrouted * 10_000:
            key = f"cookie-{cookie}"
        while True:
            try:
                p.produce(topic, serde.dumps(e), key.encode())
                break
            except BufferError:
                p.poll(0.05)
        if rate and i % pace_every == 0:
            ahead = i / rate - (time.monotonic() - started)
            if ahead > 0:
                p.poll(0)
                time.sleep(ahead)
    p.flush(60)
    return count


def committed(settings: Settings, layout: str = "current") -> int:
    """Input messages the engine has committed (sum of resume offsets).

    ``layout="skeleton"`` reads where the walking skeleton (4359b0b, the yardstick of
    ``--compare-ref``) kept them: one hash ``<prefix>:offsets:<topic>`` of partition -> next offset.
    Today's engine keeps them in each partition's meta, which the skeleton never writes.
    """
    r = connect(settings)
    if layout == "skeleton":
        return sum(int(o) for t in settings.input_topics for o in r.hvals(f"{settings.key_prefix}:offsets:{t}"))
    keys = Keys(settings.key_prefix)
    store = ProfileStore(r, keys)
    return sum(sum(store.resume_offsets(t).values()) for t in settings.input_topics)


def redis_commands(settings: Settings) -> int:
    """Commands the Redis server has processed so far."""
    return int(connect(settings).info("stats")["total_commands_processed"])


@dataclass
class RunResult:
    """What one engine run over a backlog measured."""

    events: int
    seconds: float
    steady_events_per_s: float
    redis_commands_per_event: float


def drain(
    settings: Settings, total: int, timeout_s: float = 900.0, code_dir: str | None = None, layout: str = "current"
) -> RunResult:
    """Start one engine worker on the backlog, time it until ``total`` are committed.

    ``code_dir``: run another commit's engine (a worktree); ``layout``: where that engine keeps its
    offsets (see :func:`committed`).
    """
    cmds_before = redis_commands(settings)
    proc = start_engine(settings, code_dir=code_dir)
    t0 = time.monotonic()
    mark: tuple[float, int] | None = None
    try:
        while (done := committed(settings, layout)) < total:
            if proc.poll() is not None:
                raise RuntimeError(f"engine exited with {proc.returncode}")
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"{done}/{total} after {timeout_s}s")
            if mark is None and done >= total // 10:
                mark = (time.monotonic(), done)  # after start-up and the first fetches
            time.sleep(0.02)
        t1 = time.monotonic()
    finally:
        stop_process(proc)
    steady = (total - mark[1]) / (t1 - mark[0]) if mark and t1 > mark[0] else total / (t1 - t0)
    cmds = redis_commands(settings) - cmds_before
    return RunResult(total, t1 - t0, steady, cmds / total)


def write_result(name: str, result: dict[str, Any]) -> None:
    """Print the figures and keep them in bench/results/<name>.json."""
    import json
    from pathlib import Path

    text = json.dumps(result, indent=2)
    print(text)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(text)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values`` by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def tail_from_start(
    kafka: str, topic: str, group_prefix: str, stopping: Any, ready: Any, on_record: Callable[[Any, float], None]
) -> None:
    """Read every partition of ``topic`` from its start until ``stopping`` is set (``ready`` is set once
    assigned), calling ``on_record(parsed JSON value, arrival ms)`` for each record with a value: the flag
    clocks of ``bench.latency`` and ``bench.peers``."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": kafka, "group.id": f"{group_prefix}-{uuid.uuid4().hex[:6]}",
                  "fetch.wait.max.ms": 5, "enable.auto.commit": False})  # fmt: skip
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    ready.set()
    try:
        while not stopping.is_set():
            for m in c.consume(1000, 0.05):
                value = m.value()
                if m.error() is None and value:
                    on_record(serde.loads(value), time.time() * 1000)
    finally:
        c.close()
