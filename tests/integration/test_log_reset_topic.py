"""An input topic deleted and re-created under a running engine stops it; a restart stops too (#10, break10d H3).

The new topic numbers its events from 0 again, below the offsets the engine applied: read on, they would be
skipped as replays. On Apache Kafka the running engine exits with code 4 and ``KAFKA LOG RESET`` (the fetch at
its old position is out of range, or the running log check re-reads another record). On the embedded broker
(Tansu) librdkafka itself crashes first: Tansu answers the fetch of the deleted topic with a leader hint that
carries no topic id, and librdkafka (since 2.5.0, up to 2.16.1, the newest release) looks it up by a NULL name,
in its own thread, with every signal blocked: the process dies of SIGSEGV before Python runs again, and no
line can be written. Either way the restart's claim check stops with exit code 4 and ``KAFKA LOG RESET``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from app.engine_process import start_engine, stop_process
from flows.claims import EXIT_STATE_LOST
from livesignals import serde
from livesignals.contract import primary_key
from tests.helpers import committed, event, produce, wait_committed

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

APACHE_KAFKA = bool(os.environ.get("LIVESIGNALS_TEST_KAFKA"))
"""The session's broker is one the tests were given (CI: Apache Kafka), not the embedded Tansu."""


def _orders(n: int, first: int = 0) -> list[tuple[bytes | None, bytes]]:
    t0 = int(time.time() * 1000) - 3_600_000
    docs = [event("order", f"c{i % 40}", t0 + i * 1000, event_id=f"e{i}", order_id=f"o{i}", amount=1.0)
            for i in range(first, first + n)]  # fmt: skip
    return [(primary_key(d["customer"]).encode(), serde.dumps(d)) for d in docs]


def _recreate(bootstrap: str, topic: str, partitions: int) -> None:
    """Delete ``topic`` and create it again with as many partitions (Apache Kafka deletes asynchronously:
    creating again is refused until the deletion is done)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic])[topic].result(30)
    deadline = time.monotonic() + 60
    while True:
        try:
            admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_an_input_topic_re_created_under_a_running_engine_stops_it_and_its_restart(kafka_settings, tmp_path: Path):
    s = kafka_settings.replace(models_enabled=False, kafka_log_check_s=1.0)
    topic = s.input_topics[0]
    produce(s.kafka_bootstrap, topic, _orders(400))
    log_path = tmp_path / "engine.log"
    with open(log_path, "wb") as log:
        engine = start_engine(s, workers=1, log=log)
        try:
            wait_committed(s, 400, engine, timeout_s=240)
            _recreate(s.kafka_bootstrap, topic, 4)
            produce(s.kafka_bootstrap, topic, _orders(1600, first=400))  # ~400 a partition: past the ~100 applied
            code = engine.wait(240)
        finally:
            stop_process(engine)
    text = log_path.read_text(errors="replace")
    if APACHE_KAFKA:
        assert code == EXIT_STATE_LOST, text[-3000:]
        assert "KAFKA LOG RESET" in text and f"{topic}[" in text
    else:
        assert code in (EXIT_STATE_LOST, -signal.SIGSEGV), text[-3000:]
    applied = committed(s)

    again = tmp_path / "again.log"
    with open(again, "wb") as log:
        engine = start_engine(s, workers=1, log=log)
        try:
            code = engine.wait(240)
        finally:
            stop_process(engine)
    assert code == EXIT_STATE_LOST, again.read_text(errors="replace")[-3000:]
    assert "KAFKA LOG RESET" in again.read_text(errors="replace")
    assert committed(s) == applied, "the restart applied nothing of the new log"


def test_a_topic_re_created_while_a_new_deployment_is_paused_is_caught_by_the_first_check(
    kafka_settings, tmp_path: Path
):
    """A deployment's first start has no log mark: the first running check used to re-read nothing and take the
    records read since as its anchor. Paused (SIGSTOP) while its topic was re-created and a longer log written,
    the engine read on from its old positions, each new record then vouched for the next: on Apache Kafka 1,600
    of 3,200 new events skipped, engine alive, lag 0. The first record it handed out is now the first anchor."""
    s = kafka_settings.replace(models_enabled=False, kafka_log_check_s=40.0)  # the first check after the pause
    topic = s.input_topics[0]
    produce(s.kafka_bootstrap, topic, _orders(400))
    log_path = tmp_path / "engine.log"
    with open(log_path, "wb") as log:
        engine = start_engine(s, workers=1, log=log)
        try:
            wait_committed(s, 400, engine, timeout_s=240)
            os.kill(engine.pid, signal.SIGSTOP)
            _recreate(s.kafka_bootstrap, topic, 4)
            produce(s.kafka_bootstrap, topic, _orders(1600, first=400))  # ~400 a partition: past the ~100 applied
            os.kill(engine.pid, signal.SIGCONT)
            code = engine.wait(240)
        finally:
            if engine.poll() is None:
                os.kill(engine.pid, signal.SIGCONT)
            stop_process(engine)
    text = log_path.read_text(errors="replace")
    if APACHE_KAFKA:
        assert code == EXIT_STATE_LOST, text[-3000:]
        assert "KAFKA LOG RESET" in text
    else:
        assert code in (EXIT_STATE_LOST, -signal.SIGSEGV), text[-3000:]
    again = tmp_path / "again.log"
    with open(again, "wb") as log:
        engine = start_engine(s, workers=1, log=log)
        try:
            code = engine.wait(240)
        finally:
            stop_process(engine)
    assert code == EXIT_STATE_LOST, again.read_text(errors="replace")[-3000:]
