"""The engine and the agent desktop agree on when an open contact is over (D6, info: the engine's 4 h was a
constant, the service's a setting that could be set longer). One source of truth,
``livesignals.settings.CONTACT_IDLE_S``: the engine's ``CONTACT_IDLE_MS`` is it, the service's
``gateway_contact_open_s`` defaults to it and may be shorter, never longer."""

from __future__ import annotations

import pytest

from livesignals.settings import CONTACT_IDLE_S, Settings, SettingsError
from operators.profile360.update import CONTACT_IDLE_MS
from tests.gateway.conftest import bearer, now_ms, token
from tests.helpers import event


def test_the_services_window_defaults_to_the_engines_idle_time():
    assert CONTACT_IDLE_MS == CONTACT_IDLE_S * 1000 == Settings().gateway_contact_open_s * 1000


def test_a_window_longer_than_the_engines_is_refused_a_shorter_one_taken():
    with pytest.raises(SettingsError, match="gateway_contact_open_s: must be at most 14400"):
        Settings(gateway_contact_open_s=CONTACT_IDLE_S + 1)
    assert Settings(gateway_contact_open_s=600).gateway_contact_open_s == 600


def test_past_the_idle_time_the_old_agent_is_refused_and_a_new_message_waits_in_the_queue(world, client):
    a1, a3 = bearer(token("a1", queues=("billing",))), bearer(token("a3", queues=("retention",)))
    t = now_ms() - CONTACT_IDLE_MS - 60_000
    world.apply(event("chat", "u9", t, event_id="old", agent_id="a1", queue="billing", text="hello"))
    assert client.get("/v1/customers/u9", headers=a1).status_code == 403  # the service: over
    world.apply(event("chat", "u9", now_ms() - 1000, event_id="new", queue="billing", text="me again"))
    r = client.get("/v1/customers/u9", headers=a1)  # the engine: over too, a new contact waits in billing
    assert r.status_code == 200 and r.json()["access"]["why"] == "waiting in your queue billing", r.text
    assert r.json()["activity"]["open_contacts"]["chat"]["agent_id"] is None
    assert client.get("/v1/customers/u9", headers=a3).status_code == 403
