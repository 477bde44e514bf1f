"""Fenced commits on one real Redis: the owner epoch, the store id and the resume offsets are checked with the writes."""

from __future__ import annotations

import time

import pytest

from livesignals import documents
from operators.profile360.profile import CustomerState
from state.keys import Keys
from state.ownership import Fenced, Ownership, StateLost, claim
from state.store import ProfileStore


def owned_store(redis_client, keys):
    ownership = Ownership(lambda p: claim(redis_client, keys, p, ("in",)))
    ownership.claim(0)
    return ProfileStore(redis_client, keys, ownership=ownership)


def state(events, offset):
    return CustomerState("customer_id:c1", events=events, applied={"in:0": offset})


def test_an_older_owner_is_fenced_and_writes_nothing(redis_client, settings):
    keys = Keys(settings.key_prefix)
    old = owned_store(redis_client, keys)
    old.commit([state(1, 0)], [], {("in", 0): 1})
    new = owned_store(redis_client, keys)  # claims partition 0 again: epoch 2
    new.commit([state(2, 1)], [], {("in", 0): 2})
    with pytest.raises(Fenced):
        old.commit([state(9, 5)], [], {("in", 0): 6})
    assert (
        CustomerState.from_bytes(
            "customer_id:c1", documents.read(redis_client.get(keys.profile("customer_id:c1")))
        ).events
        == 2
    )
    assert new.resume_offsets("in") == {0: 2}


def test_a_flushed_redis_is_state_lost_not_a_fresh_start(redis_client, settings):
    keys = Keys(settings.key_prefix)
    store = owned_store(redis_client, keys)
    store.commit([state(1, 0)], [], {("in", 0): 1})
    for k in list(redis_client.scan_iter(f"{settings.key_prefix}:*")):
        redis_client.delete(k)
    with pytest.raises(StateLost, match="meta is missing"):
        store.commit([state(2, 1)], [], {("in", 0): 2})
    assert redis_client.get(keys.profile("customer_id:c1")) is None


def test_a_rolled_back_offset_is_state_lost(redis_client, settings):
    keys = Keys(settings.key_prefix)
    store = owned_store(redis_client, keys)
    store.commit([state(1, 0)], [], {("in", 0): 5})
    redis_client.hset(keys.partition_meta(0), "offset:in", 3)  # e.g. a failover to a lagging replica
    with pytest.raises(StateLost, match="behind"):
        store.commit([state(2, 5)], [], {("in", 0): 6})


def test_a_retried_commit_that_already_reached_redis_writes_nothing(redis_client, settings):
    keys = Keys(settings.key_prefix)
    store = owned_store(redis_client, keys)
    store.commit([state(1, 0)], [], {("in", 0): 1})
    held = store.ownership.get(0) if store.ownership else None
    assert held is not None
    held.offsets["in"] = 0  # as if the reply to the commit had been lost
    store.commit([state(7, 0)], [], {("in", 0): 1})
    assert (
        CustomerState.from_bytes(
            "customer_id:c1", documents.read(redis_client.get(keys.profile("customer_id:c1")))
        ).events
        == 1
    )


def test_epochs_keep_growing_even_when_the_meta_hash_was_lost(redis_client, settings):
    keys = Keys(settings.key_prefix)
    first = claim(redis_client, keys, 0, ("in",))
    second = claim(redis_client, keys, 0, ("in",))
    redis_client.delete(keys.partition_meta(0))  # e.g. the Cluster node holding it restarted empty
    time.sleep(0.01)  # a restart takes far longer than the clock's millisecond
    third = claim(redis_client, keys, 0, ("in",))
    assert int(first.epoch) < int(second.epoch) < int(third.epoch)


def test_redis_rolled_back_to_before_this_claim_is_state_lost_not_fenced(redis_client, settings):
    """Outside review of #10 (10d H4): a backup taken before the running engine's claim, restored under it,
    holds an *older* epoch. That was reported as FENCED (exit 3, which supervisors are told not to restart,
    or a partition released for good on a Cluster); it is a rollback: StateLost, and the sink replays."""
    keys = Keys(settings.key_prefix)
    first = owned_store(redis_client, keys)
    first.commit([state(1, 0)], [], {("in", 0): 1})
    backup = redis_client.hgetall(keys.partition_meta(0))  # the backup, taken before the next claim
    time.sleep(0.01)
    running = owned_store(redis_client, keys)  # a restart or deploy: a newer claim
    running.commit([state(2, 1)], [], {("in", 0): 2})
    redis_client.delete(keys.partition_meta(0))
    redis_client.hset(keys.partition_meta(0), mapping=backup)  # the backup restored under the running engine
    with pytest.raises(StateLost, match="epoch went back"):
        running.commit([state(3, 2)], [], {("in", 0): 3})


def test_a_commit_of_several_partitions_reads_their_metas_in_one_round_trip_and_still_fences(redis_client, settings):
    """A combined round (flows.one_batch) commits several partitions at once: their meta hashes are read under
    WATCH in one round trip (one EVAL), not one HGETALL each, and every partition's claim is still checked."""
    keys = Keys(settings.key_prefix)
    ownership = Ownership(lambda p: claim(redis_client, keys, p, ("in",)))
    for p in range(4):
        ownership.claim(p)
    store = ProfileStore(redis_client, keys, ownership=ownership)
    offsets = {("in", p): 1 for p in range(4)}

    def calls(name: str) -> int:
        return int(redis_client.info("commandstats").get(f"cmdstat_{name}", {}).get("calls", 0))

    hgetall, evals = calls("hgetall"), calls("eval")
    store.commit([state(1, 0)], [], offsets)
    assert calls("eval") - evals == 1  # the metas in one round trip: one EVAL ...
    assert calls("hgetall") - hgetall == 4  # ... whose HGETALLs Redis counts too (no HGETALL of the client's own)
    assert store.resume_offsets("in") == {p: 1 for p in range(4)}
    Ownership(lambda p: claim(redis_client, keys, p, ("in",))).claim(2)  # another engine takes partition 2
    with pytest.raises(Fenced):
        store.commit([state(2, 1)], [], {("in", p): 2 for p in range(4)})
    assert store.resume_offsets("in") == {p: 1 for p in range(4)}  # nothing written, for any partition
