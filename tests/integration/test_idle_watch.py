"""What an idle engine notices between batches: a takeover, and partitions added to its topics.

An idle engine has no batch to be fenced at, and the source lists partitions
once: the monitor's pass (:mod:`flows.monitor`, every ``status_interval_s``)
reads each owned partition's meta and the topics' metadata instead.
"""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import embedded
from app.demo import scrape
from app.engine_process import start_engine, stop_process
from app.topics import ensure_topics
from flows.claims import EXIT_FENCED
from flows.shutdown import EXIT_PARTITIONS_CHANGED
from livesignals import serde
from livesignals.contract import primary_key
from state.connection import connect
from state.keys import Keys
from state.ownership import claim
from tests.helpers import T0, event, grow_partitions, produce, wait_committed
from tests.integration.test_health import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _produce(settings, n: int, start: int = 0) -> None:
    docs = [event("web_event", f"c{i % 30}", T0 + (start + i) * 1000, event_id=f"e{start + i}", action="page_view")
            for i in range(n)]  # fmt: skip
    produce(settings.kafka_bootstrap, settings.input_topics[0],
            [(primary_key(d["customer"]).encode(), serde.dumps(d)) for d in docs])  # fmt: skip


def _gauges(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {m.name: m.samples[0].value for m in text_string_to_metric_families(text) if len(m.samples) == 1}


def test_an_idle_engine_taken_over_is_fenced_by_its_monitor_and_exits_3(kafka_settings, tmp_path):
    # break-test 10h L7: both engines reported ready and 4 partitions owned until input arrived
    s = kafka_settings.replace(status_interval_s=0.5)
    _produce(s, 200)
    log_path = tmp_path / "engine.log"
    with open(log_path, "wb") as log:
        engine = start_engine(s, log=log)
    try:
        wait_committed(s, 200, engine)
        client, keys, topics = connect(s), Keys(s.key_prefix), (*s.input_topics, s.repartition_topic)
        for p in (0, 1, 2):  # another engine (this test process) takes three partitions over
            claim(client, keys, p, topics)
        wait_for(lambda: scrape(s.metrics_port).get("livesignals_fenced_total") == 3, what="3 partitions fenced")
        gauges = _gauges(s.metrics_port)
        assert (gauges["livesignals_partitions_owned"], gauges["livesignals_ready"]) == (1, 1), "one still owned"
        claim(client, keys, 3, topics)
        assert engine.wait(60) == EXIT_FENCED
    finally:
        stop_process(engine)
    text = log_path.read_text()
    assert sum("FENCED between batches" in line for line in text.splitlines()) == 4, text
    assert "FENCED on every partition of this process" in text


def test_the_engines_own_reclaim_is_no_takeover(kafka_settings, tmp_path):
    # a rebuild re-claims under this process's own name: the monitor must not fence it
    s = kafka_settings.replace(status_interval_s=0.3)
    _produce(s, 100)
    engine = start_engine(s)
    try:
        wait_committed(s, 100, engine)
        client, keys = connect(s), Keys(s.key_prefix)
        epoch = int(client.hget(keys.partition_meta(0), "epoch"))
        client.hset(keys.partition_meta(0), "epoch", str(epoch + 1))  # higher, under the engine's own name
        time.sleep(2)  # several monitor passes
        assert engine.poll() is None and not scrape(s.metrics_port).get("livesignals_fenced_total")
    finally:
        stop_process(engine)


def test_partitions_added_while_running_stop_the_engine_for_a_restart_that_reads_them(settings, kafka_bootstrap,
                                                                                      tmp_path):  # fmt: skip
    # break-test 10h L2: partitions 4-7 were never read, /readyz 200 and lag 0, until a restart
    s = settings.replace(kafka_bootstrap=kafka_bootstrap, topic_partitions=4, status_interval_s=0.5,
                         metrics_port=embedded.free_port())  # fmt: skip
    ensure_topics(s)
    _produce(s, 300)
    log_path = tmp_path / "engine.log"
    with open(log_path, "wb") as log:
        engine = start_engine(s, log=log)
    try:
        wait_committed(s, 300, engine)
        refused = grow_partitions(s.kafka_bootstrap, s.input_topics[0])
        if refused:
            pytest.skip(f"this broker cannot add partitions ({refused}): the Apache Kafka leg runs it")
        assert not grow_partitions(s.kafka_bootstrap, s.repartition_topic)
        _produce(s, 300, start=300)  # a contract-following producer that sees 8 partitions
        assert engine.wait(120) == EXIT_PARTITIONS_CHANGED
    finally:
        stop_process(engine)
    text = log_path.read_text()
    lines = [line for line in text.splitlines() if "PARTITION COUNT CHANGED while running" in line]
    assert len(lines) == 1 and "4 -> 8" in lines[0] and "code 5" in lines[0], text
    assert "Traceback" not in text
    with open(log_path, "ab") as log:
        engine = start_engine(s, log=log)
    try:
        wait_committed(s, 600, engine)  # every partition read after the restart, the new ones included
    finally:
        stop_process(engine)
