"""Fixtures of the agent desktop service's tests: a world of customers written by the real engine into the
session's real Redis, tokens, and the service (in process through Starlette's client, or on a real port)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import uvicorn
from starlette.testclient import TestClient

from app.embedded import free_port
from gateway.app import create_app
from gateway.auth import issue_token
from gateway.cli import server_options
from livesignals import documents, serde
from livesignals.privacy import analyst_id
from livesignals.settings import Settings
from operators.engine import Engine
from state.erasure import ErasureLedger
from state.keys import Keys
from state.retention import Retention
from state.store import ProfileStore
from tests.fuzzing import ListPublisher
from tests.helpers import event, raw

SECRET = "test-secret-" + "x" * 40
OTHER_SECRET = "other-secret-" + "y" * 40


def now_ms() -> int:
    return int(time.time() * 1000)


def token(
    subject: str, role: str = "agent", queues: tuple[str, ...] = (), ttl_s: int = 600, secret: str = SECRET
) -> str:
    return issue_token(secret, subject, role, list(queues), ttl_s=ttl_s, now=int(time.time()))


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


class NullProducer:
    """Stands in where no test sends feedback (a Kafka producer is never mocked where Kafka is tested)."""

    def produce(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no Kafka in this test")

    def flush(self, timeout: float = 0) -> int:
        return 0


@dataclass
class World:
    """Customers in Redis, as the engine wrote them."""

    settings: Settings
    client: redis.Redis
    keys: Keys
    engine: Engine
    offset: int = 0

    def apply(self, *events: dict[str, Any]) -> None:
        self.engine.process(raw(list(events), topic=self.settings.input_topics[0], start=self.offset))
        self.offset += len(events)

    def pseudonym(self, customer_id: str) -> str:
        """``customer_id:p_<16 hex>``: the customer as analysts see it and look it up (break-test 12k, K2)."""
        ledger = ErasureLedger(self.client, self.keys, Retention.from_settings(self.settings))
        return f"customer_id:{ledger.pseudonym(f'customer_id:{customer_id}')}"

    def analyst_id(self, kind: str, value: str) -> str:
        """``<kind>_<16 hex>``: an id made from customer data (an event's, a flag's, a decision's) as analysts
        see it, re-hashed with the key of their pseudonyms (break-test 12l, M2)."""
        ledger = ErasureLedger(self.client, self.keys, Retention.from_settings(self.settings))
        return analyst_id(kind, value, ledger.pseudonym_secret)

    def give_targets(
        self,
        customer_key: str,
        flags: tuple[str, ...] = (),
        texts: tuple[str, ...] = (),
        decisions: tuple[str, ...] = (),
    ) -> None:
        """Give a stored customer flags, texts and pending offers with these ids: what agents' verdicts may
        name (gateway.feedback.known_targets). The profile must exist (apply an event first)."""
        key = self.keys.profile(customer_key)
        stored = self.client.get(key)
        if stored is None:
            raise LookupError(f"no stored profile for {customer_key}: apply an event first")
        doc = serde.loads(documents.decode(stored) if isinstance(stored, bytes) else stored)
        doc.setdefault("history", {}).setdefault("recent_flags", []).extend([f, "frustrated"] for f in flags)
        predictions = doc.setdefault("predictions", {})
        predictions.setdefault("recent_texts", []).extend([t, 0, "", [], 0.0] for t in texts)
        predictions.setdefault("offers_pending", []).extend({"id": d} for d in decisions)
        self.client.set(key, serde.dumps(doc), keepttl=True)


def world_for(settings: Settings, client: redis.Redis) -> World:
    s = settings.replace(
        gateway_token_secrets=(SECRET, OTHER_SECRET),
        models_enabled=False,
        quiet_hours="0-0",
        policy_clock="stream",
        gateway_push_keepalive_s=0.5,
    )
    keys = Keys(s.key_prefix)
    engine = Engine(s, ProfileStore(client, keys, cache_size=0), ListPublisher())
    w = World(s, client, keys, engine)
    t = now_ms() - 60_000
    w.apply(
        # c1: chatting with agent a1 in queue billing, a device linked; email and phone known
        {
            **event(
                "chat",
                "c1",
                t,
                agent_id="a1",
                queue="billing",
                topic="billing",
                text="I was charged twice, call me on +44 20 7946 0958",
            ),
            "customer": {"customer_id": "c1", "email": "ann@example.com", "phone": "+442079460958", "device_id": "d1"},
        },
        event(
            "profile_update",
            "c1",
            t + 1,
            fields={"name": "Ann Example", "address": "1 High St", "timezone": "Europe/London"},
        ),
        # c2: waiting in queue billing, no agent yet
        event("call", "c2", t + 2, queue="billing", topic="delivery"),
        # c3: served by a2 in queue retention (another team)
        event("chat", "c3", t + 3, agent_id="a2", queue="retention", text="cancel my plan"),
        # c4: served by a1 once, the contact ended
        event("chat", "c4", t + 4, agent_id="a1", queue="billing", outcome="resolved"),
        # c5: contact long ago (older than gateway_contact_open_s)
        event("chat", "c5", t - s.gateway_contact_open_s * 1000 - 60_000, agent_id="a1", queue="billing"),
    )
    return w


@pytest.fixture
def world(settings: Settings, redis_client: redis.Redis) -> World:
    return world_for(settings, redis_client)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    app = create_app(world.settings, client=world.client, producer=NullProducer(), hub_block_ms=200)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def kworld(kafka_settings: Settings, redis_client: redis.Redis) -> World:
    """A world whose feedback goes to the embedded Kafka broker (the service's own producer)."""
    return world_for(kafka_settings, redis_client)


@pytest.fixture
def kclient(kworld: World) -> Iterator[TestClient]:
    with TestClient(create_app(kworld.settings, client=kworld.client, hub_block_ms=200)) as c:
        yield c


class LiveServer:
    """The service on a real port (uvicorn in a thread): for push, which needs real streaming."""

    def __init__(self, settings: Settings, client: Any, producer: Any) -> None:
        self.port = free_port()
        self.app = create_app(settings, client=client, producer=producer, hub_block_ms=200)
        options = server_options(settings, "127.0.0.1", self.port)  # as `livesignals serve` runs it
        config = uvicorn.Config(self.app, **{**options, "lifespan": "on", "timeout_graceful_shutdown": 2})
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("service did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
