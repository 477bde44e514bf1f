"""Redis lost its data while the engine was stopped (a host reboot, no persistence): the start-up replay publishes
nothing Kafka already confirmed, and the caps survive (outside review of #10, 10h L3).

Before, a loss found at start-up replayed with the wall clock and published again: every decision id came out a
second time, judged hours after the original (first copy ``sent``, last copy ``stale``), new decision ids appeared,
and the rebuilt 360 recorded no sends, so contact caps started from zero (13 customers over the daily cap). Now each
consumer group commit carries the committing deployment's ``key_prefix`` and the fingerprint of the record below the
offset (:mod:`flows.confirmed`); the start-up claim checks it against Kafka's log, and the replay below a confirmed
offset judges at stream time and publishes nothing, as a loss found while running does.

A broker that drops commit metadata (the embedded Tansu does) cannot confirm anything: there the replay publishes
again, as before, and the engine says so in one WARNING line per partition. The test checks whichever the broker
is; ``.ci/run`` runs it on Apache Kafka.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from app import embedded
from app.engine_process import start_engine, stop_process
from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import primary_key
from state.connection import connect
from state.keys import Keys
from tests.helpers import consume_all, produce
from tests.integration.cluster import three_nodes
from tests.integration.test_ownership import metric, start_redis_at, variant, wait_for
from tests.integration.test_rebuild_outputs import wait_settled
from tests.integration.test_state_loss_idle import events_per_customer

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 1_200
STEP_MS = 3
MAX_AGE_S = 30


def keeps_commit_metadata(bootstrap: str) -> bool:
    """Whether the broker returns the metadata of a consumer group commit (Apache Kafka does, Tansu drops it)."""
    topic, group = f"meta-{uuid.uuid4().hex[:6]}", f"meta-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic is created
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        deadline = time.monotonic() + 30.0
        while True:  # a topic just created may not be known to the group coordinator yet
            try:
                c.commit(offsets=[TopicPartition(topic, 0, 1, metadata="probe")], asynchronous=False)
                break
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        got = c.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        c.close()
    return got[0].metadata == "probe"


def live_stream(seed: int, tag: str, keyed: str = "customer") -> list[tuple[bytes, bytes]]:
    """``N`` events of 200 customers, keyed by customer (the producer contract) or by a cookie (a web tracker:
    most events go through the repartition topic), happening now."""
    start = int(time.time() * 1000) - N * STEP_MS
    sim = Simulator(SimulatorConfig(customers=200, seed=seed, start_ms=start, step_ms=STEP_MS))
    out: list[tuple[bytes, bytes]] = []
    for e, _ in sim.stream(N):
        e["event_id"] = f"{tag}-{e['event_id']}"
        key = primary_key(e["customer"]) if keyed == "customer" else f"cookie-{len(out) % 97}"
        out.append((key.encode(), serde.dumps(e)))
    return out


def by_id(settings: Any, topic: str) -> dict[str, list[dict[str, Any]]]:
    """Every record of ``topic`` by ``ls.id``, in log order per partition."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in consume_all(settings.kafka_bootstrap, topic, 10**9, timeout_s=3):
        out[(dict(m.headers() or []).get("ls.id") or b"").decode()].append(json.loads(m.value()))
    return dict(out)


def run(settings: Any, expected: int, log: Path, workers: int = 1) -> dict[str, float | None]:
    """Start an engine, wait until ``expected`` input messages are committed, read some metrics, stop it."""
    with open(log, "ab") as out:
        engine = start_engine(settings, workers=workers, log=out)
    try:
        wait_for(settings, expected, [engine], timeout_s=240.0)
        wait_settled(settings)  # the reroutes applied too
        time.sleep(1.0)  # the batch's metrics
        names = ("livesignals_replay_not_republished_total", 'livesignals_state_loss_total{action="rebuilt"}',
                 'livesignals_state_loss_group_offsets_total{result="confirmed"}',
                 'livesignals_state_loss_group_offsets_total{result="unconfirmed"}')  # fmt: skip
        return {name: metric(settings.metrics_port, name) for name in names}
    finally:
        stop_process(engine)


def restart_idle(settings: Any, log: Path, workers: int = 1) -> None:
    """Start an engine with nothing new to read, wait until it owns the 4 partitions, SIGTERM it: its last group
    commit re-commits the same offsets (before: with no metadata, blanking the one the group held)."""
    with open(log, "ab") as out:
        engine = start_engine(settings, workers=workers, log=out)
    try:
        deadline = time.monotonic() + 120.0
        while (metric(settings.metrics_port, "livesignals_partitions_owned") or 0) < 4:
            assert engine.poll() is None and time.monotonic() < deadline, "the idle restart did not claim"
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        stop_process(engine)


@pytest.mark.parametrize(("workers", "keyed"), [(1, "customer"), (2, "customer"), (2, "cookie")])
def test_a_loss_found_at_start_up_publishes_nothing_again_and_the_caps_survive(
    kafka_settings_module, tmp_path, workers, keyed
):
    """With ``keyed = "cookie"`` the origin secret goes with Redis too: the waiting reroutes no longer verify,
    the replay re-routes their events, marked ``replayed``, and their owner publishes nothing for them
    (break-test 10i P1: those events were lost; 10j Q1: then published again by the wall clock)."""
    keeps = keeps_commit_metadata(kafka_settings_module.kafka_bootstrap)
    port = embedded.free_port()
    server = start_redis_at(port, tmp_path, persist=False)
    s = variant(kafka_settings_module.replace(quiet_hours="0-0", models_enabled=False),
                input_topics=(f"atstart-{port}",), repartition_topic=f"rep-{port}", dead_letter_topic=f"dlq-{port}",
                redis_url=f"redis://127.0.0.1:{port}/0", batch_size=200, metrics_port=embedded.free_port(),
                policy_clock="wall", trigger_max_age_s=600)  # fmt: skip
    try:
        first = live_stream(31, "a", keyed)
        produce(s.kafka_bootstrap, s.input_topics[0], first)
        produced = time.time()
        run(
            s, N, tmp_path / "e1.log", workers
        )  # drained, then SIGTERM (its last group commit carries the metadata too)
        applied = events_per_customer(s)
        decisions, triggers = by_id(s, s.decisions_topic), by_id(s, s.triggers_topic)
        assert sum(applied.values()) == N
        assert all(len(copies) == 1 for copies in decisions.values())
        sent = Counter(copies[0].get("outcome") for copies in decisions.values())
        assert sent["sent"] >= 20, sent  # what a wall-clock replay, too late, would rewrite as stale
        restart_idle(s, tmp_path / "e1b.log", workers)  # a deploy with no new input, before the loss

        stop_process(server)
        server = start_redis_at(port, tmp_path, persist=False)  # a host reboot: Redis empty, the engine stopped
        # the restart stands for one hours later: every trigger above is now too old for the wall clock
        time.sleep(max(0.0, produced + MAX_AGE_S + 5 - time.time()))
        later = s.replace(trigger_max_age_s=MAX_AGE_S)
        seen = run(later, N, tmp_path / "e2.log", workers)
        assert (seen['livesignals_state_loss_total{action="rebuilt"}'] or 0) >= 1
        assert events_per_customer(s) == applied
        lines = (tmp_path / "e2.log").read_text(errors="replace").splitlines()
        unconfirmed = [line for line in lines if "WARNING" in line and "not confirmed" in line]
        again = by_id(s, s.decisions_topic)
        if not keeps:  # Tansu: as before, and said so
            assert len(unconfirmed) == 4, unconfirmed  # one line per partition
            assert (seen['livesignals_state_loss_group_offsets_total{result="unconfirmed"}'] or 0) >= 4
            assert any(len(copies) > 1 for copies in again.values())
            return
        assert not unconfirmed, unconfirmed
        assert (seen['livesignals_state_loss_group_offsets_total{result="confirmed"}'] or 0) >= 4
        assert (seen["livesignals_replay_not_republished_total"] or 0) >= N
        assert again == decisions, "each decision id once, as first published"
        assert by_id(s, s.triggers_topic) == triggers
        assert all(len(copies) == 1 for copies in by_id(s, s.flags_topic).values()), "each flag once"

        # more events for the same customers, now: the caps count the sends before the loss
        produce(s.kafka_bootstrap, s.input_topics[0], live_stream(9, "b", keyed))
        run(later, 2 * N, tmp_path / "e3.log", workers)
        sends = [copies[-1] for copies in by_id(s, s.triggers_topic).values()]
        per_customer = Counter(t["customer"] for t in sends)
        per_sms = Counter(t["customer"] for t in sends if t.get("channel") == "sms")
        assert len(sends) > len(triggers), "some sent after the loss"
        assert max(per_customer.values()) <= s.contact_daily_cap, per_customer.most_common(3)
        assert max(per_sms.values(), default=0) <= 1, per_sms.most_common(3)
    finally:
        stop_process(server)


def test_the_embedded_broker_drops_commit_metadata():
    """Why the start-up replay publishes again on the demo broker (README, *A loss found at start-up*)."""
    with embedded.start_kafka() as broker:
        assert not keeps_commit_metadata(broker.address)


def test_a_cluster_master_emptied_while_the_engine_was_stopped_publishes_nothing_again(kafka_settings_module):
    """Redis Cluster: a master that held profiles (and perhaps some partitions' meta) restarted empty while the
    engine was stopped. Partitions whose meta survived take the lost-marker path (a replay from offset 0), the
    others find Redis behind the group: both check the group's metadata. Before, the first re-published."""
    keeps = keeps_commit_metadata(kafka_settings_module.kafka_bootstrap)
    tag = uuid.uuid4().hex[:6]
    with three_nodes() as nodes:
        s = variant(kafka_settings_module.replace(quiet_hours="0-0", models_enabled=False),
                    input_topics=(f"atstart-c{tag}",), repartition_topic=f"rep-c{tag}", dead_letter_topic=f"dlq-c{tag}",
                    redis_url=f"redis://{nodes[0].address}/0", redis_cluster=True, batch_size=200,
                    status_interval_s=0.5, metrics_port=embedded.free_port())  # fmt: skip
        produce(s.kafka_bootstrap, s.input_topics[0], live_stream(41, "c"))
        run(s, N, Path(os.devnull))
        client, keys = connect(s), Keys(s.key_prefix)
        before, desks = events_per_customer(s), (client.xlen(keys.flags_stream), client.xlen(keys.updates_stream))
        published = {t: by_id(s, t) for t in (s.flags_topic, s.triggers_topic, s.decisions_topic)}
        assert all(published.values()) and all(desks)
        kept = {client.get_node_from_key(k).name for k in (keys.flags_stream, keys.updates_stream)}
        victim = next(n.address for n in nodes if n.address not in kept)
        host, port = victim.rsplit(":", 1)
        redis.Redis(host=host, port=int(port)).flushall()  # its profiles, markers, perhaps metas: gone
        with open(os.devnull, "ab") as out:
            engine = start_engine(s, log=out)
        try:
            deadline = time.monotonic() + 240
            while events_per_customer(s) != before:  # the replay rebuilds every lost profile
                assert time.monotonic() < deadline and engine.poll() is None, "not rebuilt"
                time.sleep(0.5)
            wait_for(s, N, [engine], timeout_s=180.0)
            time.sleep(1.0)
            confirmed = metric(s.metrics_port, 'livesignals_state_loss_group_offsets_total{result="confirmed"}') or 0
            unconfirmed = metric(s.metrics_port, 'livesignals_state_loss_group_offsets_total{result="unconfirmed"}')
            skipped = metric(s.metrics_port, "livesignals_replay_not_republished_total") or 0
        finally:
            stop_process(engine)
        if not keeps:
            assert (unconfirmed or 0) >= 4  # Tansu: each partition replayed and published as before, and said so
            return
        assert confirmed >= 4 and not unconfirmed and skipped >= N
        assert {t: by_id(s, t) for t in published} == published, "each output id once, as first published"
        assert (client.xlen(keys.flags_stream), client.xlen(keys.updates_stream)) == desks
