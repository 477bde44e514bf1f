"""What reads the profile's stored forms (``operators.profile360.sizes``) still finds what it looks for.

``derived.product_to_offer`` is the newest product viewed in the last 7 days
that the customer does not hold: windows now keep only digests of the products
viewed (their sets are counted, and bounded in bytes); the products themselves
are the last 10 in ``activity.viewed``. A survey rating a contact whose event
id is longer than the profile stores whole still counts for that contact's
channel.
"""

from __future__ import annotations

from livesignals import serde
from livesignals.settings import Settings
from operators.engine import Engine
from state.memory import InMemoryStore
from tests.helpers import T0, event, raw

NOON = T0 + 12 * 3_600_000
DAY = 86_400_000


class _Capture:
    def __init__(self) -> None:
        self.records: list = []

    def publish(self, records) -> None:
        self.records.extend(records)


def _offered(tmp_path, docs) -> list:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[action]]\nname = "upsell"\npurpose = "service"\neligible_when = "derived.product_to_offer != null"\n'
        'item = "derived.product_to_offer"\ncooldown_hours = 0\n'
    )
    out = _Capture()
    wall = docs[-1]["event_time"] / 1000
    settings = Settings(metrics_port=0, rules_path=str(rules), quiet_hours="0-0", nba_policy="fixed")
    engine = Engine(settings, InMemoryStore(), out, clock=lambda: wall)
    engine.process(raw(docs))
    return [serde.loads(r.value).get("item") for r in out.records if r.topic == settings.triggers_topic]


def test_the_newest_product_viewed_not_held_is_offered(tmp_path):
    docs = [
        event("order", t=NOON, order_id="o1", amount=10.0, items=["p-held"]),
        event("web_event", t=NOON + 1000, action="product_view", product_id="p-old"),
        event("web_event", t=NOON + 2000, action="product_view", product_id="p-new"),
        event("web_event", t=NOON + 3000, action="product_view", product_id="p-held"),
        event("chat", t=NOON + 4000, text="hello", direction="inbound"),
    ]
    assert _offered(tmp_path, docs) == ["p-new"]


def test_a_product_viewed_more_than_7_days_ago_is_not_offered(tmp_path):
    docs = [
        event("web_event", t=NOON, action="product_view", product_id="p-old"),
        event("chat", t=NOON + 8 * DAY, text="hello", direction="inbound"),
    ]
    assert _offered(tmp_path, docs) == []


def test_a_survey_rating_a_contact_with_a_long_event_id_counts_for_that_contacts_channel():
    """The profile stores event ids of more than 64 bytes in their stored form; the rating still finds it."""
    from livesignals.contract import decode
    from livesignals.errors import Origin
    from operators.profile360 import kpis
    from operators.profile360.profile import CustomerState
    from operators.profile360.update import apply_event

    long_id = "call-" + "é" * 80  # 165 bytes
    state = CustomerState("customer_id:c1")
    call = event("call", t=NOON, event_id=long_id, text="hi", direction="inbound", outcome="resolved")
    apply_event(state, decode(serde.dumps(call), Origin("in", 0, 0), now_ms=NOON))
    survey = event("survey", t=NOON + 1000, kind="csat", score=5, rates_event_id=long_id)
    out = kpis.contributions(state, decode(serde.dumps(survey), Origin("in", 0, 1), now_ms=NOON))
    assert out.get("phone|csat_n") == 1, out


def test_repeat_contacts_on_a_long_topic_are_counted_on_its_stored_form():
    from livesignals.contract import decode
    from livesignals.errors import Origin
    from operators.profile360.profile import CustomerState
    from operators.profile360.update import apply_event
    from operators.rules.context import ContextWindows, context

    topic = "billing-" + "ü" * 60  # 128 bytes: stored as prefix ~ digest
    state = CustomerState("customer_id:c1")
    for i in range(3):
        doc = event("chat", t=NOON + i * 1000, text="hi", direction="inbound", topic=topic)
        e = decode(serde.dumps(doc), Origin("in", 0, i), now_ms=NOON + DAY)
        apply_event(state, e)
    ctx = context(state, e, ContextWindows(), NOON + 2000)
    assert ctx["derived"].get("same_topic_contacts") == 3
