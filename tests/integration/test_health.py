"""Health, readiness, lag, freshness, the status line and graceful shutdown, on the real engine process.

The engine runs as ``livesignals run`` does (a Bytewax process) against the
session's Kafka and Redis; the tests talk to it over HTTP and signals only.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from app import embedded
from app.engine_process import start_engine, stop_process
from livesignals import serde
from livesignals.contract import primary_key
from tests.helpers import T0, event, produce, wait_committed

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def get(port: int, path: str) -> tuple[int, bytes]:
    """HTTP GET on the engine: status and body (errors included)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def samples(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of the engine's /metrics, by sample name."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(get(port, "/metrics")[1].decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def wait_for(check: Any, timeout_s: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or check}")


def json_lines(path: Any) -> list[dict[str, Any]]:
    out = []
    for line in Path(path).read_bytes().splitlines():
        if line.startswith(b"{"):
            out.append(orjson.loads(line))
    return out


def produce_events(settings: Any, n: int, customers: int = 40, start: int = 0) -> None:
    events = [
        event("web_event", f"c{i % customers}", T0 + i * 1000, event_id=f"e{start + i}", action="page_view")
        for i in range(n)
    ]
    produce(settings.kafka_bootstrap, settings.input_topics[0],
            [(primary_key(e["customer"]).encode(), serde.dumps(e)) for e in events])  # fmt: skip


def group_offsets(settings: Any, partitions: int = 4) -> dict[int, int]:
    admin = AdminClient(settings.kafka_client_config())
    request = ConsumerGroupTopicPartitions(
        settings.consumer_group, [TopicPartition(settings.input_topics[0], p) for p in range(partitions)]
    )
    got = admin.list_consumer_group_offsets([request])[settings.consumer_group].result()
    return {tp.partition: tp.offset for tp in got.topic_partitions}


def test_health_readiness_lag_freshness_status_and_graceful_shutdown(kafka_settings, tmp_path):
    s = kafka_settings.replace(status_interval_s=0.5, status_log_interval_s=1.0, quiet_hours="0-0")
    produce_events(s, 400)
    log_path = tmp_path / "engine.log"
    with open(log_path, "wb") as log:
        engine = start_engine(s, log=log)
    port = s.metrics_port
    try:
        wait_committed(s, 400, engine)
        assert get(port, "/healthz")[0] == 200
        assert orjson.loads(get(port, "/healthz")[1])["status"] == "alive"
        _, body = wait_for(lambda: (r := get(port, "/readyz"))[0] == 200 and r, what="/readyz 200")
        checks = orjson.loads(body)["checks"]
        assert checks["redis"] and checks["kafka"] and checks["rules_loaded"] and checks["not_fenced"]
        assert checks["partitions"] == 4
        for path in ("/", "/ready", "/metrics/extra", "/healthz/x"):
            code, body = get(port, path)
            assert code == 404 and orjson.loads(body)["paths"] == ["/metrics", "/healthz", "/readyz"], path

        def drained() -> Any:
            lag = samples(port).get("livesignals_consumer_lag_messages", [])
            return len(lag) == 8 and all(v == 0 for _, v in lag) and lag  # 4 partitions x (input, repartition)

        lags = wait_for(drained, what="lag 0 on every owned partition")
        assert {labels["topic"] for labels, _ in lags} == {s.input_topics[0], s.repartition_topic}
        m = samples(port)
        assert m["livesignals_event_freshness_seconds_count"][0][1] >= 400
        assert m["livesignals_batches_committed_total"][0][1] >= 1
        assert all("customer" not in labels for name in m for labels, _ in m[name])

        produce_events(s, 100, start=400)  # lag appears, then drains again
        wait_committed(s, 500, engine)
        wait_for(drained, what="lag 0 after the second burst")
        wait_for(lambda: any(d["event"] == "status" for d in json_lines(log_path)), what="a JSON status line")

        os.killpg(engine.pid, signal.SIGTERM)
        assert engine.wait(30) == 0
    finally:
        stop_process(engine)
    lines = json_lines(log_path)
    status = [d for d in lines if d["event"] == "status"]
    assert {"throughput_per_s", "lag_messages", "freshness_s", "messages_committed", "batch_failures"} <= set(
        status[-1]
    )
    shutdown = [d for d in lines if d["event"] == "shutdown"]
    assert len(shutdown) == 1 and shutdown[0]["batch_finished"] is True and shutdown[0]["messages_committed"] >= 100
    assert b"SIGTERM: finishing the batch in flight" in log_path.read_bytes()
    # the final offsets reached the consumer group: standard lag tools see the engine drained
    from tests.helpers import committed

    assert sum(group_offsets(s).values()) == committed(s) == 500


def test_a_taken_metrics_port_stops_the_engine_with_one_clear_line(kafka_settings, tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        s = kafka_settings.replace(metrics_port=port, metrics_host="127.0.0.1")
        log_path = tmp_path / "engine.log"
        with open(log_path, "wb") as log:
            engine = start_engine(s, log=log)
        try:
            assert engine.wait(60) == 2
        finally:
            stop_process(engine)
    text = log_path.read_text()
    lines = [line for line in text.splitlines() if "cannot serve metrics" in line]
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "LIVESIGNALS_METRICS_PORT" in lines[0], text
    assert "Traceback" not in text


def test_readyz_says_503_and_why_while_redis_is_unreachable_and_sigterm_still_exits(kafka_settings, tmp_path):
    dead = embedded.free_port()
    s = kafka_settings.replace(redis_url=f"redis://127.0.0.1:{dead}/0", status_interval_s=0.5, retry_backoff_max_s=1)
    engine = start_engine(s)
    try:
        embedded.wait_for_port(s.metrics_port, timeout_s=60, proc=engine)
        assert get(s.metrics_port, "/healthz")[0] == 200

        def not_ready() -> Any:
            code, body = get(s.metrics_port, "/readyz")
            checks = orjson.loads(body)["checks"]
            return code == 503 and checks["redis"] is False and checks["partitions_owned"] is False and checks

        wait_for(not_ready, what="/readyz 503 naming redis")
        os.killpg(engine.pid, signal.SIGTERM)
        assert engine.wait(30) == 0
    finally:
        stop_process(engine)


def test_sigterm_during_a_redis_outage_abandons_the_waiting_batch_and_exits_0(kafka_settings, tmp_path):
    redis_server = embedded.start_redis(prefer_system=True)
    s = kafka_settings.replace(redis_url=f"redis://{redis_server.address}/0", retry_backoff_max_s=1.0)
    produce_events(s, 100)
    log_path = tmp_path / "engine.log"
    with open(log_path, "wb") as log:
        engine = start_engine(s, log=log)
    try:
        wait_committed(s, 100, engine)
        redis_server.stop()
        produce_events(s, 50, start=100)

        def failing() -> Any:
            return any(v >= 1 for labels, v in samples(s.metrics_port).get("livesignals_batch_failures_total", [])
                       if labels.get("cause") == "redis")  # fmt: skip

        wait_for(failing, what="a batch failing on Redis")
        os.killpg(engine.pid, signal.SIGTERM)
        assert engine.wait(30) == 0
    finally:
        stop_process(engine)
        redis_server.stop()
    text = log_path.read_bytes()
    assert b"abandoned at shutdown (ConnectionError)" in text
    assert [d["event"] for d in json_lines(log_path)].count("shutdown") == 1
