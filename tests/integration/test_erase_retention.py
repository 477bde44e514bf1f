"""Retention: an idle anonymous id disappears by itself, its claims too; a customer's profile stays.

Small TTLs (seconds) stand in for the defaults (30 and 400 days); on one Redis and on Redis Cluster.
"""

from __future__ import annotations

import time

import pytest

from livesignals import serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from operators.engine import Engine
from state.connection import connect
from state.keys import Keys
from state.ownership import Ownership, claim
from state.retention import Retention
from state.store import ProfileStore
from tests.helpers import T0, event
from tests.integration.test_erase import Capture
from tests.integration.test_erase import erase_settings as erase_settings  # the fixture: single and Cluster

MIN = 60_000


def test_an_idle_anonymous_id_disappears_and_its_claim_expires(erase_settings):
    """Fenced, as in production: on the Cluster the anonymous id's writer key exists and expires too.

    A claim set with anonymous claimants only (a cookie the device linked) expires with them; one a
    known customer claimed (the device the customer logged in with) stays while the customer does."""
    s = erase_settings.replace(models_enabled=False, anonymous_ttl_s=2, identity_claim_ttl_s=3)
    client, keys = connect(s), Keys(s.key_prefix)
    ownership = Ownership(lambda p: claim(client, keys, p, ["in"]))
    ownership.claim(0)
    store = ProfileStore(
        client, keys, cluster=s.redis_cluster, retention=Retention.from_settings(s), ownership=ownership
    )
    engine = Engine(s, store, Capture(), clock=lambda: (T0 + 60 * MIN) / 1000)
    anon = {"device_id": "d-idle"}
    steps = [
        {**event("web_event", t=T0, action="page_view", url="/a"), "customer": anon, "event_id": "a1"},
        {**event("web_event", t=T0 + MIN, action="page_view", url="/b"), "customer": anon, "event_id": "a2"},
        {**event("app_event", t=T0 + 2 * MIN, action="login"), "customer": {"customer_id": "c-idle", **anon},
         "event_id": "a3"},
        {**event("web_event", t=T0 + 3 * MIN, action="page_view", url="/c"),
         "customer": {**anon, "cookie_id": "k-idle"}, "event_id": "a4"},
    ]  # fmt: skip
    engine.process([RawMessage(serde.dumps(e), b"k", Origin("in", 0, i, T0)) for i, e in enumerate(steps)])
    anonymous = [keys.profile("device_id:d-idle"), keys.timeline("device_id:d-idle")]
    assert all(client.exists(k) for k in anonymous)
    assert all(0 < client.ttl(k) <= 2 for k in anonymous)
    assert 0 < client.ttl(keys.owners("cookie_id:k-idle")) <= 3  # claimed by the anonymous device only
    assert client.ttl(keys.owners("device_id:d-idle")) == -1  # claimed by the customer: no TTL
    if s.redis_cluster:
        assert 0 < client.ttl(keys.writer("device_id:d-idle")) <= 2

    deadline = time.monotonic() + 10
    while any(client.exists(k) for k in [*anonymous, keys.owners("cookie_id:k-idle")]):
        assert time.monotonic() < deadline, "the idle anonymous id is still there"
        time.sleep(0.2)
    assert not client.exists(keys.writer("device_id:d-idle"))
    assert client.smembers(keys.owners("device_id:d-idle")) == {b"customer_id:c-idle"}
    assert client.exists(keys.profile("customer_id:c-idle"))
    assert client.ttl(keys.profile("customer_id:c-idle")) == -1  # a customer's 360 has no TTL


@pytest.mark.parametrize("anonymous_ttl_s", [1])
def test_each_write_sets_the_anonymous_ttl_again(settings, anonymous_ttl_s):
    """Active anonymous ids stay: the TTL counts from the last event applied."""
    s = settings.replace(models_enabled=False, anonymous_ttl_s=anonymous_ttl_s + 1)
    client, keys = connect(s), Keys(s.key_prefix)
    engine = Engine(s, ProfileStore(client, keys, retention=Retention.from_settings(s)), Capture())
    for i in range(4):
        e = {**event("web_event", t=T0 + i * MIN, action="page_view"), "customer": {"cookie_id": "k1"}}
        engine.process([RawMessage(serde.dumps({**e, "event_id": f"k{i}"}), b"k", Origin("in", 0, i, T0))])
        time.sleep(anonymous_ttl_s * 0.7)
    assert client.exists(keys.profile("cookie_id:k1"))
