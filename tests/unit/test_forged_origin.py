"""Forged ``ls.origin.*`` headers cannot make the engine skip, or misplace, a customer's events.

The origin headers of a rerouted event decide its ids and its replay check.
The last outside review of issue 9 wrote a record to the repartition topic with
headers naming an input offset far ahead: the engine trusted them, recorded
that offset as applied, and skipped the customer's real events after it as
replays. Now only the engine's own, signed reroutes (``ls.origin.sig``, HMAC
keyed by :func:`operators.routing.origin_key`) are restored; anything else on
the repartition topic is dead-lettered as ``unverified_reroute``, never applied:
the outside review of issue 10 (F1) showed that applying it where it was read
double-counts every rerouted event after Redis loses the signing secret.
Another deployment's reroutes (``ls.origin.deployment``) are skipped (F2).
"""

from __future__ import annotations

import hashlib
import hmac

from prometheus_client import REGISTRY

from livesignals import serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin, Reason
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


def _foreign() -> float:
    return REGISTRY.get_sample_value("livesignals_repartition_foreign_skipped_total") or 0.0


def _attack(forger_key: bytes | None) -> None:
    engine, store, _ = _engine()
    before = _ignored()
    forged = serde.dumps(event("chat", "c1", T0, event_id="forged", text="hi"))
    report = engine.process(
        [RawMessage(forged, b"c1", Origin("rep", OWNER, 0, T0), _forged_headers(forged, forger_key))]
    )
    assert "customer_id:c1" not in store.states, "neither the forged origin nor the record itself is applied"
    (dead,) = report.dead_letters
    assert (dead.reason, dead.origin) == (Reason.UNVERIFIED_REROUTE, Origin("rep", OWNER, 0, T0))
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
    report = engine.process([RawMessage(tampered, reroute.key, Origin("rep", OWNER, 1, T0), reroute.headers)])
    assert _ignored() == before + 1, "a valid signature moved onto another value does not verify"
    assert [d.reason for d in report.dead_letters] == [Reason.UNVERIFIED_REROUTE] and report.applied == 0


def test_an_unsigned_record_at_the_wrong_repartition_partition_is_dead_lettered_not_applied_nor_rerouted():
    # was: rerouted to its owner. A record on the repartition topic is the engine's or no one's (F1)
    engine, store, out = _engine()
    value = serde.dumps(event("chat", "c1", T0, event_id="e1", text="hi"))
    report = engine.process([RawMessage(value, b"c1", Origin("rep", OTHER, 3, T0), None)])
    assert report.applied == 0 and "customer_id:c1" not in store.states, "one writer per customer"
    assert not [r for r in out.records if r.topic == "rep"]
    assert [d.reason for d in report.dead_letters] == [Reason.UNVERIFIED_REROUTE]


def test_a_reroute_signed_with_a_lost_secret_is_not_applied_and_the_replay_applies_the_event_once():
    """F1: Redis lost the secret (and the state); the repartition topic still holds the old reroute."""
    old_engine, _, out = _engine()
    value = serde.dumps(event("order", "c1", T0, event_id="e1", order_id="o1", amount=5.0))
    old_engine.process([RawMessage(value, b"cookie-9", Origin("in", OTHER, 42, T0))])
    (old,) = [r for r in out.records if r.topic == "rep"]
    store, out = InMemoryStore(), _Capture()  # Redis restarted empty: a new secret, no state
    new_settings = SETTINGS.replace(repartition_secret="a-new-random-secret")
    engine = Engine(new_settings, store, out, partition_counts={"in": PARTITIONS, "rep": PARTITIONS})
    report = engine.process([RawMessage(old.value, old.key, Origin("rep", OWNER, 0, T0), old.headers)])
    assert report.applied == 0 and [d.reason for d in report.dead_letters] == [Reason.UNVERIFIED_REROUTE]
    engine.process([RawMessage(value, b"cookie-9", Origin("in", OTHER, 42, T0))])  # the replay of the input
    (again,) = [r for r in out.records if r.topic == "rep"]
    engine.process([RawMessage(again.value, again.key, Origin("rep", OWNER, 1, T0), again.headers)])
    state = store.states["customer_id:c1"]
    assert (state.events, state.value["orders"]) == (1, 1), "applied once, as from its first position"


def test_another_deployments_reroute_is_skipped_and_counted_before_its_signature_is_checked():
    """F2: two deployments given one repartition topic each skip the other's reroutes."""
    blue, _, out = _engine()
    value = serde.dumps(event("chat", "c1", T0, event_id="e1", text="hi"))
    blue.process([RawMessage(value, b"session-1", Origin("in", OTHER, 42, T0))])
    (reroute,) = [r for r in out.records if r.topic == "rep"]
    assert dict(reroute.headers)["ls.origin.deployment"] == SETTINGS.key_prefix.encode()
    store = InMemoryStore()
    green_settings = SETTINGS.replace(key_prefix="green", repartition_secret="green-secret")
    green = Engine(green_settings, store, _Capture(), partition_counts={"in": PARTITIONS, "rep": PARTITIONS})
    before, ignored = _foreign(), _ignored()
    report = green.process([RawMessage(reroute.value, reroute.key, Origin("rep", OWNER, 0, T0), reroute.headers)])
    assert (report.applied, report.dead_letters, _foreign(), _ignored()) == (0, [], before + 1, ignored)
    assert "customer_id:c1" not in store.states


def test_a_reroute_without_a_deployment_header_is_still_restored():
    """Reroutes written before ``ls.origin.deployment`` existed keep their meaning (upgrade)."""
    engine, store, out = _engine()
    value = serde.dumps(event("chat", "c1", T0, event_id="e1", text="hi"))
    engine.process([RawMessage(value, b"session-1", Origin("in", OTHER, 42, T0))])
    (reroute,) = [r for r in out.records if r.topic == "rep"]
    headers = [(k, v) for k, v in reroute.headers if k != "ls.origin.deployment"]
    engine.process([RawMessage(reroute.value, reroute.key, Origin("rep", OWNER, 0, T0), headers)])
    assert store.states["customer_id:c1"].applied[f"in:{OTHER}"] == 42


def test_origin_headers_on_an_input_topic_are_never_read():
    engine, store, _ = _engine()
    value = serde.dumps(event("chat", "c1", T0, event_id="e1", text="hi"))
    engine.process([RawMessage(value, b"c1", Origin("in", OWNER, 7, T0), _forged_headers(value, None))])
    assert store.states["customer_id:c1"].applied == {f"in:{OWNER}": 7}


def test_the_secret_is_never_printed():
    assert "s3cret" not in repr(SETTINGS) and SETTINGS.redacted()["repartition_secret"] == "***"
