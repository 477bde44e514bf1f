"""Next-best action: arbitration, the decision log, learning from responses, off-policy evaluation."""

from __future__ import annotations

import dataclasses
import pickle
import random
from typing import Any

import fastjsonschema
import pytest

from app.policy_eval import evaluate_policies
from livesignals import serde
from livesignals.contract import decode, load_schema
from livesignals.errors import Origin
from livesignals.settings import Settings
from models.propensity import ResponseModel
from operators.decisions.actions import Arbiter, Candidate, _candidate
from operators.engine import Engine
from operators.profile360.profile import CustomerState
from operators.profile360.views import future
from operators.rules.context import context
from operators.rules.rulebook import Rulebook
from operators.scoring.features import response_features
from state.memory import InMemoryStore
from tests.helpers import T0, event, raw

NOON = T0 + 12 * 3_600_000  # outside the default quiet hours
HOUR = 3_600_000
BOOK = Rulebook.parse("""
[[action]]
name = "big"
eligible_when = "true"
value = "10"

[[action]]
name = "small"
eligible_when = "true"
value = "5"

[[action]]
name = "callback"
purpose = "service"
eligible_when = "value.spend >= 100"
value = "1"
""")


def decide(arbiter, state=None, offset=0, model=None):
    state = state or CustomerState("customer_id:c1")
    e = decode(serde.dumps(event("call", t=NOON)), Origin("in", 0, offset), now_ms=NOON + 1)
    return arbiter.decide(state, e, context(state, e), BOOK.actions, model, dict)


def test_learned_policy_logs_each_candidates_probability_and_explores_at_epsilon():
    decision, _ = decide(Arbiter("learned", epsilon=0.2))
    assert [(c.action, c.probability) for c in decision.ranked] == [("big", pytest.approx(0.9)), ("small", 0.1)]
    chosen = [decide(Arbiter("learned", epsilon=0.2), offset=i)[0].chosen.action for i in range(3000)]
    assert chosen.count("small") / len(chosen) == pytest.approx(0.1, abs=0.02)
    assert decide(Arbiter("learned", 0.2), offset=5)[0] == decide(Arbiter("learned", 0.2), offset=5)[0], "replay"


def test_fixed_and_random_baselines():
    fixed, _ = decide(Arbiter("fixed"))
    assert fixed.chosen.action == "big" and [c.probability for c in fixed.ranked] == [1.0, 0.0]
    rand, _ = decide(Arbiter("random"))
    assert [c.probability for c in rand.ranked] == [0.5, 0.5]


def test_consent_excludes_actions_of_its_purpose_with_a_reason_and_cooldown_holds_an_action_back():
    state = CustomerState("customer_id:c1", consent={"marketing": False}, value={"spend": 150.0})
    decision, excluded = decide(Arbiter(), state)
    assert excluded == [("big", "no_marketing_consent"), ("small", "no_marketing_consent")]
    assert [c.action for c in decision.ranked] == ["callback"]
    state = CustomerState("customer_id:c1", history={"proposed": {"big": NOON - HOUR}})
    assert [c.action for c in decide(Arbiter(), state)[0].ranked] == ["small"]


def test_preferred_channel_is_the_customers_most_used_contact_channel_and_a_named_channel_stays():
    book = Rulebook.parse("""
[[action]]
name = "offer"
eligible_when = "true"
value = "2"

[[action]]
name = "callback"
eligible_when = "true"
value = "1"
channel = "phone"
""")
    state = CustomerState("customer_id:c1")
    e = decode(serde.dumps(event("call", t=NOON)), Origin("in", 0, 0), now_ms=NOON + 1)
    first, _ = Arbiter("fixed").decide(state, e, context(state, e), book.actions, None, dict)
    assert first is not None
    assert {c.action: c.channel for c in first.ranked} == {"offer": "email", "callback": "phone"}, "none yet: email"
    state.history["by_channel"] = {"web": 9, "chat": 3, "sms": 1}
    later, _ = Arbiter("fixed").decide(state, e, context(state, e), book.actions, None, dict)
    assert later is not None
    assert {c.action: c.channel for c in later.ranked} == {"offer": "chat", "callback": "phone"}, "web is no contact"


def test_the_arbiter_pickles():
    arbiter = Arbiter("learned", 0.3, 2, seed=9)
    assert decide(pickle.loads(pickle.dumps(arbiter)))[0] == decide(arbiter)[0]


class Capture:
    def __init__(self) -> None:
        self.records: list = []
        self.offset = 0

    def publish(self, records) -> None:
        self.records.extend(records)

    def docs(self, topic):
        return [serde.loads(r.value) for r in self.records if r.topic == topic]


def run(docs, engine=None):
    """Each event in its own batch, at the next offsets of partition 0."""
    if engine is None:
        clock = lambda: (NOON + 30 * 86_400_000) / 1000  # noqa: E731
        engine = Engine(Settings(metrics_port=0, policy_clock="stream"), InMemoryStore(), Capture(), clock=clock)
    capture = engine.publisher
    for message in raw(docs, start=capture.offset):
        engine.process([message])
    capture.offset += len(docs)
    return engine, capture


def notification_sent():
    """A customer whose delayed delivery got a proactive notification: the engine, its outputs, the trigger."""
    engine, out = run([
        event("order", t=NOON, order_id="o1", amount=80.0),
        event("delivery", t=NOON + HOUR, order_id="o1", status="delayed"),
    ])  # fmt: skip
    (trigger,) = out.docs(engine.settings.triggers_topic)
    return engine, out, trigger


def test_a_delivery_problem_sends_a_notification_whose_response_teaches_the_offers_model():
    engine, out, trigger = notification_sent()
    (decision,) = out.docs(engine.settings.decisions_topic)
    fastjsonschema.compile(load_schema("trigger-v1.json"))(trigger)
    fastjsonschema.compile(load_schema("decision-v1.json"))(decision)
    assert trigger["action"] == "proactive_notification" and trigger["purpose"] == "service"
    assert trigger["trigger_id"] == decision["decision_id"] and decision["outcome"] == "sent"
    assert decision["probability"] > 0 and decision["features"], "logged for off-policy evaluation"
    nba = future(engine.store.states["customer_id:c1"])["next_best_actions"]
    assert nba["ranked"][0]["action"] == "proactive_notification" and nba["ranked"][0]["reason"], "shown in the 360"

    answer = event("offer_response", t=NOON + 2 * HOUR, response="accepted", decision_id=trigger["trigger_id"])
    run([answer], engine)
    outcome = out.docs(engine.settings.decisions_topic)[-1]
    assert outcome == {**outcome, "kind": "outcome", "decision_id": trigger["trigger_id"], "response": "accepted"}
    models = engine.learner.models
    assert models.model("offers").labels["proactive_notification"] == [1, 1]
    assert engine.store.states["customer_id:c1"].predictions["offers_pending"] == []


def test_an_offer_left_unanswered_past_its_expiry_is_learned_as_expired():
    engine, out = run([
        event("order", t=NOON, order_id="o1", amount=80.0),
        event("delivery", t=NOON + HOUR, order_id="o1", status="failed"),
        event("web_event", t=NOON + 3 * 86_400_000, action="page_view"),
    ])  # fmt: skip
    outcomes = [d for d in out.docs(engine.settings.decisions_topic) if d["kind"] == "outcome"]
    assert [o["response"] for o in outcomes] == ["expired"]
    assert engine.learner.models.model("offers").labels["proactive_notification"] == [0, 1]


def test_an_agents_verdict_on_a_flag_teaches_flag_relevance_which_later_flags_carry():
    engine, out = run([event("delivery", t=NOON, order_id="o1", status="delayed")])
    (flag,) = [f for f in out.docs(engine.settings.flags_topic) if f["flag"] == "delivery_problem"]
    assert flag["relevance"] is None, "no verdict yet"
    run([
        event("agent_feedback", t=NOON + HOUR, target_id=flag["flag_id"], kind="flag", label="not_relevant"),
        event("delivery", t=NOON + 2 * HOUR, order_id="o1", status="delivered"),
        event("delivery", t=NOON + 3 * HOUR, order_id="o2", status="delayed"),
    ], engine)  # fmt: skip
    again = [
        f for f in out.docs(engine.settings.flags_topic) if f["flag"] == "delivery_problem" and f["state"] == "raised"
    ]
    assert len(again) == 2 and again[1]["relevance"] is not None and again[1]["relevance"] < 0.5


def synthetic_log(n=4000, epsilon=0.2, seed=1):
    """Decisions between two actions with known acceptance rates, logged by an epsilon-greedy policy."""
    rng, records = random.Random(seed), []
    for i in range(n):
        segment = rng.random() < 0.5
        accept = {"a": 0.3 if segment else 0.1, "b": 0.05 if segment else 0.4}
        greedy = "a"  # the live policy always prefers a
        probs = {greedy: 1 - epsilon + epsilon / 2, "b": epsilon / 2}
        chosen = greedy if rng.random() < probs[greedy] else "b"
        cands = [{"action": a, "score": 1.0 if a == "a" else 0.5, "propensity": accept[a], "value": 1.0,
                  "weight": 1.0, "probability": probs[a]} for a in ("a", "b")]  # fmt: skip
        records.append({"kind": "decision", "decision_id": f"d{i}", "outcome": "sent", "chosen": chosen,
                        "probability": probs[chosen], "candidates": cands, "features": {}})  # fmt: skip
        if rng.random() < accept[chosen]:
            records.append({"kind": "outcome", "decision_id": f"d{i}", "response": "accepted"})
    return records


def test_off_policy_estimates_recover_what_other_policies_would_have_achieved():
    rows = {r["policy"]: r for r in evaluate_policies(synthetic_log(), ["logged", "propensity", "random"])}
    truth = {"propensity": (0.3 + 0.4) / 2, "random": (0.3 + 0.1 + 0.05 + 0.4) / 4}
    for policy, value in truth.items():
        assert abs(rows[policy]["ips"] - value) < 3 * rows[policy]["ips_se"] + 0.01, rows[policy]
    assert rows["propensity"]["ips"] > rows["logged"]["ips"], "the better policy is seen to be better"
    assert rows["logged"]["ess"] == rows["logged"]["decisions"]


def test_a_customers_own_record_with_an_action_drives_its_propensity_and_a_challenger_can_be_scored_offline(tmp_path):
    model = ResponseModel(learning_rate=0.2)
    for i in range(400):
        liked = i % 2 == 0
        model.learn_one("upsell", response_features([2, 2 if liked else 0]), liked)
    assert (
        model.predict_one("upsell", response_features([2, 2]))
        > 0.8
        > 0.2
        > model.predict_one("upsell", response_features([2, 0]))
    )
    path = tmp_path / "challenger.pkl"
    path.write_bytes(pickle.dumps(model))
    log = []
    for i, liked in enumerate([True, False] * 50):
        cands = [{"action": a, "score": 1.0, "propensity": 0.5, "value": 1.0, "weight": 1.0, "probability": 0.5}
                 for a in ("upsell", "cross_sell")]  # fmt: skip
        chosen = ("upsell", "cross_sell")[i % 4 // 2]
        log.append({"kind": "decision", "decision_id": f"d{i}", "outcome": "sent", "chosen": chosen,
                    "probability": 0.5, "candidates": cands, "features": {},
                    "past": {"upsell": [2, 2 if liked else 0], "cross_sell": [0, 0]}})  # fmt: skip
        if chosen == "upsell" and liked:
            log.append({"kind": "outcome", "decision_id": f"d{i}", "response": "accepted"})
    (row,) = evaluate_policies(log, [f"model:{path}"])
    assert row["ips"] == pytest.approx(0.5), "the challenger offers upsell to those who liked it: all accept"


def test_a_cross_sell_names_a_product_the_customer_viewed_and_does_not_hold():
    engine, out = run([
        event("order", t=NOON, order_id="o1", amount=80.0, items=["p1"]),
        event("web_event", t=NOON + 60_000, action="product_view", product_id="p2"),
        event("web_event", t=NOON + 120_000, action="product_view", product_id="p1"),
        event("chat", t=NOON + 180_000, text="a question about my account"),
    ])  # fmt: skip
    (trigger,) = out.docs(engine.settings.triggers_topic)
    assert (trigger["action"], trigger["item"]) == ("cross_sell", "p2")
    assert trigger["reasons"] == ["viewed p2, not yet bought (1 orders so far)"]


def test_an_agents_not_relevant_on_a_trigger_is_a_negative_and_relevant_leaves_the_offer_waiting():
    engine, out, trigger = notification_sent()
    feedback = {"target_id": trigger["trigger_id"], "kind": "action"}
    run([event("agent_feedback", t=NOON + 2 * HOUR, label="relevant", **feedback)], engine)
    assert engine.store.states["customer_id:c1"].predictions["offers_pending"], "still awaiting the answer"
    run([event("agent_feedback", t=NOON + 3 * HOUR, label="not_relevant", **feedback)], engine)
    outcome = out.docs(engine.settings.decisions_topic)[-1]
    assert (outcome["kind"], outcome["response"]) == ("outcome", "not_relevant")
    assert engine.learner.models.model("offers").labels["proactive_notification"] == [0, 1]


def test_a_ranked_candidate_keeps_every_field_but_its_probability():
    """The arbiter builds each ranked candidate from its terms and its probability: every other field,
    whatever fields ``Candidate`` has (each given a value of its own here), is the term in its place."""
    values: dict[str, Any] = {
        f.name: f"v{i}" if "str" in str(f.type) else float(i + 1) for i, f in enumerate(dataclasses.fields(Candidate))
    }
    c = Candidate(**values)
    terms = tuple(values[f.name] for f in dataclasses.fields(Candidate) if f.name != "probability")
    assert _candidate(terms, 0.7) == dataclasses.replace(c, probability=0.7)
