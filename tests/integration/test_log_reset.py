"""Kafka's log behind Redis's resume offsets stops the engine, never skips silently (issue 10, break-test F3).

A broker that lost its log (the embedded broker keeps topics in memory; an unclean leader election; a
topic deleted and created again) numbers new events from 0 again, below the offsets Redis resumes at.
librdkafka's default ``auto.offset.reset`` jumped to the log end: every new event skipped, the engine
ready with lag 0. Now the source stops the process with exit code 4, a CRITICAL line and a metric.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from app.engine_process import start_engine, stop_process
from flows.claims import EXIT_STATE_LOST
from livesignals import serde
from livesignals.contract import primary_key
from tests.helpers import committed, event, produce, wait_committed

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _orders(n: int, first: int = 0) -> list[tuple[bytes | None, bytes]]:
    t0 = int(time.time() * 1000) - 3_600_000
    docs = [event("order", f"c{i % 40}", t0 + i * 1000, event_id=f"e{i}", order_id=f"o{i}", amount=1.0)
            for i in range(first, first + n)]  # fmt: skip
    return [(primary_key(d["customer"]).encode(), serde.dumps(d)) for d in docs]


@pytest.mark.parametrize("new_events", [40, 800])
def test_a_topic_recreated_below_the_resume_offsets_stops_the_engine_with_exit_code_4(
    kafka_settings, tmp_path: Path, new_events: int
):
    """``new_events`` 800: the new log has grown past the old resume offsets by the time the engine starts (outside
    review of #10, G1: a record existed before the resume offset, only not the one applied; half the new log was
    skipped). The record the engine applied, as recorded in the meta, is read again and differs."""
    s = kafka_settings.replace(models_enabled=False)
    topic = s.input_topics[0]
    produce(s.kafka_bootstrap, topic, _orders(400))
    engine = start_engine(s, workers=2)
    try:
        wait_committed(s, 400, engine, timeout_s=240)
    finally:
        stop_process(engine)

    produce(s.kafka_bootstrap, topic, _orders(40, first=400))  # the log intact: a restart resumes
    engine = start_engine(s, workers=2)
    try:
        wait_committed(s, 440, engine, timeout_s=240)
    finally:
        stop_process(engine)

    admin = AdminClient(s.kafka_client_config())
    admin.delete_topics([topic])[topic].result()
    deadline = time.monotonic() + 60
    while True:  # the broker forgets a deleted topic a moment later
        try:
            admin.create_topics([NewTopic(topic, 4, 1)])[topic].result()
            break
        except Exception:
            assert time.monotonic() < deadline, "topic not re-created"
            time.sleep(0.5)
    produce(s.kafka_bootstrap, topic, _orders(new_events, first=440))  # 40: ~10 a partition, Redis resumes at ~110

    log_path = tmp_path / "engine.log"
    with open(log_path, "wb") as log:
        engine = start_engine(s, workers=2, log=log)
        try:
            code = engine.wait(240)
        finally:
            stop_process(engine)
    text = log_path.read_text(errors="replace")
    assert code == EXIT_STATE_LOST, text[-3000:]
    assert "KAFKA LOG RESET" in text and f"{topic}[" in text
    assert committed(s) == 440, "nothing applied past the reset"
