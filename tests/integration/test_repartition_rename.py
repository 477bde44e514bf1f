"""A changed ``repartition_topic`` (same ``key_prefix``) while reroutes wait in the old one: refused, exit 2.

Break-test 10h, L4: engine B, configured with ``rep-A.v2``, took over from A (``rep-A``) and never read
the 2,992 reroutes waiting in ``rep-A``: 2,887 of 8,000 events lost, nothing logged.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from app import embedded
from app.engine_process import start_engine, stop_process
from app.topics import ensure_topics
from flows.claims import EXIT_BAD_CONFIG
from livesignals import documents, serde
from livesignals.contract import RawMessage, decode
from livesignals.errors import Origin
from operators.profile360.profile import CustomerState
from operators.routing import Reroute, Router
from state.connection import connect
from state.keys import Keys
from tests.helpers import T0, event, produce, wait_committed

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _reroutes(settings, n: int, first_offset: int) -> int:
    """Publish ``n`` signed reroutes of customer c1 to the repartition topic, as the engine writes them."""
    router = Router.for_settings(settings, {settings.input_topics[0]: 4, settings.repartition_topic: 4})
    assert router is not None
    producer = Producer(settings.kafka_client_config())
    other = (router.owner("customer_id:c1") + 1) % 4
    for i in range(n):
        doc = event("chat", "c1", T0 + i * 1000, event_id=f"r{first_offset + i}")
        origin = Origin(settings.input_topics[0], other, 100_000 + first_offset + i, T0)
        message = RawMessage(serde.dumps(doc), b"cookie", origin)
        r = router.route(decode(message.value or b"", origin, now_ms=T0 + 10**9), message)
        assert isinstance(r, Reroute)
        producer.produce(settings.repartition_topic, r.value, b"customer_id:c1", partition=r.partition,
                         headers=r.headers())  # fmt: skip
    assert producer.flush(30) == 0
    return n


def _run_until_exit(settings, tmp_path, name: str) -> tuple[int, str]:
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "wb") as log:
        engine = start_engine(settings, log=log)
    try:
        code = engine.wait(120)
    finally:
        stop_process(engine)
    return code, log_path.read_text()


def _c1_events(settings) -> int:
    raw = documents.read(connect(settings).get(Keys(settings.key_prefix).profile("customer_id:c1")))
    return CustomerState.from_bytes("customer_id:c1", raw).events if raw else 0


def _wait_events(settings, n: int, engine, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _c1_events(settings) < n:
        assert engine.poll() is None and time.monotonic() < deadline, f"{_c1_events(settings)} of {n} applied"
        time.sleep(0.2)


def test_reroutes_waiting_in_the_old_repartition_topic_refuse_a_renamed_one(settings, kafka_bootstrap, tmp_path):
    a = settings.replace(kafka_bootstrap=kafka_bootstrap, topic_partitions=4, repartition_secret="t",
                         metrics_port=embedded.free_port())  # fmt: skip
    b = a.replace(repartition_topic=a.repartition_topic + ".v2")
    ensure_topics(a)
    ensure_topics(b)
    docs = [event("chat", "c1", T0 + i, event_id=f"d{i}") for i in range(20)]
    produce(a.kafka_bootstrap, a.input_topics[0], [(b"customer_id:c1", serde.dumps(d)) for d in docs])
    engine = start_engine(a)  # A runs, then stops with reroutes waiting (written here as A writes them)
    try:
        wait_committed(a, 20, engine)
    finally:
        stop_process(engine)
    waiting = _reroutes(a, 30, 0)

    code, text = _run_until_exit(b, tmp_path, "b")  # B, renamed: refused
    lines = [line for line in text.splitlines() if "CONFIGURATION ERROR" in line]
    assert code == EXIT_BAD_CONFIG and len(lines) == 1, text
    assert f"{waiting} reroutes wait in {a.repartition_topic}" in lines[0] and "Drain them first" in lines[0]
    assert "Traceback" not in text

    engine = start_engine(a)  # drained with the old setting
    try:
        _wait_events(a, 20 + waiting, engine)  # the input topic's 20 and the old topic's reroutes
    finally:
        stop_process(engine)
    assert _c1_events(a) == 20 + waiting

    # no record of the old name (a deployment from before it was kept): the metas' resume offsets name it
    connect(a).delete(Keys(a.key_prefix).repartition_topic_recorded)
    more = _reroutes(a, 7, 30)
    code, text = _run_until_exit(b, tmp_path, "b2")
    assert code == EXIT_BAD_CONFIG and f"{more} reroutes wait in {a.repartition_topic}" in text, text

    engine = start_engine(a)
    try:
        _wait_events(a, 20 + waiting + more, engine)
    finally:
        stop_process(engine)
    engine = start_engine(b)  # nothing waits: B starts and reads
    try:
        produce(b.kafka_bootstrap, b.input_topics[0], [(b"customer_id:c1", serde.dumps(event("chat", "c1", T0,
                                                                                             event_id="z")))])  # fmt: skip
        _wait_events(b, 20 + waiting + more + 1, engine)
    finally:
        stop_process(engine)
    assert _c1_events(b) == 20 + waiting + more + 1
    assert connect(b).get(Keys(b.key_prefix).repartition_topic_recorded) == b.repartition_topic.encode()
