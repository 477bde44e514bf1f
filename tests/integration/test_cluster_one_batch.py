"""Redis Cluster: a round of four partitions committed as one batch (flows.one_batch), one partition fenced
in the middle of the commit -- after the profiles, after partition 0's aggregates and offsets, before the
others' -- loses and doubles nothing for the partitions still owned: their aggregates are taken from their
write-ahead records before the round is processed again partition by partition."""

from __future__ import annotations

import time

from flows.engine_sink import _EnginePartition
from livesignals import metrics
from tests.integration.test_cluster_commits import PARTS, batches, engine_on, snapshot


def rounds(t0: int) -> list[list]:
    """The batches of test_cluster_commits, each partition's i-th batch in round i."""
    per_part: dict[int, list] = {}
    for b in batches(t0):
        per_part.setdefault(b[0].origin.partition, []).append(b)
    out = []
    for i in range(max(len(v) for v in per_part.values())):
        out.append([m for p in sorted(per_part) if i < len(per_part[p]) for m in per_part[p][i]])
    return out


def _partition_of(name) -> int:
    name = name.decode() if isinstance(name, bytes) else str(name)
    return int(name.split("{part:", 1)[1].split("}", 1)[0]) if "{part:" in name else -1


def test_a_partition_fenced_mid_commit_of_a_combined_round_loses_and_doubles_nothing_for_the_others(
    settings, cluster_url
):
    t0 = int(time.time() * 1000) - 3 * 3_600_000
    s = settings.replace(redis_url=cluster_url, redis_cluster=True, models_enabled=False)
    plain, faulty = s.replace(key_prefix=s.key_prefix + "a"), s.replace(key_prefix=s.key_prefix + "b")
    work = rounds(t0)

    engine, client, keys = engine_on(plain, t0)
    sink = _EnginePartition(engine, plain, engine.store.ownership, None)
    for r in work:
        sink.write_batch(r)
    expected = snapshot(client, keys, plain)

    engine, client, keys = engine_on(faulty, t0)
    ownership = engine.store.ownership
    sink = _EnginePartition(engine, faulty, ownership, None)
    from state.ownership import Ownership, claim

    other = Ownership(lambda p: claim(client, keys, p, ("in",), cluster=True))
    commit_partition = engine.store._commit_partition
    fence_at = len(work) // 2
    done = {"round": 0, "fenced": False}

    def fenced_in_the_middle(keys=None, args=None, client=None):
        if done["round"] == fence_at and not done["fenced"] and _partition_of(keys[0]) == 1:
            done["fenced"] = True
            other.claim(1)  # after partition 0's aggregates and offsets, before 1, 2 and 3's
        return commit_partition(keys=keys, args=args, client=client)

    engine.store._commit_partition = fenced_in_the_middle
    fallbacks = metrics.ENGINE_ROUNDS.labels("fallback")._value.get()
    kept = [(m._value, m._value.get()) for m in (metrics.FENCED, metrics.PARTITIONS_OWNED, metrics.READY)]
    try:
        for i, r in enumerate(work):
            done["round"] = i
            sink.write_batch(r)
    finally:
        for value, was in kept:  # /readyz reads them (tests/unit/test_readiness)
            value.set(was)
    assert done["fenced"] and metrics.ENGINE_ROUNDS.labels("fallback")._value.get() == fallbacks + 1
    assert ownership.owned() == [0, 2, 3]
    got = snapshot(client, keys, faulty)

    def owned(snap):
        profiles, aggs = snap
        of_1 = {k for k, v in profiles.items() if v is not None and '"in:1"' in str(v)}
        return {k: v for k, v in profiles.items() if k not in of_1}, {
            k: v for k, v in aggs.items() if _partition_of(k) in (0, 2, 3)
        }

    assert len(expected[1]) == PARTS and len(owned(expected)[0]) > 100
    assert owned(got)[1] == owned(expected)[1], "the aggregates of the partitions still owned"
    assert owned(got)[0] == owned(expected)[0], "the profiles of the partitions still owned"
