"""One writer per partition, state that survives Redis: fencing, Redis loss, Redis outages (real Kafka and Redis).

Every scenario reads the same 4-partition topic as one uninterrupted reference
run and must end with the same profiles, timelines and partition aggregates
(models off, as in ``test_crash_recovery``); the two-engines scenario also runs
with models on, comparing all that is not model-derived (:mod:`tests.faults_models`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis

from app import embedded
from app.engine_process import start_engine, stop_process
from app.simulator import Simulator, SimulatorConfig
from flows.claims import EXIT_FENCED
from livesignals import serde
from livesignals.contract import primary_key
from state.connection import connect
from state.keys import Keys
from tests.helpers import aggregates, committed, consume_all, produce, profiles, timelines

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 12_000


@pytest.fixture(scope="module")
def stream(kafka_settings_module):
    """The module's input, produced once, and the reference run over it."""
    # models off: the shared models learn with a lag of about one batch, so scores in profiles follow batch
    # boundaries (see test_crash_recovery); what is compared here is ownership and durability of state
    s = kafka_settings_module.replace(quiet_hours="0-0", models_enabled=False)
    sim = Simulator(SimulatorConfig(customers=1500, seed=5, start_ms=int(time.time() * 1000) - 3_600_000, step_ms=50))
    produce(s.kafka_bootstrap, s.input_topics[0],
            [(primary_key(e["customer"]).encode(), serde.dumps(e)) for e, _ in sim.stream(N)])  # fmt: skip
    reference = variant(s)
    engine = start_engine(reference)
    try:
        wait_for(reference, N, [engine])
    finally:
        stop_process(engine)
    return s, reference


def variant(s, **changes):
    """The module's input, with keys, consumer group and output topics of its own."""
    from app.topics import ensure_topics

    tag = uuid.uuid4().hex[:6]
    v = s.replace(key_prefix=f"{s.key_prefix}{tag}", consumer_group=f"g-{tag}", triggers_topic=f"tr-{tag}",
                  flags_topic=f"fl-{tag}", decisions_topic=f"de-{tag}", **changes)  # fmt: skip
    ensure_topics(v)
    return v


def trigger_ids(settings):
    records = consume_all(settings.kafka_bootstrap, settings.triggers_topic, 10**9, timeout_s=5)
    return {dict(m.headers())["ls.id"] for m in records}


def wait_for(settings, expected, procs, timeout_s=180.0, allow_exit=()):
    """Until ``expected`` input messages are committed; fails if an engine exits with a code not allowed."""
    deadline = time.monotonic() + timeout_s
    while (done := committed(settings)) < expected:
        for p in procs:
            code = p.poll()
            if code is not None and code not in allow_exit:
                raise AssertionError(f"engine exited with {code} after {done}/{expected}")
        if all(p.poll() is not None for p in procs):
            raise AssertionError(f"every engine exited after {done}/{expected}")
        if time.monotonic() > deadline:
            raise AssertionError(f"committed {done}/{expected} in {timeout_s}s")
        time.sleep(0.05)


def state_of(settings):
    def unprefixed(data):
        return {k[len(settings.key_prefix) :]: v for k, v in data.items()}

    aggs = {k: (v[b"kpi"], v[b"voc"]) for k, v in unprefixed(aggregates(settings)).items()}
    return unprefixed(profiles(settings)), unprefixed(timelines(settings)), aggs


def assert_same_state(a, b):
    pa, ta, aa = state_of(a)
    pb, tb, ab = state_of(b)
    assert len(pa) > 500 and len(aa) == 4
    assert pa == pb, f"{len(set(pa.items()) ^ set(pb.items()))} profiles differ"
    assert ta == tb
    assert aa == ab


def test_two_engines_started_together_end_with_one_engines_state(stream):
    s, reference = stream
    both = variant(s, batch_size=200)
    engines = [start_engine(both), start_engine(both.replace(metrics_port=embedded.free_port()))]
    try:
        wait_for(both, N, engines, allow_exit=(EXIT_FENCED,))
        time.sleep(1)
        codes = [e.poll() for e in engines]
    finally:
        for e in engines:
            stop_process(e)
    assert all(c in (None, EXIT_FENCED) for c in codes), codes
    assert_same_state(reference, both)
    assert trigger_ids(both) == trigger_ids(reference) != set()


@pytest.fixture(scope="module")
def models_on_reference(stream):
    """The module's input run once uninterrupted with models on (the production default)."""
    s, _ = stream
    # checkpoints by count only, so the lesson log is kept whole for the comparison (tests/faults_models.py)
    on = s.replace(models_enabled=True, models_checkpoint_every_s=10**6)
    reference = variant(on)
    engine = start_engine(reference)
    try:
        wait_for(reference, N, [engine])
    finally:
        stop_process(engine)
    return on, reference


def test_two_engines_started_together_with_models_on_lose_nothing_and_count_nothing_twice(models_on_reference):
    """Fencing with models on: the engine that lost the race wrote nothing, the survivor's run is exact
    in everything not model-derived, and every lesson was learned once (:mod:`tests.faults_models` lists
    what is excluded: scores, the flags decided from them, triggers and decisions beyond their ids)."""
    from tests.faults_models import compare, failures, outcome

    on, reference = models_on_reference
    both = variant(on, batch_size=200)
    engines = [start_engine(both), start_engine(both.replace(metrics_port=embedded.free_port()))]
    try:
        wait_for(both, N, engines, allow_exit=(EXIT_FENCED,))
        time.sleep(1)
        codes = [e.poll() for e in engines]
    finally:
        for e in engines:
            stop_process(e)
    assert all(c in (None, EXIT_FENCED) for c in codes), codes
    figures = compare(outcome(reference), outcome(both))
    assert figures["customers"] > 500
    assert failures(figures) == {}, figures


def test_a_stale_engine_resumed_after_a_newer_one_took_over_is_fenced_before_writing(stream, tmp_path):
    s, reference = stream
    shared = variant(s, batch_size=100)
    with open(tmp_path / "stale.log", "wb") as log:
        stale = start_engine(shared, log=log)
    newer = None
    try:
        wait_for(shared, N // 4, [stale])
        os.killpg(stale.pid, signal.SIGSTOP)
        newer = start_engine(shared.replace(metrics_port=embedded.free_port()))
        wait_for(shared, N, [newer])
        time.sleep(1)  # the newer engine idles: its last batch is committed
        before = state_of(shared)
        os.killpg(stale.pid, signal.SIGCONT)
        assert stale.wait(60) == EXIT_FENCED
        assert state_of(shared) == before, "the stale engine wrote nothing"
    finally:
        os.killpg(stale.pid, signal.SIGCONT) if stale.poll() is None else None
        stop_process(stale)
        if newer is not None:
            stop_process(newer)
    assert b"FENCED" in Path(tmp_path / "stale.log").read_bytes()
    assert_same_state(reference, shared)


def start_redis_at(port: int, workdir: Path, persist: bool) -> subprocess.Popen[bytes]:
    """A dedicated redis-server on ``port`` (appendfsync always when ``persist``)."""
    argv = [embedded.valkey_binary(prefer_system=True), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--dir", str(workdir)]  # fmt: skip
    argv += ["--appendonly", "yes", "--appendfsync", "always"] if persist else ["--appendonly", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    embedded.wait_for_port(port, proc=proc)
    client = redis.Redis(port=port)
    while True:
        try:
            client.ping()
            return proc
        except redis.BusyLoadingError:  # replaying its AOF
            time.sleep(0.05)


def metric(port: int, name: str) -> float | None:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.parametrize("restarts", [1, 2])
def test_redis_restarted_empty_mid_stream_is_detected_and_rebuilt_from_kafka(stream, tmp_path, restarts):
    """``restarts=2``: Redis restarts empty again as soon as the first rebuild's replay begins, so what the
    sources read before the second rewind lies below what the sinks had seen (:mod:`flows.rewind`)."""
    s, reference = stream
    port = embedded.free_port()
    server = start_redis_at(port, tmp_path, persist=False)
    lossy = variant(s, batch_size=200, redis_url=f"redis://127.0.0.1:{port}/0", metrics_port=embedded.free_port(),
                    retry_backoff_s=0.1, retry_backoff_max_s=1.0)  # fmt: skip
    with open(tmp_path / "engine.log", "wb") as log:
        engine = start_engine(lossy, log=log)
    try:
        wait_for(lossy, N // 3, [engine])
        for restart in range(restarts):
            stop_process(server)
            server = start_redis_at(port, tmp_path, persist=False)  # empty
            deadline = time.monotonic() + 120
            while restart + 1 < restarts and b"reading again" not in (tmp_path / "engine.log").read_bytes():
                assert time.monotonic() < deadline and engine.poll() is None, "the first loss is noticed"
                time.sleep(0.01)
        wait_for(lossy, N, [engine])
        assert (metric(lossy.metrics_port, 'livesignals_state_loss_total{action="rebuilt"}') or 0) >= 1
        assert engine.poll() is None
        assert_same_state(reference, lossy)
        assert trigger_ids(lossy) == trigger_ids(reference) != set(), "no output computed from the emptied Redis"
    finally:
        stop_process(engine)
        stop_process(server)
    assert b"STATE LOSS" in Path(tmp_path / "engine.log").read_bytes()


def test_redis_down_longer_than_the_old_retry_budget_is_waited_out_without_loss(stream, tmp_path):
    s, reference = stream
    port = embedded.free_port()
    server = start_redis_at(port, tmp_path, persist=True)
    patient = variant(s, batch_size=200, redis_url=f"redis://127.0.0.1:{port}/0", metrics_port=embedded.free_port(),
                      retry_backoff_s=0.2, retry_backoff_max_s=2.0)  # fmt: skip
    engine = start_engine(patient)
    try:
        wait_for(patient, N // 3, [engine])
        stop_process(server)  # SIGTERM: the AOF is kept
        down_since, seen_down = time.monotonic(), False
        while time.monotonic() - down_since < 40:
            assert engine.poll() is None, "the engine exited during the outage"
            seen_down |= metric(patient.metrics_port, "livesignals_ready") == 0.0
            time.sleep(1)
        assert seen_down, "readiness went to 0 while Redis was down"
        server = start_redis_at(port, tmp_path, persist=True)
        wait_for(patient, N, [engine])
        assert metric(patient.metrics_port, "livesignals_ready") == 1.0
        assert engine.poll() is None
        assert_same_state(reference, patient)
    finally:
        stop_process(engine)
        stop_process(server)


def test_redis_rolled_back_while_the_engine_was_down_is_seen_behind_the_consumer_group_and_replayed(
    stream, redis_client, tmp_path
):
    s, reference = stream
    rolled = variant(s, batch_size=200)
    pattern = f"{rolled.key_prefix}:*"
    engine = start_engine(rolled)
    try:
        wait_for(rolled, N // 3, [engine])
    finally:
        stop_process(engine)
    earlier = {k: redis_client.dump(k) for k in redis_client.scan_iter(pattern, count=1000)}
    engine = start_engine(rolled)
    try:
        wait_for(rolled, N, [engine])
    finally:
        stop_process(engine)
    # what a failover to a lagging replica, or AOF everysec after a host crash, does: an earlier, consistent state
    for k in list(redis_client.scan_iter(pattern, count=1000)):
        redis_client.delete(k)
    for k, v in earlier.items():
        redis_client.restore(k, 0, v)
    with open(tmp_path / "engine.log", "wb") as log:
        engine = start_engine(rolled, log=log)
    try:
        wait_for(rolled, N, [engine])
    finally:
        stop_process(engine)
    text = Path(tmp_path / "engine.log").read_bytes()
    assert b"STATE LOSS" in text and b"behind the committed offsets" in text
    assert_same_state(reference, rolled)


def consecutive_free_ports(n: int) -> int:
    """A port p such that p .. p + n - 1 are free on loopback right now."""
    import socket

    while True:
        p = embedded.free_port()
        try:
            for q in range(p, p + n):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", q))
            return p
        except OSError:
            continue


def test_two_bytewax_processes_share_the_four_partitions_and_end_with_one_engines_state(stream):
    from app.engine_process import engine_argv, engine_env

    s, reference = stream
    split = variant(s, batch_size=300)
    addresses = ";".join(f"127.0.0.1:{embedded.free_port()}" for _ in range(2))
    metrics_port = consecutive_free_ports(2)  # one setting: process i serves on metrics_port + i (same host)
    procs = [
        subprocess.Popen(engine_argv("-i", str(i), "-a", addresses),
                         env=engine_env(split.replace(metrics_port=metrics_port)),
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        for i in range(2)
    ]  # fmt: skip
    try:
        wait_for(split, N, procs)
        assert all(p.poll() is None for p in procs)
        for i in range(2):  # both on this host: process i serves on metrics_port + i
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port + i}/healthz", timeout=5) as resp:
                assert resp.status == 200
    finally:
        for p in procs:
            stop_process(p)
    owners = {connect(split).hget(Keys(split.key_prefix).partition_meta(p), "owner") for p in range(4)}
    assert len(owners) == 2, "each process owns some of the partitions"
    assert_same_state(reference, split)


def test_one_of_two_bytewax_processes_killed_ends_the_other_and_both_restarted_lose_nothing(stream):
    """The README's restart advice: the processes of one engine form one dataflow, so a process killed (-9)
    mid-stream ends its peer too; both started again resume from what they committed, exactly."""
    from app.engine_process import engine_argv, engine_env

    s, reference = stream
    split = variant(s, batch_size=100)
    addresses = ";".join(f"127.0.0.1:{embedded.free_port()}" for _ in range(2))

    def start(i: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(engine_argv("-i", str(i), "-a", addresses),
                                env=engine_env(split.replace(metrics_port=0)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    procs = [start(i) for i in range(2)]
    try:
        wait_for(split, N // 3, procs)
        os.killpg(procs[1].pid, signal.SIGKILL)
        procs[1].wait(timeout=30)
        try:
            code = procs[0].wait(timeout=120)
        except subprocess.TimeoutExpired:
            code = None
        assert code is not None, "the peer of a killed process ends too"
        procs = [start(i) for i in range(2)]
        wait_for(split, N, procs)
    finally:
        for p in procs:
            stop_process(p)
    assert_same_state(reference, split)


def test_with_on_state_loss_stop_an_emptied_redis_stops_the_engine_with_code_4(stream, redis_client, tmp_path):
    from flows.claims import EXIT_STATE_LOST

    s, _ = stream
    strict = variant(s, batch_size=200, on_state_loss="stop")
    engine = start_engine(strict)
    try:
        wait_for(strict, N // 4, [engine])
    finally:
        stop_process(engine)
    for k in list(redis_client.scan_iter(f"{strict.key_prefix}:*", count=1000)):
        redis_client.delete(k)
    with open(tmp_path / "engine.log", "wb") as log:
        engine = start_engine(strict, log=log)
    try:
        assert engine.wait(60) == EXIT_STATE_LOST
    finally:
        stop_process(engine)
    text = Path(tmp_path / "engine.log").read_bytes()
    assert b"STATE LOST, stopping" in text and b"behind the committed offsets" in text
    assert committed(strict) == 0, "nothing was written"


def test_a_partition_claimed_away_during_combined_rounds_gets_no_output_after_its_fence(stream, tmp_path):
    """One engine reads the four partitions, each round one batch (flows.one_batch); a second owner claims
    partition 2 mid-stream. The first publishes nothing for partition 2 once it saw the fence (its FENCED
    line), completes partitions 0, 1 and 3 and keeps running; an engine started then takes partition 2 over
    (and fences the first out of the rest), and the end state is the uninterrupted run's."""
    from livesignals.partitioner import owner_partition
    from state.ownership import claim

    s, reference = stream
    shared = variant(s, batch_size=100, metrics_port=embedded.free_port())
    log_path = tmp_path / "first.log"
    with open(log_path, "wb") as log:
        first = start_engine(shared, log=log)
    second = None
    try:
        wait_for(shared, N // 4, [first])
        claim(connect(shared), Keys(shared.key_prefix), 2, shared.input_topics)  # the other owner
        deadline = time.monotonic() + 60
        while b"FENCED" not in log_path.read_bytes():
            assert first.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.05)
        seen_ms = time.time() * 1000
        ends = {p: len([m for m in consume_all(s.kafka_bootstrap, s.input_topics[0], N) if m.partition() == p])
                for p in (0, 1, 3)}  # fmt: skip
        deadline = time.monotonic() + 180
        store_offsets = ProfileStoreOffsets(shared)
        while any(store_offsets.get(p) < ends[p] for p in ends):
            assert first.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, (store_offsets.all(), ends)
            time.sleep(0.1)
        time.sleep(1)
        assert first.poll() is None  # still running: it owns partitions 0, 1 and 3
        text = urllib.request.urlopen(f"http://127.0.0.1:{shared.metrics_port}/metrics", timeout=5).read().decode()
        assert float(text.split('livesignals_engine_rounds_total{path="combined"} ')[1].split()[0]) > 10
        late = [m for topic in (shared.flags_topic, shared.triggers_topic, shared.decisions_topic)
                for m in consume_all(s.kafka_bootstrap, topic, 10**9, timeout_s=5)
                if m.timestamp()[1] > seen_ms and owner_partition(m.key().decode(), 4) == 2]  # fmt: skip
        assert late == [], f"{len(late)} outputs for partition 2 after the fence"
        second = start_engine(shared.replace(metrics_port=embedded.free_port()))
        wait_for(shared, N, [second])
        time.sleep(1)
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)
    assert_same_state(reference, shared)
    assert trigger_ids(shared) == trigger_ids(reference) != set()


class ProfileStoreOffsets:
    """The resume offsets Redis holds for the input topic, per partition."""

    def __init__(self, settings):
        from state.store import ProfileStore

        self.topic = settings.input_topics[0]
        self.store = ProfileStore(connect(settings), Keys(settings.key_prefix))

    def all(self) -> dict[int, int]:
        return self.store.resume_offsets(self.topic)

    def get(self, partition: int) -> int:
        return self.all().get(partition, 0)
