"""Redis Cluster: a master that *rolls back* (restarted from an older RDB snapshot) keeps its store marker, so only
the partition whose meta lived there noticed; the other partitions' customers stored on it silently lost their
latest events (outside review of #10, F4: 2,624 of 3,000). Each master now keeps an applied watermark per partition
(:mod:`state.watermarks`): the check before each batch and the next claim see it behind, the partition is replayed
from the watermark, and the state equals an uninterrupted run's.

Also F5: a claim whose host clock is behind the previous owner's still takes a higher epoch.

In process (the claimer's decision made as :class:`flows.claims.KafkaClaimer` makes it, with the offsets the test
committed standing in for the consumer group's); a three-master cluster of its own, a master really restarted
from its RDB file.
"""

from __future__ import annotations

import time

import pytest
import redis

from livesignals import documents
from operators.engine import Engine
from operators.profile360.profile import CustomerState
from state import rebuild, watermarks
from state.cluster_commit import Plan, _customers
from state.connection import Backoff, connect
from state.keys import Keys
from state.ownership import Fenced, Ownership, StateLost, claim
from state.store import ProfileStore
from tests.integration.cluster import three_nodes
from tests.integration.test_cluster_commits import PARTS, Capture, batches, engine_on, snapshot
from tests.integration.test_cluster_outage import start_again


def interleaved(work):
    """The batches round robin over the partitions (every partition has partial changes at any cut)."""
    by_part: dict[int, list] = {}
    for b in work:
        by_part.setdefault(b[0].origin.partition, []).append(b)
    out = []
    for i in range(max(len(v) for v in by_part.values())):
        out += [v[i] for v in by_part.values() if i < len(v)]
    return out


def wait_until_ok(nodes) -> None:
    """Until every node says the cluster is up again (the restarted node rejoined)."""
    clients = [redis.Redis(host="127.0.0.1", port=n.port) for n in nodes]
    deadline = time.monotonic() + 60
    while not all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients):
        if time.monotonic() > deadline:
            pytest.fail("the cluster did not come back")
        time.sleep(0.1)


def engine_after(settings, t0, group, highs):
    """A new process: claims each partition like KafkaClaimer (``group``: the offsets committed before the fault)."""
    client, keys = connect(settings), Keys(settings.key_prefix)

    def claimer(p):
        held = claim(client, keys, p, ("in",), cluster=True)
        behind = (held.offsets["in"] or 0) < group.get(p, 0)
        if (behind or held.lost_nodes) and rebuild.wanted(held, True, {"in": 0}, {"in": highs[p]}):
            rebuild.begin(client, keys, held, {"in": highs[p]})
        return held

    ownership = Ownership(claimer)
    claims = {p: ownership.claim(p) for p in range(PARTS)}
    store = ProfileStore(client, keys, cluster=True, ownership=ownership,
                         retry=Backoff("redis", initial_s=0.05, max_s=0.2))  # fmt: skip
    engine = Engine(settings.replace(quiet_hours="0-0"), store, Capture(), clock=lambda: t0 / 1000 + 3600)
    return engine, client, keys, claims


def test_a_master_restarted_from_an_older_snapshot_is_seen_by_every_partition_and_replayed_exactly(settings):
    t0 = int(time.time() * 1000) - 3 * 3_600_000
    work = interleaved(batches(t0))
    highs = {p: sum(len(b) for b in work if b[0].origin.partition == p) for p in range(PARTS)}
    with three_nodes() as nodes:
        s = settings.replace(redis_url=f"redis://{nodes[0].address}/0", redis_cluster=True, models_enabled=False)
        plain, faulty = s.replace(key_prefix=s.key_prefix + "rp"), s.replace(key_prefix=s.key_prefix + "rf")
        engine, client, keys = engine_on(plain, t0)
        for b in work:
            engine.process(b)
        expected = snapshot(client, keys, plain)

        engine, client, keys = engine_on(faulty, t0)
        third = len(work) // 3
        for b in work[:third]:
            engine.process(b)
        metas = {p: client.get_node_from_key(keys.partition_meta(p)).name for p in range(PARTS)}
        # the victim holds one partition's meta at least, and profiles of every other partition (F4's shape)
        victim = min(
            (n for n in nodes if n.address in metas.values()), key=lambda n: list(metas.values()).count(n.address)
        )
        elsewhere = [p for p, name in metas.items() if name != victim.address]
        assert elsewhere
        node = redis.Redis(host="127.0.0.1", port=victim.port)
        node.save()  # the snapshot it will roll back to
        for b in work[third : 2 * third]:
            engine.process(b)
        group = {p: engine.store.ownership.get(p).offsets["in"] for p in range(PARTS)}
        mine = [k for k in node.scan_iter(f"{faulty.key_prefix}:*:profile") if node.exists(k)]
        assert len(mine) > 20, "the victim holds profiles"
        node.shutdown(nosave=True)
        start_again(victim)  # from its older RDB file: a backup restored, a failover to a lagging replica
        wait_until_ok(nodes)
        client = connect(faulty)
        engine.store.client = client
        for p in elsewhere:  # the check before each batch: the victim's watermark is behind what p committed
            with pytest.raises(StateLost, match="rolled back"):
                engine.store.verify(p)

        engine, client, keys, claims = engine_after(faulty, t0, group, highs)
        for p in elsewhere:
            held = claims[p]
            assert held.rolled_back, f"partition {p}'s claim saw the rolled-back master"
            assert held.replay_from is not None and held.replay_from["in"] < group[p]
        for b in work:  # the source reads each partition from where its claim says
            start = claims[b[0].origin.partition]
            start_at = (start.replay_from or {}).get("in", start.offsets["in"] or 0)
            rest = [m for m in b if m.origin.offset >= start_at]
            if rest:
                engine.process(rest)
        got = snapshot(client, keys, faulty)
    assert len(got[0]) > 100 and len(got[1]) == PARTS
    events = sum(CustomerState.from_bytes("c", doc).events for doc in got[0].values())
    assert events == sum(highs.values()), "every event applied once"
    assert got[1] == expected[1], "KPIs of every partition equal an uninterrupted run's"
    assert got == expected


def test_a_claim_whose_clock_is_behind_the_previous_owners_still_takes_a_higher_epoch(settings, cluster_url):
    """F5: the partition's meta lost (its master restarted empty), a claimer whose clock is a day behind: the epoch
    comes from the ones recorded on the masters, so the profiles written before are older, not a newer owner's."""
    s = settings.replace(redis_url=cluster_url, redis_cluster=True, key_prefix=settings.key_prefix + "ep")
    client, keys = connect(s), Keys(s.key_prefix)

    def store(clock=time.time):
        ownership = Ownership(lambda p: claim(client, keys, p, ("in",), cluster=True, clock=clock))
        ownership.claim(0)
        return ProfileStore(client, keys, cluster=True, ownership=ownership)

    def state(events, offset):
        return CustomerState("customer_id:c7", events=events, applied={"in:0": offset})

    first = store()
    first.commit([state(1, 0)], [], {("in", 0): 1})
    before = int(first.ownership.get(0).epoch)
    client.delete(keys.partition_meta(0))  # the {part:0} master lost its data; profiles elsewhere kept theirs
    late = store(clock=lambda: time.time() - 86_400)
    held = late.ownership.get(0)
    assert int(held.epoch) > before, "above every recorded epoch, whatever the host clock says"
    older = client.get(keys.writer("customer_id:c7"))
    assert rebuild.is_stale(older, {}, {0: int(held.epoch)}), "a rebuild by this claim would replace its profile"
    late.commit([state(2, 1)], [], {("in", 0): 2})  # not fenced by the older owner's writer key
    assert (
        CustomerState.from_bytes("customer_id:c7", documents.read(client.get(keys.profile("customer_id:c7")))).events
        == 2
    )
    # the older owner, had it passed its check before the new claim, is refused by every master's watermark
    stale = first.ownership.get(0)
    assert stale is not None
    other = CustomerState("customer_id:c8", events=1, applied={"in:0": 5})
    with pytest.raises(Fenced, match="applied watermark"):
        _customers(first, Plan([first._plan_customer(other, {0})], [], {}, {0: {"in": 6}}, {0: stale}))
    assert all(int(client.hget(watermarks.applied_key(k), "epoch:0")) == int(held.epoch) for k in (held.nodes or {}))
