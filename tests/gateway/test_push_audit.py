"""A push subscription is audited once per customer and only when it is made (break-test 12c, C13): a
customer named by several identifier kinds in one request (``c1``, ``device_id:d1``, ``email:...``) is read
and audited once, and a request refused 429 at the connection cap is not audited as an allowed subscription.
Real Redis, a real HTTP server."""

from __future__ import annotations

import httpx

from tests.gateway.conftest import LiveServer, NullProducer
from tests.gateway.test_push import A1, follow


def _subscribes(world) -> list[dict[str, str]]:
    rows = [
        {k.decode(): v.decode() for k, v in f.items()} for _, f in world.client.xrange(f"{world.keys.prefix}:audit")
    ]
    return [r for r in rows if r["action"] == "subscribe"]


def _gets(world) -> int:
    return world.client.info("commandstats").get("cmdstat_get", {}).get("calls", 0)


def test_a_customer_named_by_three_identifier_kinds_is_read_and_audited_once(world):
    with LiveServer(world.settings, world.client, NullProducer()) as server:
        alone = follow(server, "c1")  # also warms what is read once per process (the privacy secret)
        assert alone.status == 200
        alone.close()
        before, audited_before = _gets(world), len(_subscribes(world))
        conn = follow(server, "c1")
        assert conn.status == 200
        one_name = _gets(world) - before
        conn.close()
        before, audited_before = _gets(world), len(_subscribes(world))
        conn = follow(server, "c1", "device_id:d1", "email:ann@example.com")  # all three are c1's (conftest)
        assert conn.status == 200
        assert _gets(world) - before == one_name  # c1 (and its linked identifiers) read once, not three times
        entries = _subscribes(world)[audited_before:]
        assert [(e["who"], e["allowed"]) for e in entries] == [("a1", "1")], entries
        conn.close()


def test_a_push_refused_at_the_connection_cap_is_not_audited_as_a_subscription(world):
    settings = world.settings.replace(gateway_push_max_connections=2)
    with LiveServer(settings, world.client, NullProducer()) as server:
        conns = [follow(server, "c1") for _ in range(2)]
        assert [c.status for c in conns] == [200, 200]
        before = len(_subscribes(world))
        refused = [httpx.get(f"{server.url}/v1/push?customer=c1", headers=A1).status_code for _ in range(5)]
        assert refused == [429] * 5
        assert len(_subscribes(world)) == before  # nothing audited as subscribed: no subscription was made
        for c in conns:
            c.close()
