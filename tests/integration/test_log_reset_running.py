"""A broker that loses its log while the engine runs stops the engine, never skips silently (#10 break-test 10d H2).

The claim's check (``test_log_reset.py``) ran only at start-up. A broker restarted empty under a running
engine (its consumer frozen meanwhile, as a paused pod or a slow reconnect leaves it), with producers writing
on, had a new log past the engine's fetch position when the consumer reconnected: the fetch was in range and
1,600 of 3,200 new events were skipped, lag 0, no error; the log mark written after the next commit described
the new log, so a restart's claim passed too. Now the reader re-reads the last record it handed out after a
disconnect (:mod:`flows.log_watch`): another record there stops the process with exit code 4 before any new
event is applied, and the applied record is written back as the log mark, so a restart stops as well.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from app import embedded
from app.engine_process import start_engine, stop_process
from app.topics import ensure_topics
from flows.claims import EXIT_STATE_LOST
from livesignals import serde
from livesignals.contract import primary_key
from livesignals.partitioner import owner_partition
from state.connection import connect
from state.keys import Keys
from tests.helpers import committed, event, produce, wait_committed

pytestmark = [pytest.mark.slow]


def _orders(n: int, first: int = 0) -> list[tuple[bytes | None, bytes]]:
    t0 = int(time.time() * 1000) - 3_600_000
    docs = [event("order", f"c{i % 40}", t0 + i * 1000, event_id=f"e{i}", order_id=f"o{i}", amount=1.0)
            for i in range(first, first + n)]  # fmt: skip
    return [(primary_key(d["customer"]).encode(), serde.dumps(d)) for d in docs]


def _plain_new_log(s, topic: str) -> None:
    produce(s.kafka_bootstrap, topic, _orders(1600, first=400))  # ~400 a partition: past the ~100 applied


def _new_log_with_a_transaction_marker_where_the_engine_last_read(s, topic: str) -> None:
    """Break-test 10e, J1: a transactional producer's commit marker takes an offset no consumer sees. At the
    offset of the last record the engine handed out, the new log holds only a marker; the records after it
    were read as "the checked record is gone" and the check ended, 996 of 1,996 events skipped."""
    from confluent_kafka import Producer

    client = connect(s)
    resume = {q: int(client.hget(Keys(s.key_prefix).partition_meta(q), f"offset:{topic}") or 0) for q in range(4)}
    owned: dict[int, str] = {}
    for i in range(400):
        owned.setdefault(owner_partition(primary_key({"customer_id": f"n{i}"}), 4), f"n{i}")
    t0 = int(time.time() * 1000) - 1_800_000
    plain = Producer({"bootstrap.servers": s.kafka_bootstrap, "enable.idempotence": True})
    txn = Producer({"bootstrap.servers": s.kafka_bootstrap, "transactional.id": "new-log"})
    txn.init_transactions(30)
    n = 0

    def order(q: int) -> tuple[bytes, bytes]:
        nonlocal n
        n += 1
        doc = event("order", owned[q], t0 + n, event_id=f"n{n}", order_id=f"n{n}", amount=1.0)
        return primary_key(doc["customer"]).encode(), serde.dumps(doc)

    for q in range(4):
        for _ in range(resume[q] - 2):  # a record at each offset below the one before the marker
            key, value = order(q)
            plain.produce(topic, value, key, partition=q)
        plain.flush(30)
        key, value = order(q)  # at resume - 2; its commit marker at resume - 1, the record last handed out
        txn.begin_transaction()
        txn.produce(topic, value, key, partition=q)
        txn.commit_transaction(30)
        for _ in range(100):
            key, value = order(q)
            plain.produce(topic, value, key, partition=q)
        plain.flush(30)


@pytest.mark.parametrize("new_log", [_plain_new_log, _new_log_with_a_transaction_marker_where_the_engine_last_read])
def test_a_broker_that_lost_its_log_under_a_running_engine_stops_it_with_exit_code_4(settings, tmp_path: Path, new_log):
    port = embedded.free_port()
    broker = embedded.start_kafka(port=port)
    s = settings.replace(kafka_bootstrap=broker.address, topic_partitions=4, metrics_port=0, models_enabled=False)
    topic = s.input_topics[0]
    log_path = tmp_path / "engine.log"
    try:
        ensure_topics(s)
        produce(s.kafka_bootstrap, topic, _orders(400))
        with open(log_path, "wb") as log:
            engine = start_engine(s, workers=2, log=log)
            try:
                wait_committed(s, 400, engine, timeout_s=240)
                os.kill(engine.pid, signal.SIGSTOP)  # frozen while the broker restarts and producers write on
                broker.stop()
                broker = embedded.start_kafka(port=port)
                ensure_topics(s)
                new_log(s, topic)
                os.kill(engine.pid, signal.SIGCONT)
                code = engine.wait(240)
            finally:
                if engine.poll() is None:
                    os.kill(engine.pid, signal.SIGCONT)
                stop_process(engine)
        text = log_path.read_text(errors="replace")
        assert code == EXIT_STATE_LOST, text[-3000:]
        assert "KAFKA LOG RESET" in text and f"{topic}[" in text
        assert committed(s) == 400, "no event of the new log applied"

        again = tmp_path / "again.log"
        with open(again, "wb") as log:
            engine = start_engine(s, workers=2, log=log)
            try:
                code = engine.wait(240)
            finally:
                stop_process(engine)
        assert code == EXIT_STATE_LOST, "a restart stops too: the applied record is the log mark"
        assert "KAFKA LOG RESET" in again.read_text(errors="replace")
    finally:
        broker.stop()


def test_frequent_checks_of_an_intact_log_neither_stop_the_engine_nor_skip_or_repeat_events(
    kafka_settings, tmp_path: Path
):
    """The check re-reads an earlier record and goes back to where the reader was: with a check every 0.2 s
    while events arrive in waves, each event is applied once and the engine keeps running."""
    from tests.helpers import timelines

    s = kafka_settings.replace(models_enabled=False, kafka_log_check_s=0.2)
    topic = s.input_topics[0]
    produce(s.kafka_bootstrap, topic, _orders(400))
    log_path = tmp_path / "engine.log"
    with open(log_path, "wb") as log:
        engine = start_engine(s, workers=2, log=log)
        try:
            wait_committed(s, 400, engine, timeout_s=240)
            for wave in (1, 2):
                time.sleep(1.0)  # several checks between waves
                produce(s.kafka_bootstrap, topic, _orders(400, first=400 * wave))
            wait_committed(s, 1200, engine, timeout_s=240)
            time.sleep(1.0)
            assert engine.poll() is None, log_path.read_text(errors="replace")[-3000:]
            checks = _metric(s.metrics_port, "livesignals_kafka_log_checks_total", trigger="periodic")
        finally:
            stop_process(engine)
    assert committed(s) == 1200
    assert sum(len(entries) for entries in timelines(s).values()) == 1200, "each event applied once"
    assert "KAFKA LOG RESET" not in log_path.read_text(errors="replace")
    assert checks >= 4, "the log was checked, repeatedly, while events were read"


def _metric(port: int, name: str, **labels: str) -> float:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )
