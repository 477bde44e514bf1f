"""``redis_wait_replicas``: a commit is acknowledged only once that many replicas hold it (``WAIT``).

A master and a replica, real servers: with ``redis_wait_replicas = 1`` a commit returns once the replica
holds it; with the replica gone, the commit is not acknowledged (it fails as an outage and the engine
retries it) instead of being counted done on a master whose failover would lose it.
"""

from __future__ import annotations

import subprocess
import tempfile
import time

import pytest
import redis

from app import embedded
from operators.profile360.profile import CustomerState
from state.keys import Keys
from state.ownership import Ownership, claim
from state.store import ProfileStore, ReplicasBehind


def replica_of(master_port: int) -> tuple[subprocess.Popen[bytes], redis.Redis]:
    port = embedded.free_port()
    argv = [embedded.valkey_binary(prefer_system=True), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", tempfile.mkdtemp(prefix="ls-replica-"),
            "--replicaof", "127.0.0.1", str(master_port)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    embedded.wait_for_port(port, proc=proc)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 30
    while client.info("replication").get("master_link_status") != "up":
        if time.monotonic() > deadline:
            pytest.fail("the replica did not sync")
        time.sleep(0.05)
    return proc, client


def store_on(client: redis.Redis, prefix: str, replicas: int) -> ProfileStore:
    keys = Keys(prefix)
    ownership = Ownership(lambda p: claim(client, keys, p, ("in",)))
    ownership.claim(0)
    return ProfileStore(client, keys, ownership=ownership, wait_replicas=replicas, wait_timeout_ms=200)


def test_with_wait_a_commit_returns_once_the_replica_holds_it_and_is_refused_without_one():
    with embedded.start_redis(prefer_system=True) as master_server:
        master = redis.Redis(port=master_server.port)
        proc, replica = replica_of(master_server.port)
        try:
            store = store_on(master, "w1", replicas=1)
            for offset in range(20):
                state = CustomerState("customer_id:c1", events=offset + 1, applied={"in:0": offset})
                store.commit([state], [], {("in", 0): offset + 1})
                # acknowledged: the replica already holds this commit (no waiting, no polling)
                assert replica.hget(store.keys.partition_meta(0), "offset:in") == str(offset + 1).encode()
        finally:
            embedded.stop_process(proc)
        store = store_on(master, "w2", replicas=1)
        with pytest.raises(ReplicasBehind):
            store.commit([CustomerState("customer_id:c2", events=1, applied={"in:0": 0})], [], {("in", 0): 1})
        assert isinstance(ReplicasBehind("x"), redis.RedisError), "an outage: the engine's backoff retries it"
        plain = store_on(master, "w3", replicas=0)
        plain.commit([CustomerState("customer_id:c3", events=1, applied={"in:0": 0})], [], {("in", 0): 1})
