"""The PII scanner: seed known personal data into a real run, erase the customer, find none of it.

Real Kafka (the session's broker, 4 partitions) and the engine as its own
Bytewax process (two workers on one Redis, one on Redis Cluster). The customer (an email, a phone number, a
name in a profile update and in their texts, a device, a malformed event that
is dead-lettered with ``dead_letter_redact``) goes through the engine with
models on; ``livesignals erase`` is asked by email. Then the scanner looks at

* Redis: every key under the prefix and every value of every type (profiles,
  timelines, claim sets, partition aggregates, the flags stream, the models'
  lesson stream and pickled checkpoint, the ledger, the audit stream);
* the output topics' live records: on the keyed outputs (flags, triggers,
  decisions: tombstoned, meant to be compacted) the latest record of each key,
  tombstones aside (compaction removes them after ``delete.retention.ms``);
  on the dead-letter topic (not compacted) every record;
* the engine's captured log.

and expects 0 occurrences. What it does not look at, by design (README,
*Privacy*): the input topic and the repartition topic (inputs, kept per their
retention), data consumers already read.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from app.cli import main
from app.engine_process import engine_env, start_engine, stop_process
from app.privacy import request_erase
from livesignals import serde
from livesignals.contract import primary_key
from livesignals.privacy import subject_hash
from state.connection import connect
from state.erasure import ErasureLedger
from state.keys import Keys
from tests.helpers import event, produce, wait_committed
from tests.integration.test_erase import EMAIL, NAME, PHONE, PII, everything, journey, occurrences, where

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
MIN = 60_000


def seeded(t0: int, labelled: bool = False) -> list[bytes | dict]:
    """The journey, a bad event carrying the PII (dead-lettered), and an unrelated customer;
    ``labelled``: a survey rating the customer's chat, so the sentiment model learns their text."""
    steps: list[bytes | dict] = list(journey(t0))
    if labelled:
        ids = journey(t0)[3]["customer"]
        survey = event("survey", t=t0 + 6 * MIN, kind="csat", score=1, rates_event_id="zq-3",
                       comment=f"{NAME} again: awful")  # fmt: skip
        steps.append({**survey, "customer": ids, "event_id": "zq-survey"})
    bad = {**journey(t0)[3], "event_id": "zq-bad", "event_time": f"{NAME} {EMAIL}"}  # not a time: dead letter
    steps.append(bad)
    other = {**journey(t0)[0], "customer": {"customer_id": "c-other"}, "event_id": "o-1"}
    steps.append(other)
    return steps


def latest_per_key(bootstrap: str, topic: str, partitions: int) -> tuple[dict[bytes, bytes | None], list[bytes]]:
    """Compaction's view (the latest value per key) and every record's key+value+headers."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "scanner", "enable.auto.commit": False})
    latest: dict[bytes, bytes | None] = {}
    raw: list[bytes] = []
    try:
        for p in range(partitions):
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                continue
            c.assign([TopicPartition(topic, p, low)])
            position, deadline = low, time.monotonic() + 30
            while position < high and time.monotonic() < deadline:
                for m in c.consume(500, 0.5):
                    if m.error() is not None:
                        continue
                    position = max(position, (m.offset() or 0) + 1)
                    key, value = _bytes(m.key()), m.value()
                    latest[key] = value
                    headers: Any = m.headers() or []
                    raw += [key, value or b"", *(_bytes(v) for _, v in headers)]
    finally:
        c.close()
    return latest, raw


def _bytes(value: str | bytes | None) -> bytes:
    return value.encode() if isinstance(value, str) else (value or b"")


def run_and_erase(settings, tmp_path, labelled: bool = False, export_check=None, workers: int = 1) -> dict[str, Any]:
    t0 = int(time.time() * 1000) - 30 * MIN
    steps = seeded(t0, labelled)
    values: list[tuple[bytes | None, bytes]] = []
    for e in steps:
        key = primary_key(e["customer"]).encode() if isinstance(e, dict) else b"x"
        values.append((key, serde.dumps(e)))
    log_path = tmp_path / "engine.log"
    with open(log_path, "wb") as log:
        engine = start_engine(settings, workers=workers, log=log)
        try:
            produce(settings.kafka_bootstrap, settings.input_topics[0], values)
            wait_committed(settings, len(values), engine)
            client, keys = connect(settings), Keys(settings.key_prefix)
            before = occurrences(everything(client, settings))
            assert EMAIL in before and NAME in before, before  # the run really holds the seeded data

            if export_check is not None:
                export_check(settings)
            asked = request_erase(settings, f"email:{EMAIL}", wait_s=120)
            assert asked["confirmed"] and asked["erasing"] == ["customer_id:c-zq"], asked
            ledger = ErasureLedger(client, keys)
            erased = {f"email:{EMAIL}", f"phone:{PHONE}", "device_id:d-zq", "customer_id:c-zq"}
            wanted = {ledger.subject(k) for k in erased}  # keyed (the deployment's secret)
            assert not wanted & {subject_hash(k) for k in erased}  # never the plain digest
            deadline = time.monotonic() + 120
            while not wanted <= {r["subject"] for r in ledger.audit(asked["request_id"])}:
                assert engine.poll() is None and time.monotonic() < deadline, "cascaded erasures not confirmed"
                time.sleep(0.2)
        finally:
            stop_process(engine)
    # Redis: the personal data, and the erased keys themselves (the due index, the ledger, the audit)
    found: dict[str, Any] = {"redis": where(connect(settings), settings, (*PII, "c-zq", "d-zq"))}
    live: list[bytes] = []
    for topic in (settings.flags_topic, settings.triggers_topic, settings.decisions_topic):
        latest, _ = latest_per_key(settings.kafka_bootstrap, topic, settings.topic_partitions)
        live += [k + b" " + v for k, v in latest.items() if v is not None]
        assert b"customer_id:c-zq" in latest and latest[b"customer_id:c-zq"] is None  # tombstoned
    # the phone and the device are owned by other partitions (2 and 0; the customer: 3): erased there
    cascades, _ = latest_per_key(settings.kafka_bootstrap, settings.repartition_topic, settings.topic_partitions)
    assert {f"phone:{PHONE}".encode(), b"device_id:d-zq"} <= set(cascades)
    _, dead = latest_per_key(settings.kafka_bootstrap, settings.dead_letter_topic, settings.topic_partitions)
    assert dead, "the bad event was dead-lettered"
    found["topics"] = occurrences(live + dead)
    found["logs"] = occurrences([log_path.read_bytes()])
    return found


@pytest.fixture(params=["single", "cluster"])
def scanner_settings(request, kafka_settings):
    s = kafka_settings.replace(dead_letter_redact=True, policy_clock="stream", models_checkpoint_every=1)
    if request.param == "cluster":
        s = s.replace(redis_url=request.getfixturevalue("cluster_url"), redis_cluster=True)
    return s


def test_after_an_erase_no_seeded_personal_data_is_left(scanner_settings, tmp_path, monkeypatch, capsys):
    def export_check(settings) -> None:
        """``livesignals export --kafka``: everything held, flags and decisions with their reasons."""
        for name, value in engine_env(settings).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        assert main(["export", f"email:{EMAIL}", "--kafka"]) == 0
        doc = serde.loads(capsys.readouterr().out)
        (held,) = doc["customers"]
        assert held["customer"] == "customer_id:c-zq"
        assert held["profile"]["identity"]["attributes"]["name"] == NAME
        assert set(held["linked"]) == {f"email:{EMAIL}", f"phone:{PHONE}", "device_id:d-zq"}
        assert held["flags_stream"] and all(f["reason"] for f in held["flags_stream"])
        assert held["erasure"]["erased_cutoff"] is None
        flags = doc["kafka"][settings.flags_topic]
        assert {f["flag"] for f in flags} >= {f["flag"] for f in held["flags_stream"]}
        decisions = doc["kafka"][settings.decisions_topic]
        assert decisions and all("candidates" in d or "outcome" in d for d in decisions), decisions[:1]

    # two workers on one Redis (cascades cross workers through the repartition topic), one on the Cluster
    workers = 1 if scanner_settings.redis_cluster else 2
    found = run_and_erase(scanner_settings, tmp_path, export_check=export_check, workers=workers)
    assert found == {"redis": {}, "topics": {}, "logs": {}}


def test_labelled_texts_leave_nothing_either(kafka_settings, tmp_path):
    """The customer's text is learned by the sentiment model (a survey rates it): the models' lesson
    stream and checkpoint must not keep it either."""
    s = kafka_settings.replace(dead_letter_redact=True, policy_clock="stream", models_checkpoint_every=1)
    found = run_and_erase(s, tmp_path, labelled=True)
    assert found == {"redis": {}, "topics": {}, "logs": {}}
