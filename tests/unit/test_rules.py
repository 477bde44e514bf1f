"""The first live rules: each raises, dedupes while active, and respects consent."""

from __future__ import annotations

from livesignals import serde
from livesignals.contract import decode
from livesignals.errors import Origin
from operators.profile import CustomerState, apply_event
from operators.rules import DAY_MS, RuleConfig, evaluate
from tests.helpers import T0, event

CFG = RuleConfig(
    repeat_contact_window_ms=DAY_MS, repeat_contact_threshold=3, high_value_spend=100.0
)


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
    _, r = run(
        [
            event("call", t=T0),
            event("chat", t=T0 + 1000),
            event("email", t=T0 + 2000),
            event("call", t=T0 + 3000),
        ]
    )
    assert [names(x) for x in r] == [[], [], ["repeat_contact"], []]
    assert r[2].flags[0].evidence == ("e-c1-1767225602000-email",)


def test_contacts_spread_beyond_the_window_raise_nothing():
    _, r = run([event("call", t=T0 + i * DAY_MS) for i in range(4)])
    assert all(not x.flags for x in r)


def test_repeat_contact_is_raised_again_after_it_expires():
    _, r = run(
        [event("call", t=T0 + i) for i in range(3)]
        + [event("call", t=T0 + 2 * DAY_MS + i) for i in range(3)]
    )
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


def test_withdrawn_marketing_consent_suppresses_triggers_with_a_reason():
    _, r = run(
        [
            event("consent", purpose="marketing", granted=False),
            event("delivery", t=T0 + 1, order_id="o1", status="failed"),
        ]
    )
    assert names(r[0]) == ["consent_withdrawn"]
    assert r[1].triggers == []
    assert [(t.action, why) for t, why in r[1].suppressed] == [
        ("proactive_notification", "no_marketing_consent")
    ]


def test_signal_ids_are_deterministic():
    _, a = run([event("delivery", order_id="o1", status="failed")])
    _, b = run([event("delivery", order_id="o1", status="failed")])
    assert a[0].flags[0].flag_id == b[0].flags[0].flag_id
    assert a[0].triggers[0].trigger_id == b[0].triggers[0].trigger_id
