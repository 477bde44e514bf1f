"""The profile store against a real Redis: batching, atomic commit, cache, resume offsets."""

from __future__ import annotations

import pytest
import redis

from livesignals import serde
from operators.profile360.profile import CustomerState
from operators.rules.signals import Flag
from state.keys import Keys
from state.store import ProfileStore


def flag(customer="customer_id:c1", name="repeat_contact"):
    return Flag(f"id-{customer}-{name}", customer, name, "warning", "why", ("e1",), 1, 2, 0)


@pytest.fixture
def store(redis_client, settings):
    return ProfileStore(redis_client, Keys(settings.key_prefix), cache_size=10)


def test_commit_then_load_from_a_fresh_store(store, redis_client, settings):
    s = CustomerState("customer_id:c1", events=3, value={"spend": 12.5}, applied={"in:0": 41})
    store.commit([s], [flag()], {("in", 0): 42})
    fresh = ProfileStore(redis_client, Keys(settings.key_prefix))
    assert fresh.load(["customer_id:c1"])["customer_id:c1"] == s
    assert fresh.load(["customer_id:new"])["customer_id:new"] == CustomerState("customer_id:new")
    assert fresh.resume_offsets("in") == {0: 42}
    entries = redis_client.xrange(Keys(settings.key_prefix).flags_stream)
    assert serde.loads(entries[0][1][b"doc"])["flag"] == "repeat_contact"


def test_one_round_trip_loads_a_whole_batch_and_the_cache_serves_repeats(store, redis_client):
    before = redis_client.info("stats")["total_commands_processed"]
    store.load([f"customer_id:c{i}" for i in range(8)])
    store.load([f"customer_id:c{i}" for i in range(8)])
    after = redis_client.info("stats")["total_commands_processed"]
    # 8 HGETALLs in one pipeline, then all from the cache (+1 for the INFO call itself)
    assert after - before == 8 + 1


def test_a_commit_that_never_reaches_redis_leaves_no_trace_and_clears_the_cache(store, redis_client, settings):
    from app.embedded import free_port

    keys = Keys(settings.key_prefix)
    s = store.load(["customer_id:c1"])["customer_id:c1"]
    s.events = 99  # mutated in the cache, as the engine does
    store.client = redis.Redis(port=free_port(), socket_connect_timeout=0.2)  # Redis "gone"
    with pytest.raises(redis.ConnectionError):
        store.commit([s], [flag()], {("in", 0): 5})
    store.client = redis_client
    assert redis_client.get(keys.profile("customer_id:c1")) is None
    assert store.load(["customer_id:c1"])["customer_id:c1"].events == 0


def test_a_transaction_cut_before_exec_applies_nothing(redis_client, settings):
    """What the crash-safety rests on: Redis applies a MULTI block only on EXEC."""
    import socket

    key = Keys(settings.key_prefix).profile("customer_id:c1")
    host, port = (
        redis_client.connection_pool.connection_kwargs["host"],
        redis_client.connection_pool.connection_kwargs["port"],
    )
    with socket.create_connection((host, port)) as raw_conn:
        raw_conn.sendall(f"MULTI\r\nSET {key} 7\r\n".encode())
        raw_conn.recv(100)
    assert redis_client.get(key) is None


def test_keys_of_one_customer_share_a_cluster_hash_slot(redis_client, settings):
    from redis.crc import key_slot

    k = Keys(settings.key_prefix)
    assert key_slot(k.profile("customer_id:c1").encode()) == key_slot(f"{k.tag('customer_id:c1')}:x".encode())
