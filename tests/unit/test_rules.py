"""The first live rules: each raises, dedupes while active, and respects consent."""

from __future__ import annotations

from livesignals import serde
from livesignals.contract import decode
from livesignals.errors import Origin
from operators.profile import CustomerState
from operators.rules import DAY_MS, RuleConfig, evaluate
from operators.update import apply_event
from tests.helpers import T0, event

CFG = RuleConfig(repeat_contact_window_ms=DAY_MS, repeat_contact_threshold=3, high_value_spend=100.0)


def run(docs, state=None):
    state = state or CustomerState("customer_id:c1")
    results = []
    for i, doc in enumerate(docs):
        e = decode(serde.dumps(doc), Origin("in", 0, i), now_ms=T0 + 10**10)
        apply_event(state, e)
        results.append(evaluate(state, e, CFG))
    return state, results


def names(result):
    return [f.name for f in result.flags]


def test_repeat_contact_needs_three_contacts_within_the_window_and_is_raised_once():
    _, r = run([event("call", t=T0 + i * 1000) for i in range(4)])
    assert [names(x) for x in r] == [[], [], ["repeat_contact"], []]
    assert r[2].flags[0].evidence == ("e-c1-1767225602000-call",)


def test_a_call_after_a_social_post_carries_its_context():
    _, r = run([event("social", t=T0, topic="billing", outcome="unresolved"), event("call", t=T0 + 12 * 60_000)])
    (flag,) = r[1].flags
    assert flag.name == "context_carried"
    assert flag.reason == "social 12 min ago about billing (unresolved)"
    assert flag.evidence == ("e-c1-1767225600000-social", "e-c1-1767226320000-call")


def test_no_context_is_carried_from_the_same_channel_or_after_the_window():
    _, r = run([event("call", t=T0), event("call", t=T0 + 60_000), event("chat", t=T0 + 2 * DAY_MS)])
    assert all("context_carried" not in names(x) for x in r)


def test_contacts_spread_beyond_the_window_raise_nothing():
    _, r = run([event("call", t=T0 + i * DAY_MS) for i in range(4)])
    assert all(not x.flags for x in r)


def test_repeat_contact_is_raised_again_after_it_expires():
    _, r = run([event("call", t=T0 + i) for i in range(3)] + [event("call", t=T0 + 2 * DAY_MS + i) for i in range(3)])
    assert sum(names(x).count("repeat_contact") for x in r) == 2


def test_negative_survey_flags_and_a_high_value_customer_gets_a_retention_offer():
    _, r = run(
        [
            event("order", order_id="o1", amount=150.0),
            event("survey", t=T0 + 1, kind="nps", score=3),
        ]
    )
    assert names(r[1]) == ["negative_survey"]
    assert [t.action for t in r[1].triggers] == ["retention_offer"]


def test_a_positive_survey_raises_nothing():
    _, r = run([event("survey", kind="csat", score=5)])
    assert not r[0].flags and not r[0].triggers


def test_delivery_problem_triggers_a_proactive_notification_on_the_preferred_channel():
    _, r = run([event("sms", t=T0), event("delivery", t=T0 + 1, order_id="o1", status="delayed")])
    assert names(r[1]) == ["delivery_problem"]
    assert [(t.action, t.channel) for t in r[1].triggers] == [("proactive_notification", "sms")]


def test_withdrawn_marketing_consent_raises_a_flag():
    _, r = run([event("consent", purpose="marketing", granted=False)])
    assert names(r[0]) == ["consent_withdrawn"]


def test_signal_ids_are_deterministic():
    _, a = run([event("delivery", order_id="o1", status="failed")])
    _, b = run([event("delivery", order_id="o1", status="failed")])
    assert a[0].flags[0].flag_id == b[0].flags[0].flag_id
    assert a[0].triggers[0].trigger_id == b[0].triggers[0].trigger_id
