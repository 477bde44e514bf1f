"""Dependency-aware flag evaluation (issue 16) gives exactly the flags and triggers of running every
rule on every event: a long simulated stream (several customers, 4 partitions, late and duplicated
events, more rules than a profile holds flags, models on, restarts) through both paths."""

from __future__ import annotations

import dataclasses
import importlib.resources
import random
import zlib
from pathlib import Path

from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import RawMessage, primary_key
from livesignals.errors import Origin
from livesignals.settings import Settings
from operators.engine import Engine
from operators.profile360.profile import CustomerState
from operators.rules import dependencies
from operators.rules.rulebook import Rulebook
from operators.scoring import online
from state.memory import InMemoryStore
from tests.fuzzing import ListPublisher
from tests.helpers import T0, event

MINUTE = 60_000
PARTITIONS = 4
SEVERITIES = ("info", "warning", "critical")


def test_tracked_inputs_follow_the_scoring_rooms_constants():
    assert dependencies._FRAUD_TYPES == online.FRAUD_TYPES
    assert dependencies._BROWSING == online.BROWSING


def test_inputs_of_the_shipped_rules():
    book = Rulebook.load(_catalogue())
    tracked = {rule.name: rule.inputs for rule in book.flags if rule.inputs is not None}
    assert tracked == {
        "frustrated": {"predictions.mood"}, "high_churn_risk": {"predictions.churn"},
        "delivery_problem": {"activity.deliveries"}, "likely_to_negotiate": {"history.offers", "predictions.churn"},
        "vip": {"value"}, "consent_withdrawn": {"consent"}, "fraud_risk": {"predictions.fraud"},
        "case_open_too_long": {"activity.open_cases"},
    }  # fmt: skip
    assert dependencies.inputs_of("w1h.errors >= 1") is None and dependencies.inputs_of("event.inbound") is None
    assert (
        dependencies.inputs_of("flags.vip != null") is None and dependencies.inputs_of("derived.cart_abandoned") is None
    )


def test_a_stable_rule_runs_again_only_when_an_input_changes(tmp_path):
    calls = []
    path = tmp_path / "rules.toml"
    path.write_text('[[flag]]\nname = "big"\nraise_when = "value.spend >= 100"\nclear_when = "value.spend < 50"\n')
    e = _engine(path)
    rule = e.rulebook.rulebook.flags[0]

    def raise_when(ctx):
        calls.append(1)
        return rule.raise_when(ctx)

    counted = dataclasses.replace(rule, raise_when=raise_when)
    e.rulebook.rulebook = dataclasses.replace(e.rulebook.rulebook, flags=(counted,))
    views = [event("web_event", "c1", T0 + i * MINUTE, event_id=f"v{i}", action="page_view") for i in range(5)]
    order = event("order", "c1", T0 + 6 * MINUTE, event_id="o", order_id="o1", amount=150.0)
    e.process(_raw([*views, order], PARTITIONS))
    assert len(calls) == 2  # the first event (no memo yet) and the order (it changes value)
    assert "big" in e.store.load(["customer_id:c1"])["customer_id:c1"].flags


def test_an_open_case_ages_on_every_event_and_no_case_is_read_again_only_at_a_ticket(tmp_path):
    """``derived.oldest_case_days`` reads the present: while a case is open every event runs its rule (a page
    view three days on raises ``case_open_too_long``); with none open, only a ticket can change it."""
    calls = []
    path = tmp_path / "rules.toml"
    path.write_text('[[flag]]\nname = "old_case"\nraise_when = "derived.oldest_case_days >= 3"\n'
                    'clear_when = "derived.oldest_case_days < 3"\n')  # fmt: skip
    e = _engine(path)
    rule = e.rulebook.rulebook.flags[0]
    assert rule.inputs == {"activity.open_cases"}

    def raise_when(ctx):
        calls.append(ctx["event"]["time"])
        return rule.raise_when(ctx)

    counted = dataclasses.replace(rule, raise_when=raise_when)
    e.rulebook.rulebook = dataclasses.replace(e.rulebook.rulebook, flags=(counted,))
    day = 24 * 60 * MINUTE

    def view(i: int, t: int) -> dict:
        return event("web_event", "c1", t, event_id=f"v{i}", action="page_view")

    docs = [view(0, T0), view(1, T0 + MINUTE),
            event("ticket", "c1", T0 + 2 * MINUTE, event_id="open", case_id="k1", status="opened", topic="refund"),
            view(2, T0 + day), view(3, T0 + 3 * day + 3 * MINUTE),
            event("ticket", "c1", T0 + 3 * day + 4 * MINUTE, event_id="close", case_id="k1", status="resolved"),
            view(4, T0 + 4 * day), view(5, T0 + 5 * day)]  # fmt: skip
    report = e.process(_raw(docs, PARTITIONS))
    ran = [d["event_id"] for d in docs if d["event_time"] in calls]
    assert ran == ["v0", "open", "v2", "v3", "v4"], ran  # raised at v3, cleared at the close, stable from v4
    assert [(f.name, f.cleared) for f in report.flags] == [("old_case", False), ("old_case", True)]


def test_a_skipped_rule_keeps_its_raised_flag_as_it_was(tmp_path):
    """A raised flag whose rule is skipped (nothing it reads changed) stays exactly as raised: same id,
    times and evidence, nothing published for it; its clear condition runs again when an input changes."""
    path = tmp_path / "rules.toml"
    path.write_text('[[flag]]\nname = "big"\nraise_when = "value.spend >= 100"\nclear_when = "value.spend < 50"\n')
    e = _engine(path)
    rule, clears = e.rulebook.rulebook.flags[0], []
    original = rule.clear_when
    assert original is not None

    def clear_when(ctx):
        clears.append(ctx["event"]["type"])
        return original(ctx)

    counted = dataclasses.replace(rule, clear_when=clear_when)
    e.rulebook.rulebook = dataclasses.replace(e.rulebook.rulebook, flags=(counted,))
    order = event("order", "c1", T0, event_id="o", order_id="o1", amount=150.0)
    views = [event("web_event", "c1", T0 + i * MINUTE, event_id=f"v{i}", action="page_view") for i in range(1, 9)]
    tier = event("loyalty", "c1", T0 + 10 * MINUTE, event_id="l", tier="silver")
    e.process(_raw([order, *views, tier], PARTITIONS))
    assert clears == ["web_event", "loyalty"]  # the first view (the raise changed the flag), no other view
    published = [serde.loads(r.value) for r in e.publisher.records if r.topic == "ls.flags"]  # type: ignore[attr-defined]
    assert [(f["flag"], f["state"], f["evidence"][0]) for f in published] == [("big", "raised", "o")]
    kept = e.store.load(["customer_id:c1"])["customer_id:c1"].flags["big"]
    assert kept["id"] == published[0]["flag_id"] and kept["raised_at"] == published[0]["raised_at"]
    assert kept["expires_at"] == published[0]["expires_at"] and kept["evidence"] == ["o"]


def test_fraud_score_is_read_again_at_the_time_of_the_fraud_score_and_right_after(tmp_path):
    """``derived.fraud_score`` is the score of the event reading it (null at any other time): a rule on it runs
    again on an event at the score's time (a late or same-millisecond event) and on the event after one, and
    gives what running every rule gives."""
    path = tmp_path / "rules.toml"
    path.write_text('[[flag]]\nname = "scored"\nraise_when = "derived.fraud_score != null"\n'
                    'clear_when = "derived.fraud_score == null"\n')  # fmt: skip
    engines = _engine(path), _engine(path)
    engines[1].rules_dependency_aware = False
    for e in engines:
        e.learner.models.model("fraud").seen = 10**6  # warm: its scores are read
    assert e.rulebook.rulebook.flags[0].inputs == {"predictions.fraud"}
    docs = [
        event("web_event", "c1", T0, event_id="v0", action="page_view"),
        event("order", "c1", T0 + MINUTE, event_id="o", order_id="o1", amount=15.0),  # scored: raised
        event("web_event", "c1", T0 + MINUTE, event_id="v1", action="page_view"),  # its time: still scored
        event("web_event", "c1", T0 + 2 * MINUTE, event_id="v2", action="page_view"),  # after it: cleared
        event("web_event", "c1", T0 + 3 * MINUTE, event_id="v3", action="page_view"),  # skipped
        event("web_event", "c1", T0 + MINUTE, event_id="v4", action="page_view"),  # its time again: raised
    ]
    for e in engines:
        e.process(_raw(docs, PARTITIONS))
    aware, every = (e.publisher.records for e in engines)  # type: ignore[attr-defined]
    assert [(r.topic, r.key, r.value) for r in aware] == [(r.topic, r.key, r.value) for r in every]
    published = [serde.loads(r.value) for r in aware if r.topic == "ls.flags"]
    assert [(f["state"], f["evidence"][0]) for f in published] == [("raised", "o"), ("cleared", "v2"),
                                                                   ("raised", "v4")]  # fmt: skip


def test_a_fraud_score_kept_from_before_is_read_at_its_time_with_the_models_off(tmp_path):
    """With the models off no event is scored for fraud, but a profile keeps the last score it had: an event
    at that score's time reads it as ``derived.fraud_score``, as running every rule does."""
    path = tmp_path / "rules.toml"
    path.write_text('[[flag]]\nname = "fraud_risk"\nraise_when = "derived.fraud_score >= 0.99"\n')
    engines = _engine(path, models=False), _engine(path, models=False)
    engines[1].rules_dependency_aware = False
    first = [event("web_event", "c1", T0, event_id="v0", action="page_view")]
    again = [event("web_event", "c1", T0 + MINUTE, event_id="v1", action="page_view"),
             event("web_event", "c1", T0 + 2 * MINUTE, event_id="v2", action="page_view")]  # fmt: skip
    for e in engines:
        e.process(_raw(first, PARTITIONS))
        state = e.store.load(["customer_id:c1"])["customer_id:c1"]
        state.predictions["fraud"] = {"score": 0.995, "t": T0 + 2 * MINUTE, "warm": True}  # kept from before
        e.process(_raw(again, PARTITIONS, offset=1))
    aware, every = (e.publisher.records for e in engines)  # type: ignore[attr-defined]
    assert [(r.topic, r.key, r.value) for r in aware] == [(r.topic, r.key, r.value) for r in every]
    published = [serde.loads(r.value) for r in aware if r.topic == "ls.flags"]
    assert [(f["flag"], f["evidence"][0]) for f in published] == [("fraud_risk", "v2")]


def test_every_flag_and_trigger_is_the_same_as_running_every_rule(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(_catalogue().read_text() + _extra_rules())
    docs = _stream(customers=30, events=3000, seed=5)
    messages = _raw(docs, PARTITIONS)
    batches = _batches(len(messages), random.Random(9))
    aware, every = _engine(path), _engine(path)
    every.rules_dependency_aware = False
    for n, (start, end) in enumerate(batches):
        aware.process(messages[start:end])
        every.process(messages[start:end])
        if n % 7 == 3:  # a restart of the dependency-aware engine: states reloaded, memos gone
            store = aware.store
            assert isinstance(store, InMemoryStore)
            store.states = {k: CustomerState.from_bytes(k, s.to_bytes()) for k, s in store.states.items()}
    out_aware, out_every = aware.publisher.records, every.publisher.records  # type: ignore[attr-defined]
    kinds = {r.topic for r in out_every}
    assert len(out_every) > 100 and {"ls.flags", "ls.triggers"} <= kinds, kinds
    assert [(r.topic, r.key, r.value) for r in out_aware] == [(r.topic, r.key, r.value) for r in out_every]
    states_aware, states_every = aware.store.states, every.store.states  # type: ignore[attr-defined]
    assert {k: s.to_bytes() for k, s in states_aware.items()} == {k: s.to_bytes() for k, s in states_every.items()}


def _engine(rules: Path, models: bool = True) -> Engine:
    settings = Settings(metrics_port=0).replace(rules_path=str(rules), policy_clock="stream", models_enabled=models)
    return Engine(settings, InMemoryStore(), ListPublisher(), clock=lambda: 4e12)


def _catalogue() -> Path:
    return Path(str(importlib.resources.files("livesignals").joinpath("rules", "catalogue.toml")))


def _extra_rules() -> str:
    """More flag rules than a profile holds (32), most on tracked inputs: hold-backs and displacements."""
    out = []
    for k in range(1, 25):
        out.append(f'[[flag]]\nname = "spend_{k}"\nseverity = "{SEVERITIES[k % 3]}"\nraise_when = "value.spend >= {k * 25}"'
                   f'\nclear_when = "value.spend < {k * 20}"\nttl_hours = {1 + k % 5}\n')  # fmt: skip
    for name, raise_when, clear_when in (
        ("no_marketing", "consent.marketing == false", "consent.marketing"),
        ("two_deliveries_late", "derived.deliveries_in_trouble >= 2", "derived.deliveries_in_trouble == 0"),
        ("offers_refused", "history.offers.rejected >= 1", "history.offers.accepted >= 1"),
        ("moody", "predictions.mood.avg < -0.1", "predictions.mood.avg > 0.1"),
        ("churny", "predictions.churn.p > 0.3", "predictions.churn.p < 0.2"),
        ("odd_order", "predictions.fraud.score > 0.5", "predictions.fraud.score < 0.2"),
        ("gold", "value.loyalty.tier == 'gold'", "value.loyalty.tier != 'gold'"),
        ("case_hours", "derived.oldest_case_days >= 0.1", "derived.oldest_case_days < 0.1"),  # ages within the stream
        ("two_cases", "activity.open_cases.c2 != null", "activity.open_cases.c2 == null"),
    ):
        out.append(f'[[flag]]\nname = "{name}"\nseverity = "critical"\nraise_when = "{raise_when}"\n'
                   f'clear_when = "{clear_when}"\nttl_hours = 3\n')  # fmt: skip
    return "\n" + "\n".join(out)


def _stream(customers: int, events: int, seed: int) -> list[dict]:
    """The simulator's mix over ~2 days; 3 % of events again later (duplicates), 3 % moved hours later (late)."""
    sim = Simulator(SimulatorConfig(customers=customers, seed=seed, start_ms=T0, step_ms=MINUTE))
    docs = [doc for doc, _ in sim.stream(events)]
    rng = random.Random(seed)
    for _ in range(events * 3 // 100):
        docs.insert(rng.randrange(len(docs)), dict(rng.choice(docs)))  # the same event again, anywhere
    for _ in range(events * 3 // 100):
        i = rng.randrange(len(docs) - 400)
        docs.insert(i + 300, docs.pop(i))  # ~5 hours after its time: late for its customer
    return docs


def _raw(docs: list[dict], partitions: int, offset: int = 0) -> list[RawMessage]:
    offsets = [offset] * partitions
    out = []
    for doc in docs:
        p = zlib.crc32(primary_key(doc["customer"]).encode()) % partitions
        out.append(RawMessage(serde.dumps(doc), None, Origin("in", p, offsets[p], T0)))
        offsets[p] += 1
    return out


def _batches(total: int, rng: random.Random) -> list[tuple[int, int]]:
    out, start = [], 0
    while start < total:
        end = min(total, start + rng.choice((1, 7, 50, 200, 500)))
        out.append((start, end))
        start = end
    return out


def test_a_tracked_rule_that_failed_runs_again_on_the_next_event(tmp_path):
    """A rule failure (counted, taken as false) leaves no memo entry: the rule runs on the next event even
    when that changes none of its inputs (Rulebook.evaluate reads the failure tally around it)."""
    from operators.rules.failures import counted_errors

    path = tmp_path / "rules.toml"
    path.write_text('[[flag]]\nname = "big"\nraise_when = "value.spend >= 100"\n')
    e = _engine(path)
    rule, calls = e.rulebook.rulebook.flags[0], []
    on_error = counted_errors("flag", "big", "raise_when")

    def raise_when(ctx):
        calls.append(1)
        if len(calls) == 1:
            on_error(ValueError("as a condition that raised"))
            return None
        return rule.raise_when(ctx)

    e.rulebook.rulebook = dataclasses.replace(
        e.rulebook.rulebook, flags=(dataclasses.replace(rule, raise_when=raise_when),)
    )
    views = [event("web_event", "c1", T0 + i * MINUTE, event_id=f"v{i}", action="page_view") for i in range(4)]
    e.process(_raw(views, PARTITIONS))
    assert len(calls) == 2  # failed on the first view, ran (stable) on the second, skipped after
