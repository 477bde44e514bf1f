"""What the input consumers' ``fetch.wait.max.ms`` costs: latency and the broker's CPU (``kafka_fetch_wait_ms``).

For each wait of ``--waits``: ``--partitions`` consumers, one per partition as the engine's source has (each
with the wait), read a topic of their own; the broker's CPU (and this process's: the consumers' librdkafka
threads) is measured over ``--idle-seconds`` with nothing to read, then one record is produced every 5-50 ms
(``--records``) and the latency from produce to consume is taken (p50 / p99). The broker's CPU is read from
``/proc`` when its process is known: the embedded broker started here, or ``--broker-pid``.

    python -m bench.fetch_wait [--partitions 24] [--waits 10,100,500] [--broker-pid PID]

With ``LIVESIGNALS_BENCH_KAFKA`` set (e.g. Apache Kafka from ``deploy/local/apache-kafka.sh``) that broker is
used; else the embedded one.
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time
import uuid
from typing import Any

from app import embedded
from bench.common import percentile, write_result
from bench.cpu_shares import _process_s


def measure(kafka: str, broker_pid: int | None, partitions: int, wait_ms: int, args: argparse.Namespace) -> dict:
    """One wait: the broker's and the consumers' cores while idle, and produce-to-consume latency in ms."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bench.fetchwait.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    latencies: list[float] = []
    stop = threading.Event()

    def read(partition: int) -> None:
        c = Consumer({"bootstrap.servers": kafka, "group.id": "bench-fetchwait", "enable.auto.commit": False,
                      "fetch.wait.max.ms": wait_ms})  # fmt: skip
        c.assign([TopicPartition(topic, partition, 0)])
        while not stop.is_set():
            m = c.poll(0.05)
            if m is not None and not m.error():
                latencies.append(time.time() * 1000 - float(m.value() or b"0"))
        c.close()

    readers = [threading.Thread(target=read, args=(p,), daemon=True) for p in range(partitions)]
    for t in readers:
        t.start()
    time.sleep(3)  # assigned and fetching
    broker0, own0, t0 = _process_s(broker_pid) if broker_pid else 0.0, _process_s(os.getpid()), time.monotonic()
    time.sleep(args.idle_seconds)
    wall = time.monotonic() - t0
    broker = (_process_s(broker_pid) - broker0) / wall if broker_pid else None
    own = (_process_s(os.getpid()) - own0) / wall
    producer = Producer({"bootstrap.servers": kafka, "linger.ms": 0})
    rng = random.Random(7)
    for i in range(args.records):
        time.sleep(rng.uniform(0.005, 0.05))
        producer.produce(topic, f"{time.time() * 1000:.3f}".encode(), partition=i % partitions)
        producer.poll(0)
    producer.flush(30)
    time.sleep(1)
    stop.set()
    for t in readers:
        t.join(5)
    out: dict[str, Any] = {"wait_ms": wait_ms, "partitions": partitions, "consumers_cores_idle": round(own, 3)}
    if broker is not None:
        out["broker_cores_idle"] = round(broker, 3)
    out["latency_p50_ms"] = round(percentile(latencies, 0.5), 1)
    out["latency_p99_ms"] = round(percentile(latencies, 0.99), 1)
    out["records"] = len(latencies)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--partitions", type=int, default=24)
    ap.add_argument("--waits", default="10,100,500")
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--records", type=int, default=200)
    ap.add_argument("--broker-pid", type=int, help="the broker's process, when it is not the embedded one")
    args = ap.parse_args()
    kafka, started = os.environ.get("LIVESIGNALS_BENCH_KAFKA"), None
    if not kafka:
        started = embedded.start_kafka()
        kafka = started.address
    broker_pid = started.proc.pid if started else args.broker_pid
    try:
        runs = [measure(kafka, broker_pid, args.partitions, int(w), args) for w in args.waits.split(",")]
    finally:
        if started:
            started.stop()
    for r in runs:
        print(r)
    write_result("fetch_wait", {"broker": "embedded" if started else kafka, "runs": runs})


if __name__ == "__main__":
    main()
