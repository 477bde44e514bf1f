"""Analysts' pseudonym lookup keys ``ls:{pseudonym:<p>}`` (state.keys): written with the profile, exported, erased
(break-test 12k, K2), on one Redis and on Redis Cluster."""

from __future__ import annotations

import logging

from livesignals import documents
from state.connection import connect
from state.erasure import ErasureLedger, export
from state.keys import Keys
from state.retention import Retention
from tests.helpers import T0, event
from tests.integration.test_erase import erase_settings as erase_settings  # the fixture: single and Cluster
from tests.integration.test_erase import messages
from tests.integration.test_erase_shared import MIN, drain, engine_for


def test_a_customers_pseudonym_lookup_key_is_written_exported_kept_per_secret_and_erased(erase_settings):
    old = erase_settings.replace(models_enabled=False, policy_clock="stream", analyst_pseudonym_secret="a" * 32)
    new = old.replace(analyst_pseudonym_secret="b" * 32)
    client, keys = connect(old), Keys(old.key_prefix)
    before, after = (ErasureLedger(client, keys, Retention.from_settings(s)) for s in (old, new))
    key = "customer_id:pz-k2"
    first, second = before.pseudonym(key), after.pseudonym(key)
    assert first and second and first != second
    engine, _ = engine_for(old)
    login = {**event("web_event", "pz-k2", T0, action="login"), "event_id": "pz-0"}
    engine.process(messages([login], 0, 0))
    assert client.get(keys.pseudonym(first)) == key.encode()  # written with the profile
    assert b"pn" not in documents.decode(client.get(keys.profile(key)))  # the profile is the same whatever the secret
    assert export(client, keys, key, before)["pseudonym"] == {"analysts_see": f"customer_id:{first}",
                                                               "lookups": {first: key}}  # fmt: skip
    engine, out = engine_for(new)  # the secret changed: the next event writes the new lookup key
    engine.process(messages([{**event("web_event", "pz-k2", T0 + MIN, action="page_view"), "event_id": "pz-1"}], 0, 1))
    assert client.get(keys.pseudonym(second)) == key.encode() == client.get(keys.pseudonym(first))
    assert client.smembers(keys.pseudonyms(key)) == {first.encode(), second.encode()}
    erase = {**event("erase", "pz-k2", T0 + 30 * MIN, channel="backoffice"), "event_id": "erase-pz-k2"}
    engine.process(messages([erase], 0, 2))
    drain(engine, out, new)
    assert not client.exists(keys.pseudonym(first), keys.pseudonym(second), keys.pseudonyms(key))  # every one
    back = {**event("web_event", "pz-k2", T0 + 45 * MIN, action="login"), "event_id": "pz-2"}
    engine.process(messages([back], 0, 3))  # the customer came back: a new profile, its lookup key again
    assert client.get(keys.pseudonym(second)) == key.encode()


def test_an_unset_pseudonym_secret_is_the_deployments_own_with_a_warning_that_never_shows_it(settings, caplog):
    """Without ``analyst_pseudonym_secret`` the engine and the service key pseudonyms alike with the deployment's
    random secret kept in Redis, and say so once (a WARNING naming the setting, never the value)."""
    from state import secrets as state_secrets

    client, keys = connect(settings), Keys(settings.key_prefix)
    with caplog.at_level(logging.WARNING, logger="state.secrets"):
        held = state_secrets.pseudonym_secret(client, keys, "")
        assert state_secrets.pseudonym_secret(client, keys, "") == held  # the same for every process
    assert client.get(keys.secret("pseudonym")) == held.encode() and len(held) == 64
    warned = [r.getMessage() for r in caplog.records if "analyst_pseudonym_secret" in r.getMessage()]
    assert len(warned) == 1 and held not in warned[0], warned
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="state.secrets"):
        assert state_secrets.pseudonym_secret(client, keys, "s" * 32) == "s" * 32
    assert not caplog.records
