"""Finding 19 (ids probed by timing): a denial costs the same whether the customer exists or not.

Counted, never timed: the Redis round trips and commands the service sends (a counting connection on the
client the service uses, and the server's own INFO commandstats), and the Python functions one denial runs
(sys.setprofile around the access check), for customers that exist -- with and without linked identifiers,
looked up by customer id, e-mail or device -- against ids that do not.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from starlette.requests import Request
from starlette.testclient import TestClient

from gateway import api
from gateway.app import create_app
from gateway.problems import Problem
from state import reader
from tests.gateway.conftest import NullProducer, World, bearer, token, world_for
from tests.helpers import event

ROOT = Path(__file__).resolve().parents[2]
OURS = tuple(str(ROOT / d) for d in ("gateway", "state", "operators", "livesignals"))
COUNTED = ("get", "smembers", "zrevrange", "xadd", "hget", "hgetall", "mget", "exists")  # not xtrim: see shape


def resp_commands(packed: bytes) -> list[tuple[str, ...]]:
    """The commands in a packed RESP request (one pipeline or one command): name and arguments."""
    out, i = [], 0
    while i < len(packed):
        end = packed.index(b"\r\n", i)
        n, i = int(packed[i + 1 : end]), end + 2
        parts = []
        for _ in range(n):
            end = packed.index(b"\r\n", i)
            size, i = int(packed[i + 1 : end]), end + 2
            parts.append(packed[i : i + size].decode("latin-1"))
            i += size + 2
        out.append((parts[0].lower(), *parts[1:]))
    return out


class CountingConnection(redis.Connection):
    """A real connection that also logs what it sends: one send is one round trip (a pipeline is one send)."""

    sent: list[list[tuple[str, ...]]] = []

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        data = command if isinstance(command, bytes) else b"".join(bytes(c) for c in command)
        commands = resp_commands(data)
        if not any(c[0] in ("xread", "ping", "info") for c in commands):  # the push reader's, the test's own
            CountingConnection.sent.append(commands)
        super().send_packed_command(command, check_health)


@pytest.fixture
def counted(settings, redis_url) -> Iterator[tuple[World, TestClient]]:
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    w = world_for(settings, client)
    app = create_app(w.settings, client=client, producer=NullProducer(), hub_block_ms=200)
    with TestClient(app) as c:
        c.get("/v1/customers/c1", headers=bearer(token("a1", queues=("billing",))))  # once per process: the
        yield w, c  # audit's hashing secret is read (and made) on first use


def shape(rounds: list[list[tuple[str, ...]]]) -> list[list[str]]:
    """Round trips as the command names they carried (the keys differ from customer to customer); the audit's
    trim by age rides on whichever append comes first in each second (the clock's, not the customer's)."""
    return [[c[0] for c in commands if c[0] != "xtrim"] for commands in rounds]


def one_request(client: TestClient, path: str, headers: dict[str, str]) -> tuple[int, list[list[str]], Counter]:
    before = _commandstats(client)
    CountingConnection.sent.clear()
    r = client.get(path, headers=headers)
    sent = list(CountingConnection.sent)
    return r.status_code, shape(sent), _commandstats(client) - before


def _commandstats(client: TestClient) -> Counter:
    service = client.app.state.service  # type: ignore[attr-defined]
    stats = service.client.info("commandstats")
    return Counter({name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in COUNTED})


PAIRS = [
    # (a customer that exists, an id of the same kind that does not)
    ("customer_id:c1", "customer_id:nobody"),  # c1: email, phone and a device claimed
    ("customer_id:c3", "customer_id:nobody2"),  # c3: no other identifier
    ("email:ann@example.com", "email:nobody@example.com"),  # resolved to c1
    ("device_id:d1", "device_id:nodevice"),
]
ROUTES = ["/v1/customers/{key}", "/v1/customers/{key}/flags", "/v1/customers/{key}/actions"]


def test_a_denial_sends_the_same_redis_commands_whether_the_customer_exists_or_not(counted):
    world, client = counted
    a9 = bearer(token("a9", queues=("sales",)))  # serves nobody in this world
    loaded = reader.load(world.client, world.keys, "customer_id:c1")
    assert loaded.known and reader.load(world.client, world.keys, "customer_id:nobody").known is False
    for existing, unknown in PAIRS:
        for route in ROUTES:
            seen: dict[str, list[Any]] = {}
            for key in (existing, unknown, existing):  # twice the existing one: nothing cached between
                status, rounds, server = one_request(client, route.format(key=quote(key, safe=":")), a9)
                assert status == 403, (key, route, status)
                seen.setdefault(key, []).append((rounds, server))
            (e_rounds, e_server), (e_again, _) = seen[existing]
            ((u_rounds, u_server),) = seen[unknown]
            assert e_rounds == u_rounds == e_again, (existing, unknown, route, e_rounds, u_rounds)
            assert e_server == u_server, (existing, unknown, route, e_server, u_server)  # as Redis counted them
            assert len(e_rounds) >= 3  # resolve (not for a customer_id), own profile, linked slots, audit
            assert Counter(n for r in e_rounds for n in r)["get"] == 1 + reader.DENIAL_SLOTS


def test_a_customer_with_linked_identifiers_is_denied_at_the_same_cost(counted):
    world, client = counted
    t = 1_767_225_600_000
    world.apply(
        {**event("web_event", "x", t, action="page_view", url="https://shop.example/"),
         "customer": {"device_id": "dev-linked"}},
        {**event("web_event", "c7", t + 1, action="login"), "customer": {"customer_id": "c7", "device_id": "dev-linked"}},
    )  # fmt: skip
    state = reader.load(world.client, world.keys, "customer_id:c7").state
    assert state.identity.get("linked"), state.identity  # c7 has a linked device with a profile of its own
    a9 = bearer(token("a9", queues=("sales",)))
    _, linked_rounds, linked_server = one_request(client, "/v1/customers/customer_id:c7", a9)
    _, unknown_rounds, unknown_server = one_request(client, "/v1/customers/customer_id:c777", a9)
    assert linked_rounds == unknown_rounds
    assert linked_server == unknown_server


def authorise_traced(service: api.Service, key: str, tok: str) -> tuple[str, Counter]:
    """Run the access check for ``key`` in this thread, logging every call into our packages."""
    scope = {"type": "http", "method": "GET", "path": f"/v1/customers/{key}", "query_string": b"",
             "headers": [(b"authorization", f"Bearer {tok}".encode())], "path_params": {"key": key},
             "client": ("10.9.9.9", 4000)}  # fmt: skip
    calls: Counter = Counter()

    def profile(frame: Any, what: str, arg: Any) -> None:
        if what == "call" and frame.f_code.co_filename.startswith(OURS):
            calls[(Path(frame.f_code.co_filename).name, frame.f_code.co_qualname)] += 1

    sys.setprofile(profile)
    try:
        api.authorise(service, Request(scope), "read_360")
        outcome = "allowed"
    except Problem as problem:
        outcome = f"{problem.status} {problem.detail}"
    finally:
        sys.setprofile(None)
    return outcome, calls


def test_a_denial_runs_the_same_code_whether_the_customer_exists_or_not(counted):
    _, client = counted
    service = client.app.state.service
    tok = token("a9", queues=("sales",))
    authorise_traced(service, "customer_id:warm-up", tok)  # the token verified once, then remembered
    for existing, unknown in PAIRS:
        e_outcome, e_calls = authorise_traced(service, existing, tok)
        u_outcome, u_calls = authorise_traced(service, unknown, tok)
        assert e_outcome == u_outcome == "403 this customer is not assigned to you, or does not exist"
        per_contact = {("access.py", "_own")}  # the rule looks at each open contact (others')
        assert set(e_calls) - per_contact == set(u_calls) - per_contact, (existing, set(e_calls) ^ set(u_calls))
        decodes = ("windows.py", "Windows.from_json")  # once per stored document decoded
        assert e_calls[decodes] == u_calls[decodes] == 1 + reader.DENIAL_SLOTS, (existing, e_calls[decodes])
        assert e_calls[("reader.py", "_decode")] == u_calls[("reader.py", "_decode")] == 1 + reader.DENIAL_SLOTS
        assert e_calls[("access.py", "decide")] == u_calls[("access.py", "decide")] == 2


def test_an_allowed_read_does_not_pay_for_the_stand_ins(counted):
    """The constant-cost path is the denial's: a read the customer's own contact grants reads no stand-in."""
    _, client = counted
    a1 = bearer(token("a1", queues=("billing",)))  # serving c1
    status, rounds, _ = one_request(client, "/v1/customers/customer_id:c3", bearer(token("a2")))
    assert status == 200
    assert Counter(n for r in rounds for n in r)["get"] == 1  # its own profile only (c3 has no links)
    status, rounds, _ = one_request(client, "/v1/customers/customer_id:c1", a1)
    assert status == 200
    assert Counter(n for r in rounds for n in r)["get"] < 1 + reader.DENIAL_SLOTS
