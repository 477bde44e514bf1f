"""Refused-token attempts are found and attributed (break-test 12b, B7): the audited ``source`` is the socket
peer unless ``gateway_trusted_proxies`` names it, and every spelling of one customer shares one pseudonym."""

from __future__ import annotations

import httpx
import pytest

from livesignals.settings_check import SettingsError
from state.erasure import ErasureLedger
from state.keys import Keys
from tests.gateway.conftest import LiveServer, NullProducer

FORGED = {"Authorization": "Bearer junk", "X-Forwarded-For": "10.9.9.9, 198.51.100.7"}


def _refused_source(world, settings) -> str:
    with LiveServer(settings, world.client, NullProducer()) as server:
        r = httpx.get(f"{server.url}/v1/customers/c2", headers=FORGED, timeout=10)
        assert r.status_code == 401
        return server.app.state.service.audit.entries(1)[0]["source"]


def test_a_forwarded_address_is_not_believed_by_default(world):
    assert world.settings.gateway_trusted_proxies == ()
    assert _refused_source(world, world.settings) == "127.0.0.1"  # the peer, not what the header says


def test_a_forwarded_address_is_believed_from_a_configured_proxy(world):
    settings = world.settings.replace(gateway_trusted_proxies=("127.0.0.0/8",))
    assert _refused_source(world, settings) == "198.51.100.7"  # the address the proxy saw


def test_trusted_proxies_must_be_addresses():
    with pytest.raises(SettingsError, match="gateway_trusted_proxies"):
        from livesignals.settings import Settings

        Settings(gateway_trusted_proxies=("proxy.internal",))


def test_every_spelling_of_a_customer_shares_one_pseudonym(world, client):
    ledger = ErasureLedger(world.client, Keys(world.settings.key_prefix))
    seen = []
    for key in ("customer_id:x2", "x2", "email:BOB.X2@Example.com", "email:bob.x2@example.com"):
        assert client.get(f"/v1/customers/{key}", headers={"Authorization": "Bearer forged"}).status_code == 401
        seen.append(client.app.state.service.audit.entries(1)[0]["customer"])
    customer_id, email = (
        f"customer_id#{ledger.subject('customer_id:x2')}",
        f"email#{ledger.subject('email:bob.x2@example.com')}",
    )
    assert seen == [customer_id, customer_id, email, email]
