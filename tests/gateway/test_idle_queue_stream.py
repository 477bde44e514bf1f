"""An idle push stream wakes once per keep-alive, whatever it follows (break-test 12f, F8: a stream following
only a queue has no customers to re-check, so once ``gateway_push_recheck_s`` had passed its wait fell to 10 ms
and it wrote a keep-alive ~100 times a second while nothing happened). Real Redis, a real HTTP server."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.gateway.conftest import LiveServer, NullProducer, bearer, token


@pytest.mark.parametrize("query", ["queue=billing", "customer=c1", "customer=c1&queue=billing"])
def test_an_idle_stream_writes_a_keep_alive_per_interval_only(world, query):
    settings = world.settings.replace(gateway_push_recheck_s=1.0, gateway_push_keepalive_s=0.5)
    a1 = bearer(token("a1", queues=("billing",)))
    lines = 0
    with (
        LiveServer(settings, world.client, NullProducer()) as server,
        httpx.Client(timeout=10) as http,
        http.stream("GET", f"{server.url}/v1/push?{query}", headers=a1) as r,
    ):
        assert r.status_code == 200
        deadline = time.monotonic() + 3.0  # 3 re-check intervals, 6 keep-alive intervals
        for line in r.iter_lines():  # a keep-alive at least every 0.5 s: the loop ends soon after
            lines += line.startswith(":")
            if time.monotonic() >= deadline:
                break
    assert 2 <= lines <= 12, lines  # ~6 keep-alives (and 'connected'), not ~200
