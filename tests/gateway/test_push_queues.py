"""Queue followers are routed from the stream entry alone (findings-12b B5): the engine writes each flag and
update entry with its customer's open contacts (state.entry_contacts), the push hub reads no profile for them,
the access rule decides on them at delivery, and a catch-up reads only the customers it would hand over
(confirmed against their profiles now). Real engine, real Redis, a real HTTP server."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from livesignals import documents, serde
from livesignals.settings import Settings
from state import entry_contacts, reader
from state.keys import Keys
from tests.gateway.conftest import LiveServer, NullProducer, bearer, now_ms, token
from tests.gateway.test_push import add_flag, flags_of, follow
from tests.gateway.test_updates import T, engine_for, updates
from tests.helpers import event, raw

SUP = bearer(token("s1", role="supervisor", queues=("billing",)))


@pytest.fixture
def server(world):
    with LiveServer(world.settings, world.client, NullProducer()) as s:
        yield s


@pytest.fixture
def profile_reads(monkeypatch):
    """Every batch of customers whose profiles the service reads for their open contacts."""
    reads: list[list[str]] = []
    real = reader.read_open_contacts

    def counted(client, keys, customer_keys):
        reads.append(list(customer_keys))
        return real(client, keys, customer_keys)

    monkeypatch.setattr(reader, "read_open_contacts", counted)
    return reads


def test_the_engine_writes_the_customers_open_contacts_into_its_flag_and_update_entries(
    settings: Settings, redis_client: redis.Redis
) -> None:
    s = settings.replace(models_enabled=True, quiet_hours="0-0", policy_clock="stream")
    keys = Keys(s.key_prefix)
    events = [event("chat", "c1", T + i * 1000, topic="billing", text="still broken, terrible", agent_id="a1",
                    queue="billing") for i in range(3)]  # fmt: skip
    engine_for(s, redis_client).process(raw(events))
    stored: Any = documents.decode(redis_client.get(keys.profile("customer_id:c1")))  # type: ignore[arg-type]
    expected = entry_contacts.encode(serde.loads(stored)["activity"]["open_contacts"]).decode()
    rows: Any = redis_client.xrange(keys.flags_stream)
    flags = [{k.decode(): v.decode() for k, v in f.items()} for _, f in rows]
    entries = flags + updates(redis_client, keys)
    assert flags and len(entries) > len(flags)
    assert {e["contacts"] for e in entries} == {expected}
    assert serde.loads(expected) == [["chat", "a1", "billing", T + 2000]]


def test_a_queue_follower_is_served_from_the_entries_without_reading_profiles(world, server, profile_reads):
    conn = follow(server, headers=SUP, queues=("billing",))
    assert conn.status == 200
    t, aged = now_ms(), now_ms() - world.settings.gateway_contact_open_s * 1000 - 60_000
    add_flag(world, "customer_id:q1", "a", 0, contacts=[["chat", None, "billing", t]])  # waits in billing
    add_flag(world, "customer_id:q2", "b", 0, contacts=[["chat", "a9", "retention", t]])  # another team's queue
    add_flag(world, "customer_id:q3", "c", 0, contacts=[])  # no open contact
    add_flag(world, "customer_id:q4", "d", 0, contacts=[["chat", None, "billing", aged]])  # aged out at delivery
    add_flag(world, "customer_id:c2", "e", 0)  # an entry of an older engine: its profile says (waits in billing)
    got = conn.wait_for(2)
    # q1 has no profile at all: only the entry says where it waits
    assert flags_of(got) == [("customer_id:q1", "f-a-0"), ("customer_id:c2", "f-e-0")]
    assert profile_reads == [["customer_id:c2"]]  # the entry without contacts only
    conn.close()


def test_a_queue_followers_resume_reads_only_the_customers_it_hands_over(world, server, profile_reads):
    start = add_flag(world, "customer_id:c5", "z", 0, contacts=[])
    t = now_ms()
    for i in range(30):  # other queues' customers: never read
        add_flag(world, f"customer_id:o{i}", "o", i, contacts=[["chat", "a9", "sales", t]])
    add_flag(world, "customer_id:c2", "b", 0, contacts=[["phone", None, "billing", t]])  # waits in billing
    # the entry said billing, but c3 is served in retention now (its profile): not handed over on a replay
    add_flag(world, "customer_id:c3", "x", 0, contacts=[["chat", None, "billing", t]])
    conn = follow(server, headers=SUP, queues=("billing",), last_id=start)
    add_flag(world, "customer_id:c2", "b", 1, contacts=[["phone", None, "billing", t]])  # live, after the replay
    got = conn.wait_for(2)
    assert flags_of(got) == [("customer_id:c2", "f-b-0"), ("customer_id:c2", "f-b-1")]
    assert profile_reads == [["customer_id:c2", "customer_id:c3"]]  # the candidates only, once
    conn.close()
