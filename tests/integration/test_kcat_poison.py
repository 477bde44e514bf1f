"""The poison corpus sent by an outside client: Debian's ``kcat`` (librdkafka's CLI).

CI runs this against Apache Kafka (``.ci/run`` sets ``LIVESIGNALS_TEST_KCAT=required``
so that it cannot be skipped there). Debian's kcat (librdkafka 2.0.2) cannot talk
to the embedded Tansu broker, so elsewhere it is skipped when kcat cannot list the
broker's topics. Each message is one file (``kcat -P``
sends a file as one message, bytes untouched; ``-Z`` turns the empty ones into
tombstones), the ~1,000,200-byte one included (``-X message.max.bytes``, and the
topic's ``max.message.bytes`` raised where the broker supports it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from tests.integration.test_poison_corpus import check_dead_letters, check_good_applied, run_engine_until_committed
from tests.poison import CORPUS, good_events

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

KEY = b"customer_id:c-kcat"


def raise_topic_limit(bootstrap: str, topic: str, limit: int) -> None:
    """Let the topic take the big message (Apache Kafka); brokers without topic configs ignore it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry("max.message.bytes", str(limit), incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource("topic", topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        try:
            future.result(30)
        except Exception as exc:  # the embedded broker has no per-topic limit to raise
            print(f"max.message.bytes not altered: {exc}")


def require_kcat(bootstrap: str) -> None:
    """Skip unless kcat is installed and can speak to this broker (fail instead where CI requires it)."""
    required = os.environ.get("LIVESIGNALS_TEST_KCAT") == "required"
    if shutil.which("kcat") is None:
        why = "kcat is not installed (apt-get install kcat)"
    else:
        probe = subprocess.run(["kcat", "-L", "-b", bootstrap, "-m", "10"], capture_output=True, text=True,
                               timeout=60, check=False)  # fmt: skip
        if probe.returncode == 0:
            return
        why = f"kcat cannot talk to this broker: {probe.stderr.strip()[-200:]}"
    if required:
        pytest.fail(why)
    pytest.skip(why)


def test_kcat_sends_the_poison_corpus_and_the_engine_dead_letters_all_of_it(kafka_settings, tmp_path: Path):
    s = kafka_settings
    require_kcat(s.kafka_bootstrap)
    topic = s.input_topics[0]
    raise_topic_limit(s.kafka_bootstrap, topic, 2_000_000)
    goods = good_events("c-kcat", len(CORPUS))
    values: list[tuple[bytes, bytes | None]] = []
    for good, poison in zip(goods, CORPUS, strict=True):
        values += [(KEY, good), (KEY, poison.value)]
    for chunk in _chunks(values, tmp_path):
        sent = subprocess.run(
            ["kcat", "-P", "-b", s.kafka_bootstrap, "-t", topic, "-Z", "-X", "message.max.bytes=2000000", "-X", "partitioner=murmur2_random", *chunk.argv],
            input=chunk.stdin, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr.decode(errors="replace")
    assert _count(s) == len(values), "kcat sent every message"

    run_engine_until_committed(s, len(values), tmp_path)
    partition = _partition_of(s)
    check_dead_letters(s, {(partition, 2 * i + 1): poison for i, poison in enumerate(CORPUS)})
    check_good_applied(s, goods)


class _Chunk:
    """One kcat invocation: files (one message each) or, for tombstones, a ``key|`` line on stdin."""

    def __init__(self, argv: list[str], stdin: bytes | None = None) -> None:
        self.argv, self.stdin = argv, stdin


def _chunks(values: list[tuple[bytes, bytes | None]], tmp_path: Path) -> list[_Chunk]:
    """kcat skips empty files: runs of non-empty messages go as files, each empty one as a NULL via stdin."""
    chunks: list[_Chunk] = []
    files: list[str] = []
    for i, (key, value) in enumerate(values):
        if value:
            path = tmp_path / f"{i:04d}.msg"
            path.write_bytes(value)
            files.append(str(path))
            continue
        if files:
            chunks.append(_Chunk(["-k", KEY.decode(), *files]))
            files = []
        chunks.append(_Chunk(["-K", "|"], key + b"|\n"))  # -Z: the empty value is sent as NULL
    if files:
        chunks.append(_Chunk(["-k", KEY.decode(), *files]))
    return chunks


def _count(settings) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "kcat-test"})
    try:
        marks = [c.get_watermark_offsets(TopicPartition(settings.input_topics[0], p), timeout=10)
                 for p in range(settings.topic_partitions)]  # fmt: skip
    finally:
        c.close()
    return sum(high - low for low, high in marks)


def _partition_of(settings) -> int:
    """The one partition kcat put every message in (one key)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "kcat-test"})
    try:
        for p in range(settings.topic_partitions):
            low, high = c.get_watermark_offsets(TopicPartition(settings.input_topics[0], p), timeout=10)
            if high > low:
                return p
    finally:
        c.close()
    raise AssertionError("kcat wrote nothing")
