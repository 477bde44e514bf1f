"""Standard Kafka lag tooling sees the engine: ``kafka-consumer-groups.sh --describe --group``
shows its group with lag zero after a drained run, on Apache Kafka.

``kafka-consumer-groups.sh`` is a wrapper that runs the class
``org.apache.kafka.tools.consumer.group.ConsumerGroupCommand``; the jars that
``deploy/local/apache-kafka.sh`` fetches from Maven Central hold it (the ``.sh``
wrappers are not in Maven), so the test runs that class with the same arguments.
It runs in CI's Apache Kafka leg (``LIVESIGNALS_TEST_KAFKA`` and
``LIVESIGNALS_TEST_KAFKA_LIBS`` set, where missing jars fail it) and skips elsewhere.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from app.engine_process import start_engine, stop_process
from livesignals import serde
from livesignals.contract import primary_key
from tests.helpers import T0, event, produce, wait_committed

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
TOOL = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


def kafka_libs() -> Path:
    """The Apache Kafka jars, or skip (fail when CI named them and they are not there)."""
    named = os.environ.get("LIVESIGNALS_TEST_KAFKA_LIBS")
    if not os.environ.get("LIVESIGNALS_TEST_KAFKA"):
        pytest.skip("runs against Apache Kafka (LIVESIGNALS_TEST_KAFKA), not the embedded broker")
    libs = Path(named) if named else Path(__file__).resolve().parents[2] / ".livesignals" / "apache-kafka" / "libs"
    if shutil.which("java") and any(libs.glob("kafka-tools-*.jar")):
        return libs
    if named:
        pytest.fail(f"no kafka-tools jar or no java for {TOOL} in {libs}")
    pytest.skip(f"no Apache Kafka jars in {libs} (deploy/local/apache-kafka.sh start fetches them)")


def describe(libs: Path, bootstrap: str, group: str) -> list[dict[str, str]]:
    """``kafka-consumer-groups.sh --describe --group`` rows (GROUP, TOPIC, PARTITION, ..., LAG)."""
    done = subprocess.run(
        ["java", "-cp", f"{libs}/*", TOOL, "--bootstrap-server", bootstrap, "--describe", "--group", group],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line.split() for line in done.stdout.splitlines() if line.strip()]
    header = next(i for i, cols in enumerate(lines) if cols[:2] == ["GROUP", "TOPIC"])
    names = lines[header]
    return [dict(zip(names, cols, strict=False)) for cols in lines[header + 1 :] if cols[0] == group]


def lags(rows: list[dict[str, str]], topic: str) -> dict[int, int]:
    return {int(r["PARTITION"]): int(r["LAG"]) for r in rows if r["TOPIC"] == topic and r["LAG"] != "-"}


def test_kafka_consumer_groups_describe_shows_the_engine_drained(kafka_settings, tmp_path):
    libs = kafka_libs()
    s = kafka_settings
    events = [event("web_event", f"c{i % 50}", T0 + i * 1000, action="page_view") for i in range(600)]
    produce(s.kafka_bootstrap, s.input_topics[0],
            [(primary_key(e["customer"]).encode(), serde.dumps(e)) for e in events])  # fmt: skip
    with open(tmp_path / "engine.log", "wb") as log:
        engine = start_engine(s, log=log)
    try:
        wait_committed(s, len(events), engine)

        def drained_while_running() -> Any:
            rows = describe(libs, s.kafka_bootstrap, s.consumer_group)
            got = lags(rows, s.input_topics[0])
            return len(got) == 4 and sum(got.values()) == 0 and rows

        deadline = time.monotonic() + 90
        while not (rows := drained_while_running()):
            assert time.monotonic() < deadline, "the group's lag did not reach 0 while the engine ran"
            time.sleep(1)
        os.killpg(engine.pid, signal.SIGTERM)  # graceful: the final offsets are committed synchronously
        assert engine.wait(30) == 0
    finally:
        stop_process(engine)
    rows = describe(libs, s.kafka_bootstrap, s.consumer_group)
    got = lags(rows, s.input_topics[0])
    assert got == {0: 0, 1: 0, 2: 0, 3: 0}, rows
    ends = sum(int(r["LOG-END-OFFSET"]) for r in rows if r["TOPIC"] == s.input_topics[0])
    assert ends == len(events)
