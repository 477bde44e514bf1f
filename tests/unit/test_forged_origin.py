"""Forged ``ls.origin.*`` headers cannot make the engine skip, or misplace, a customer's events.

The origin headers of a rerouted event decide its ids and its replay check.
The last outside review of issue 9 wrote a record to the repartition topic with
headers naming an input offset far ahead: the engine trusted them, recorded
that offset as applied, and skipped the customer's real events after it as
replays. Now only the engine's own, signed reroutes (``ls.origin.sig``, HMAC
keyed by :func:`operators.routing.origin_key`) are restored; anything else on
the repartition topic is applied where it was read.
"""

from __future__ import annotations

import hashlib
import hmac

from prometheus_client import REGISTRY

from livesignals import serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.settings import Settings
from operators.engine import Engine
from operators.routing import Router, origin_key
from state.memory import InMemoryStore
from tests.helpers import T0, event

PARTITIONS = 4
SETTINGS = Settings(metrics_port=0, input_topics=("in",), repartition_topic="rep", repartition_secret="s3cret")
OWNER = Router(["in"], "rep", PARTITIONS).owner("customer_id:c1")
OTHER = (OWNER + 1) % PARTITIONS


class _Capture:
    def __init__(self) -> None:
        self.records: list = []

    def publish(self, records) -> None:
        self.records.extend(records)


def _engine() -> tuple[Engine, InMemoryStore, _Capture]:
    store, out = InMemoryStore(), _Capture()
    counts = {"in": PARTITIONS, "rep": PARTITIONS}
    engine = Engine(SETTINGS, store, out, partition_counts=counts, clock=lambda: (T0 + 10**9) / 1000)
    return engine, store, out


def _ignored() -> float:
    return REGISTRY.get_sample_value("livesignals_origin_headers_ignored_total") or 0.0


def _forged_headers(value: bytes, key: bytes | None) -> list[tuple[str, bytes]]:
    headers = [
        ("ls.origin.topic", b"in"),
        ("ls.origin.partition", str(OWNER).encode()),
        ("ls.origin.offset", b"1000000"),
        ("ls.origin.timestamp", b"0"),
    ]
    if key is not None:  # signed, but with a key the forger guessed
        head = f"in\0{OWNER}\0{1_000_000}\0{0}\0".encode()
        headers.append(("ls.origin.sig", hmac.new(key, head + value, hashlib.sha256).hexdigest().encode()))
    return headers


def _attack(forger_key: bytes | None) -> None:
    engine, store, _ = _engine()
    before = _ignored()
    forged = serde.dumps(event("chat", "c1", T0, event_id="forged", text="hi"))
    engine.process([RawMessage(forged, b"c1", Origin("rep", OWNER, 0, T0), _forged_headers(forged, forger_key))])
    state = store.states["customer_id:c1"]
    assert f"in:{OWNER}" not in state.applied, "the forged origin was not recorded as applied"
    assert state.applied.get(f"rep:{OWNER}") == 0, "the record counts where it was read"
    assert _ignored() == before + 1
    real = serde.dumps(event("chat", "c1", T0 + 1000, event_id="real", text="where is my parcel"))
    report = engine.process([RawMessage(real, b"c1", Origin("in", OWNER, 5, T0))])
    assert (report.applied, report.replay_skipped) == (1, 0), "the customer's real events still apply"


def test_unsigned_origin_headers_on_the_repartition_topic_are_not_trusted():
    _attack(forger_key=None)


def test_origin_headers_signed_with_another_key_are_not_trusted():
    _attack(forger_key=origin_key(Settings(repartition_secret="guess")))
    _attack(forger_key=b"")


def test_the_engines_own_reroute_round_trips_and_is_applied_as_from_its_first_position():
    engine, store, out = _engine()
    value = serde.dumps(event("chat", "c1", T0, event_id="e1", text="hi"))
    engine.process([RawMessage(value, b"session-1", Origin("in", OTHER, 42, T0))])
    (reroute,) = [r for r in out.records if r.topic == "rep"]
    assert dict(reroute.headers)["ls.origin.sig"]
    engine.process([RawMessage(reroute.value, reroute.key, Origin("rep", OWNER, 0, T0), reroute.headers)])
    assert store.states["customer_id:c1"].applied[f"in:{OTHER}"] == 42
    tampered = serde.dumps(event("chat", "c1", T0, event_id="e2", text="other"))
    before = _ignored()
    engine.process([RawMessage(tampered, reroute.key, Origin("rep", OWNER, 1, T0), reroute.headers)])
    assert _ignored() == before + 1, "a valid signature moved onto another value does not verify"


def test_an_unsigned_record_at_the_wrong_repartition_partition_is_rerouted_not_applied_there():
    engine, store, out = _engine()
    value = serde.dumps(event("chat", "c1", T0, event_id="e1", text="hi"))
    report = engine.process([RawMessage(value, b"c1", Origin("rep", OTHER, 3, T0), None)])
    assert report.applied == 0 and "customer_id:c1" not in store.states, "one writer per customer"
    (reroute,) = [r for r in out.records if r.topic == "rep"]
    assert reroute.partition == OWNER and dict(reroute.headers)["ls.origin.offset"] == b"3"


def test_origin_headers_on_an_input_topic_are_never_read():
    engine, store, _ = _engine()
    value = serde.dumps(event("chat", "c1", T0, event_id="e1", text="hi"))
    engine.process([RawMessage(value, b"c1", Origin("in", OWNER, 7, T0), _forged_headers(value, None))])
    assert store.states["customer_id:c1"].applied == {f"in:{OWNER}": 7}


def test_the_secret_is_never_printed():
    assert "s3cret" not in repr(SETTINGS) and SETTINGS.redacted()["repartition_secret"] == "***"
