"""Redis Cluster commits in order, retried as planned: a node refusing writes mid-commit loses and doubles nothing.

A master refusing writes (``min-replicas-to-write 1`` with no replica: every write answers NOREPLICAS) is
the fault; it is lifted after a while, the store's retry resumes the commit where it failed, and the
profiles and partition KPIs equal an uninterrupted run's. While the node refuses, the resume offset has
not moved (resume offsets go last).
"""

from __future__ import annotations

import threading
import time
import zlib

import pytest
import redis

from livesignals import documents, serde
from livesignals.contract import RawMessage, primary_key
from livesignals.errors import Origin
from operators.engine import Engine
from state.connection import Backoff, connect
from state.keys import Keys
from state.ownership import Ownership, claim
from state.store import ProfileStore

N, PARTS, BATCH = 1600, 4, 100


class Capture:
    def publish(self, records) -> None:
        pass


def batches(t0: int) -> list[list[RawMessage]]:
    from app.simulator import Simulator, SimulatorConfig

    per_part: dict[int, list[RawMessage]] = {p: [] for p in range(PARTS)}
    for e, _ in Simulator(SimulatorConfig(customers=300, seed=3, start_ms=t0, step_ms=1000)).stream(N):
        p = zlib.crc32(primary_key(e["customer"]).encode()) % PARTS
        per_part[p].append(RawMessage(serde.dumps(e), b"k", Origin("in", p, len(per_part[p]), t0)))
    out = []
    for p, msgs in per_part.items():
        out += [msgs[i : i + BATCH] for i in range(0, len(msgs), BATCH)]
    return out


def engine_on(settings, t0):
    client, keys = connect(settings), Keys(settings.key_prefix)
    ownership = Ownership(lambda p: claim(client, keys, p, ("in",), cluster=True))
    for p in range(PARTS):
        ownership.claim(p)
    store = ProfileStore(client, keys, cluster=True, ownership=ownership,
                         retry=Backoff("redis", initial_s=0.05, max_s=0.2))  # fmt: skip
    return Engine(settings.replace(quiet_hours="0-0"), store, Capture(), clock=lambda: t0 / 1000 + 3600), client, keys


def snapshot(client, keys, settings):
    n = len(settings.key_prefix)
    profiles = {
        k[n:]: documents.read(client.get(k))
        for k in client.scan_iter(f"{settings.key_prefix}:{{*}}:profile", count=1000)
    }
    aggs = {k[n:]: client.hget(k, "kpi") for k in client.scan_iter(keys.partition_pattern(), count=1000)}
    return profiles, aggs


def node_of(client, key):
    node = client.get_node_from_key(key)
    return redis.Redis(host=node.host, port=node.port)


def test_a_node_refusing_writes_mid_commit_then_a_retry_loses_and_doubles_nothing(settings, cluster_url):
    t0 = int(time.time() * 1000) - 3 * 3_600_000
    s = settings.replace(redis_url=cluster_url, redis_cluster=True)
    plain, faulty = s.replace(key_prefix=s.key_prefix + "a"), s.replace(key_prefix=s.key_prefix + "b")
    work = batches(t0)

    engine, client, keys = engine_on(plain, t0)
    for b in work:
        engine.process(b)
    expected = snapshot(client, keys, plain)

    from prometheus_client import REGISTRY

    def retries():
        return REGISTRY.get_sample_value("livesignals_dependency_retries_total", {"dependency": "redis"}) or 0.0

    retried = retries()
    engine, client, keys = engine_on(faulty, t0)
    faults = {len(work) // 3: "profiles", len(work) // 2: "meta"}
    refused_offsets = []
    for i, b in enumerate(work):
        kind = faults.get(i)
        if kind is None:
            engine.process(b)
            continue
        p = b[0].origin.partition
        meta = keys.partition_meta(p)
        if kind == "meta":
            victim = node_of(client, meta)
        else:  # a node holding profiles of this batch but neither the partition nor the flags stream
            busy = {client.get_node_from_key(k).name for k in (meta, keys.flags_stream)}
            customers = {primary_key(serde.loads(m.value or b"{}")["customer"]) for m in b}
            names = {client.get_node_from_key(keys.profile(c)).name for c in customers}
            victim_name = sorted(names - busy or names)[0]
            host, port = victim_name.rsplit(":", 1)
            victim = redis.Redis(host=host, port=int(port))
        before = client.hget(meta, "offset:in")
        victim.config_set("min-replicas-to-write", 1)

        def lift(victim=victim, meta=meta, before=before):
            time.sleep(1.0)
            refused_offsets.append((before, client.hget(meta, "offset:in")))
            victim.config_set("min-replicas-to-write", 0)

        lifter = threading.Thread(target=lift)
        lifter.start()
        engine.process(b)
        lifter.join()
    assert len(refused_offsets) == 2
    assert retries() >= retried + 2, "the refused commits were retried"
    assert all(before == during for before, during in refused_offsets), "the resume offset waited for the node"
    got = snapshot(client, keys, faulty)
    assert len(got[0]) > 100 and len(got[1]) == PARTS
    assert got == expected


def test_a_stale_owner_that_passed_its_check_cannot_overwrite_a_newer_owners_profile(settings, cluster_url):
    from operators.profile360.profile import CustomerState
    from state.cluster_commit import Plan, _customers
    from state.ownership import Fenced

    s = settings.replace(redis_url=cluster_url, redis_cluster=True)
    client, keys = connect(s), Keys(s.key_prefix)

    def store():
        ownership = Ownership(lambda p: claim(client, keys, p, ("in",)))
        ownership.claim(0)
        return ProfileStore(client, keys, cluster=True, ownership=ownership)

    def state(events, offset):
        return CustomerState("customer_id:c1", events=events, applied={"in:0": offset})

    old = store()
    old.commit([state(1, 0)], [], {("in", 0): 1})
    new = store()
    new.commit([state(2, 1)], [], {("in", 0): 2})
    # the stale owner checked its claim just before the new one claimed, and now writes its customers
    held = old.ownership.get(0) if old.ownership else None
    assert held is not None
    plan = Plan([old._plan_customer(state(9, 5), {0})], [], {}, {0: {"in": 6}}, {0: held})
    with pytest.raises(Fenced):
        _customers(old, plan)
    assert (
        CustomerState.from_bytes("customer_id:c1", documents.read(client.get(keys.profile("customer_id:c1")))).events
        == 2
    )


class Crash(RuntimeError):
    """The process dies here (nothing after it runs; a new engine takes over)."""


@pytest.mark.parametrize("where", ["after_profiles", "half_the_profiles"])
def test_a_crash_between_the_profiles_and_the_partition_script_loses_no_kpi(settings, cluster_url, where):
    """A batch's aggregates are recorded ahead in the partition's slot; the next claim writes them and the replay
    counts no event twice, whether the crash came after every profile of the batch or after half of them."""
    from dataclasses import replace

    from state import cluster_commit

    t0 = int(time.time() * 1000) - 3 * 3_600_000
    # models off: the shared learner's scores follow batch boundaries, which a crash moves (see test_crash_recovery)
    s = settings.replace(redis_url=cluster_url, redis_cluster=True, models_enabled=False)
    plain, faulty = s.replace(key_prefix=s.key_prefix + "wa"), s.replace(key_prefix=s.key_prefix + "wb")
    work = batches(t0)
    engine, client, keys = engine_on(plain, t0)
    for b in work:
        engine.process(b)
    expected = snapshot(client, keys, plain)

    engine, client, keys = engine_on(faulty, t0)
    crash_at = {len(work) // 3, 2 * len(work) // 3}
    real_partition, real_customers = cluster_commit._partition, cluster_commit._customers

    def crash_after_profiles(store, plan, partition, news):
        raise Crash("after the profiles step")

    def half_the_profiles(store, plan):
        real_customers(store, replace(plan, customers=plan.customers[: len(plan.customers) // 2]))
        raise Crash("after half the profiles")

    with pytest.MonkeyPatch.context() as mp:
        i = 0
        while i < len(work):
            if i in crash_at:
                crash_at.discard(i)
                if where == "after_profiles":
                    mp.setattr(cluster_commit, "_partition", crash_after_profiles)
                else:
                    mp.setattr(cluster_commit, "_customers", half_the_profiles)
                with pytest.raises(Crash):
                    engine.process(work[i])
                mp.setattr(cluster_commit, "_partition", real_partition)
                mp.setattr(cluster_commit, "_customers", real_customers)
                assert client.exists(keys.write_ahead(work[i][0].origin.partition)), "recorded ahead"
                engine, client, keys = engine_on(faulty, t0)  # a new process: claims, then replays the batch
                continue
            engine.process(work[i])
            i += 1
    assert not crash_at
    got = snapshot(client, keys, faulty)
    assert len(got[0]) > 100 and len(got[1]) == PARTS
    assert got == expected
    assert not any(client.exists(keys.write_ahead(p)) for p in range(PARTS)), "dropped by the commit"


def test_a_master_that_held_only_profiles_restarting_empty_is_seen_and_rebuilt(settings, cluster_url):
    """Each master's store marker is recorded in every partition's meta: a master that lost its data is seen before
    the next batch of every partition, and a claim then replays the partition from its first offset, which rebuilds
    the lost profiles without counting any event twice in the surviving profiles or the aggregates."""
    from state.ownership import StateLost

    t0 = int(time.time() * 1000) - 3 * 3_600_000
    s = settings.replace(redis_url=cluster_url, redis_cluster=True, models_enabled=False)
    client, keys = connect(s), Keys(s.key_prefix)
    by_master: dict[str, set[int]] = {n.name: set() for n in client.get_primaries()}
    for p in range(PARTS):
        by_master[client.get_node_from_key(keys.partition_meta(p)).name].add(p)
    spare = min(by_master, key=lambda name: len(by_master[name]))  # the victim: partitions on it are left out
    kept = set(range(PARTS)) - by_master[spare]
    assert kept
    plain, faulty = s.replace(key_prefix=s.key_prefix + "np"), s.replace(key_prefix=s.key_prefix + "nf")
    work = [b for b in batches(t0) if b[0].origin.partition in kept]
    engine, client, keys = engine_on(plain, t0)
    for b in work:
        engine.process(b)
    expected = snapshot(client, keys, plain)

    engine, client, keys = engine_on(faulty, t0)
    half = len(work) // 2
    for b in work[:half]:
        engine.process(b)
    host, port = spare.rsplit(":", 1)
    victim = redis.Redis(host=host, port=int(port))
    assert victim.keys(f"{faulty.key_prefix}:*:profile"), "the victim held profiles"
    victim.flushall()  # restarted empty (no persistence)
    for p in kept:
        with pytest.raises(StateLost) as lost:
            engine.store.verify(p)
        assert lost.value.from_start
    engine, client, keys = engine_on(faulty, t0)  # the re-claims: replay every partition from its first offset
    held = [engine.store.ownership.get(p) for p in kept]
    assert all(h is not None and h.lost_nodes for h in held), "each claim saw the lost master"
    for b in work:
        engine.process(b)
    got = snapshot(client, keys, faulty)
    assert len(got[0]) > 50 and len(got[1]) == len(kept)
    assert got == expected
