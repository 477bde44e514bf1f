"""The state layer on a real Redis Cluster: every key of a customer in one slot, same 360 as one node.

Three cluster nodes are started by the test (no replicas), slots split in
three; the scripted journey of ``test_customer_journey`` (anonymous visit,
login that links the device, cart, complaint, call) goes through the
in-process engine onto the cluster, and the 360 read back must equal the
one from a single Redis.
"""

from __future__ import annotations

import time

import redis

from livesignals import serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from operators.engine import Engine
from state.connection import connect
from state.keys import Keys
from state.reader import read_360
from state.store import ProfileStore
from tests.integration.test_customer_journey import journey

MIN = 60_000


class Capture:
    def publish(self, records) -> None:
        pass


def run_journey(settings, t0: int) -> dict:
    """The journey through the engine onto ``settings``' Redis, in small batches; the 360 read back."""
    client, keys = connect(settings), Keys(settings.key_prefix)
    pushes = redis.Redis.from_url(settings.redis_url).pubsub(ignore_subscribe_messages=True)  # one node is enough
    pushes.subscribe(keys.flags_channel)
    store = ProfileStore(client, keys, cluster=settings.redis_cluster)
    engine = Engine(settings, store, Capture(), clock=lambda: (t0 + 100 * MIN) / 1000)
    steps = journey(t0)
    for i in range(0, len(steps), 2):  # a few batches, so state is reloaded from the cache and Redis
        engine.process(
            [RawMessage(serde.dumps(e), b"k", Origin("in", 0, i + j, t0)) for j, e in enumerate(steps[i : i + 2])]
        )
    view = read_360(client, keys, "customer_id:c-77", now_ms=t0 + 73 * MIN, channel="phone")
    pushed, deadline = 0, time.monotonic() + 5
    while pushed < client.xlen(keys.flags_stream) and time.monotonic() < deadline:
        pushed += pushes.get_message(timeout=0.2) is not None
    pushes.close()
    return {**view, "flags_in_stream": client.xlen(keys.flags_stream), "flags_pushed": pushed}


def test_the_journey_on_a_cluster_reads_back_as_on_one_redis(settings, cluster_url):
    t0 = 1_767_225_600_000 + 12 * 3_600_000
    single = run_journey(settings, t0)
    clustered = run_journey(settings.replace(redis_url=cluster_url, redis_cluster=True), t0)
    assert clustered == single
    assert clustered["flags_in_stream"] >= 1, "flags reached the replayable stream"
    assert clustered["flags_pushed"] == clustered["flags_in_stream"], "and were pushed live"
    assert clustered["identity"]["ids"]["device_id"] == ["d-77"], "the anonymous device was linked"
    assert [e["id"] for e in clustered["timeline"]] == ["j-5", "j-4", "j-3", "j-2", "j-1", "j-0"]


def test_every_key_of_a_customer_shares_one_slot(settings, cluster_url):
    keys = Keys(settings.key_prefix)
    client = connect(settings.replace(redis_url=cluster_url, redis_cluster=True))
    customer = "customer_id:c-77"
    slots = {client.keyslot(k) for k in (keys.profile(customer), keys.timeline(customer))}
    assert len(slots) == 1
