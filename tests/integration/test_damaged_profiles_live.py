"""Damaged profiles and the profile's stored form, live: real Kafka and Redis, 4 partitions, 2 Bytewax processes,
a producer keying by cookie (so about 3/4 of each customer's events reach its owner through the repartition topic),
``profile_compression`` switched between runs, and a kill -9 mid-run.

Three runs over one input topic:

1. ``profile_compression = "off"``: every profile is plain JSON.
2. Three customers' stored values damaged (a truncated zstd frame, an empty value, JSON with sections of the wrong
   type), ``profile_compression = "zstd"``, one of the two processes killed (-9) mid-run, both started again: each
   damaged customer's events, those read from the repartition topic included, are dead-lettered
   (``UnreadableProfile``), the damaged values stay as they were, every other customer's events apply exactly
   once, and the profiles that changed are rewritten compressed (the plain ones are read without a migration).
3. One damaged value repaired, one deleted, one left; ``profile_compression = "off"`` again: the repaired customer
   goes on from its repaired document, the deleted one starts afresh, the third is still dead-lettered; the
   profiles that changed are plain JSON again.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from app import embedded
from app.engine_process import engine_argv, engine_env, stop_process
from livesignals import documents, serde
from livesignals.partitioner import owner_partition
from operators.profile360.profile import CustomerState
from state.connection import connect
from state.keys import Keys
from state.store import ProfileStore
from tests.helpers import committed, consume_all, event, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CUSTOMERS, PARTITIONS = 40, 4
RUNS = (800, 4000, 400)
"""Events produced before each run."""
FRAME, EMPTY, WRONG = "customer_id:c0", "customer_id:c1", "customer_id:c2"
VICTIMS = (FRAME, EMPTY, WRONG)


def records(run: int, start: int) -> tuple[list[tuple[bytes, bytes]], dict[str, list[str]], int]:
    """The events of ``run`` (orders and web visits, keyed by a random cookie), the event ids per customer, and
    how many land on a partition that does not own their customer (rerouted)."""
    rng, t0 = random.Random(run), int(time.time() * 1000) - 3 * 3_600_000
    out: list[tuple[bytes, bytes]] = []
    ids: dict[str, list[str]] = {}
    rerouted = 0
    for i in range(start, start + RUNS[run]):
        customer = f"c{i % CUSTOMERS}"
        eid = f"{customer}-{i}"
        doc = (
            event("order", customer, t0 + i * 1000, event_id=eid, order_id=f"o{i}", amount=1.0 + i % 5)
            if i % 3
            else event("web_event", customer, t0 + i * 1000, event_id=eid, action="page_view", url=f"https://x/{i}")
        )
        key = f"cookie-{rng.randrange(10**9)}"
        rerouted += owner_partition(key, PARTITIONS) != owner_partition(f"customer_id:{customer}", PARTITIONS)
        ids.setdefault(f"customer_id:{customer}", []).append(eid)
        out.append((key.encode(), serde.dumps(doc)))
    return out, ids, rerouted


def end_offsets(bootstrap: str, topic: str) -> int:
    """Messages in ``topic``, summed over its partitions."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests-ends"})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS))
    finally:
        c.close()


class Engines:
    """Two Bytewax processes of one engine (one dataflow), logs in ``tmp``."""

    def __init__(self, settings: Any, tmp: Path, name: str) -> None:
        addresses = ";".join(f"127.0.0.1:{embedded.free_port()}" for _ in range(2))
        env = engine_env(settings.replace(metrics_port=0))
        self.logs = [open(tmp / f"{name}-{i}.log", "wb") for i in range(2)]  # noqa: SIM115 - closed in stop()
        self.procs = [subprocess.Popen(engine_argv("-i", str(i), "-a", addresses), env=env, stdout=self.logs[i],
                                       stderr=subprocess.STDOUT, start_new_session=True) for i in range(2)]  # fmt: skip

    def check(self) -> None:
        codes = [p.poll() for p in self.procs]
        assert codes == [None, None], f"an engine process exited: {codes}"

    def stop(self) -> None:
        for p in self.procs:
            stop_process(p)
        for f in self.logs:
            f.close()


def drain(settings: Any, engines: Engines, inputs: int, timeout_s: float = 400.0) -> None:
    """Until ``inputs`` input messages are committed and the repartition topic is read to its end."""
    store = ProfileStore(connect(settings), Keys(settings.key_prefix))
    deadline = time.monotonic() + timeout_s
    while committed(settings) < inputs:
        engines.check()
        assert time.monotonic() < deadline, f"committed {committed(settings)}/{inputs} in {timeout_s}s"
        time.sleep(0.1)
    ends = end_offsets(settings.kafka_bootstrap, settings.repartition_topic)  # final: every reroute is produced
    while sum(store.resume_offsets(settings.repartition_topic).values()) < ends:  # before its batch commits
        engines.check()
        assert time.monotonic() < deadline, "the repartition topic was not read to its end"
        time.sleep(0.1)


def stored(settings: Any) -> dict[str, bytes]:
    """Every profile's stored value, by customer key."""
    r = connect(settings)
    out = {}
    for k in r.scan_iter(f"{settings.key_prefix}:{{*}}:profile", count=1000):
        out[k.decode().split("{", 1)[1].rsplit("}", 1)[0]] = r.get(k)
    return out


def events_of(value: bytes) -> int:
    return serde.loads(documents.decode(value))["events"]


def unreadable_letters(settings: Any) -> dict[str, set[str]]:
    """Per topic read from (input or repartition), the event ids dead-lettered as ``UnreadableProfile``."""
    out: dict[str, set[str]] = {}
    for m in consume_all(settings.kafka_bootstrap, settings.dead_letter_topic, 10**9, timeout_s=5):
        headers = dict(m.headers())
        if headers["ls.dlq.detail"].startswith(b"UnreadableProfile"):
            out.setdefault(headers["ls.dlq.topic"].decode(), set()).add(serde.loads(m.value())["event_id"])
    return out


def test_damaged_and_compressed_profiles_at_four_partitions_two_processes_and_a_kill(kafka_settings, tmp_path):
    s = kafka_settings.replace(models_enabled=False, quiet_hours="0-0", batch_size=50)
    topic, rep, client = s.input_topics[0], s.repartition_topic, connect(s)
    keys = Keys(s.key_prefix)
    runs = [records(run, sum(RUNS[:run])) for run in range(3)]
    produced = [ids for _, ids, _ in runs]
    assert sum(off for _, _, off in runs) > sum(RUNS) // 2, "most events go through the repartition topic"

    # 1. plain JSON profiles
    produce(s.kafka_bootstrap, topic, runs[0][0])
    engines = Engines(s.replace(profile_compression="off"), tmp_path, "run1")
    try:
        drain(s, engines, RUNS[0])
    finally:
        engines.stop()
    after1 = stored(s)
    assert len(after1) == CUSTOMERS and not any(documents.is_compressed(v) for v in after1.values())
    assert {k: events_of(v) for k, v in after1.items()} == {k: len(v) for k, v in produced[0].items()}

    # 2. damaged, compressed, a kill -9 mid-run
    damage = {
        FRAME: documents.encode(after1[FRAME])[:-5],
        EMPTY: b"",
        WRONG: serde.dumps({**serde.loads(after1[WRONG]), "events": "x", "history": []}),
    }
    for key, value in damage.items():
        client.set(keys.profile(key), value)
    produce(s.kafka_bootstrap, topic, runs[1][0])
    zstd = s.replace(profile_compression="zstd")
    engines = Engines(zstd, tmp_path, "run2")
    try:
        while committed(s) < RUNS[0] + RUNS[1] // 3:
            engines.check()
            time.sleep(0.02)
        os.killpg(engines.procs[1].pid, signal.SIGKILL)
        engines.procs[1].wait(30)
        at_kill = committed(s)
    finally:
        engines.stop()
    assert RUNS[0] < at_kill < RUNS[0] + RUNS[1], f"the kill must land mid-run: {at_kill}"
    engines = Engines(zstd, tmp_path, "run2b")
    try:
        drain(s, engines, RUNS[0] + RUNS[1])
    finally:
        engines.stop()
    after2 = stored(s)
    for key, value in damage.items():
        assert after2[key] == value, f"the damaged value of {key} was overwritten"
    letters = unreadable_letters(s)
    assert set().union(*letters.values()) == {i for k in VICTIMS for i in produced[1][k]}
    assert letters.get(rep) and letters.get(topic), "dead-lettered as read: from the repartition topic and the input"
    for key, value in after2.items():
        if key not in VICTIMS:
            assert documents.is_compressed(value), f"{key} changed in run 2: rewritten compressed"
            assert events_of(value) == len(produced[0][key]) + len(produced[1][key]), f"{key}: each event once"

    # 3. repaired, deleted, left; plain JSON again
    client.set(keys.profile(FRAME), after1[FRAME])
    client.delete(keys.profile(EMPTY))
    produce(s.kafka_bootstrap, topic, runs[2][0])
    engines = Engines(s.replace(profile_compression="off"), tmp_path, "run3")
    try:
        drain(s, engines, sum(RUNS))
    finally:
        engines.stop()
    after3 = stored(s)
    assert events_of(after3[FRAME]) == len(produced[0][FRAME]) + len(produced[2][FRAME])  # run 2's dead-lettered
    assert events_of(after3[EMPTY]) == len(produced[2][EMPTY])  # afresh
    assert after3[WRONG] == damage[WRONG]
    letters = unreadable_letters(s)
    assert set().union(*letters.values()) == {i for k in VICTIMS for i in produced[1][k]} | set(produced[2][WRONG])
    for key, value in after3.items():
        if key != WRONG:
            assert not documents.is_compressed(value), f"{key} changed in run 3: plain JSON again"
        if key not in VICTIMS:
            assert CustomerState.from_bytes(key, documents.decode(value)).events == sum(len(p[key]) for p in produced)
    print(f"kill at {at_kill}/{sum(RUNS[:2])} committed; reroutes {sum(off for _, _, off in runs)}, repartition "
          f"records {end_offsets(s.kafka_bootstrap, rep)}; dead-lettered ids by topic read "
          f"{ {t[:3]: len(v) for t, v in letters.items()} }")  # fmt: skip
    logs = b"".join(f.read_bytes() for f in tmp_path.glob("*.log"))
    assert b"a stored profile cannot be read" in logs
    assert set(after3) == {f"customer_id:c{i}" for i in range(CUSTOMERS)}
