"""The monitor's state check between batches, on a single Redis and on a Redis Cluster (real servers).

What :class:`flows.state_probe.IdleLossWatch` must see without a batch: a partition meta gone (a Redis
restarted empty) and, on a Cluster, a master's marker gone (a master that held only profiles restarted empty).
The live engine's side (probe, rebuild, a later event applied once) is ``test_state_loss_idle.py``.
"""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from flows.state_probe import IdleLossWatch
from state import node_markers
from state.connection import connect
from state.keys import Keys
from state.ownership import Ownership, claim

PARTS = 4


def noticed() -> float:
    return REGISTRY.get_sample_value("livesignals_state_loss_noticed_idle_total") or 0.0


@pytest.mark.parametrize("cluster", [False, True], ids=["single", "cluster"])
def test_a_loss_between_batches_asks_one_probe_per_claim_of_each_partition_that_lost_its_state(
    settings, request, cluster
):
    s = settings.replace(redis_cluster=True, redis_url=request.getfixturevalue("cluster_url")) if cluster else settings
    client, keys = connect(s), Keys(s.key_prefix)
    ownership = Ownership(lambda p: claim(client, keys, p, ("in",), cluster=cluster))
    for p in range(PARTS):
        ownership.claim(p)
    watch = IdleLossWatch(s, ownership)
    assert watch.tick(client) == []  # Redis holds every claim's state
    assert not any(ownership.take_probe(p) for p in range(PARTS))

    before = noticed()
    if cluster:  # one master restarted empty: its marker is gone, so is every partition's profiles there
        client.delete(node_markers.marker_keys(client, keys)[1])
        lost = list(range(PARTS))
    else:  # the partition meta gone, as after a restart without persistence
        client.delete(keys.partition_meta(2))
        lost = [2]
    assert watch.tick(client) == lost
    assert noticed() - before == len(lost)
    assert [p for p in range(PARTS) if ownership.take_probe(p)] == lost
    assert not any(ownership.take_probe(p) for p in range(PARTS))  # taken once
    assert watch.tick(client) == []  # asked once per claim: the rebuild's re-claim is a new one

    ownership.claim(lost[0])  # the probe's re-claim (the sink's STATE LOSS path)
    assert watch.tick(client) == []  # the new claim holds
