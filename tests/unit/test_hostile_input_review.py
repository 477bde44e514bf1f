"""Outside review of issue 9 (second round): inputs that stopped a partition or cost too much."""

from __future__ import annotations

import json

from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.settings import Settings
from models.lexicon import Lexicon
from operators.engine import Engine
from operators.profile360 import voc
from state.memory import InMemoryStore
from tests.fuzzing import ListPublisher
from tests.helpers import T0, event

DAY = 86_400_000


def feed(engine: Engine, offset: int, doc: dict) -> None:
    engine.process([RawMessage(json.dumps(doc).encode(), b"k", Origin("in", 0, offset, T0))])


def test_an_app_action_named_like_a_churn_feature_never_blocks_the_partition():
    """'events', 'orders', 'trend' ... as app actions made two churn features share a name."""
    engine = Engine(Settings(metrics_port=0), InMemoryStore(), ListPublisher(), clock=lambda: (T0 + 60 * DAY) / 1000)
    for i, action in enumerate(
        ("events", "orders", "contacts", "complaints", "errors", "spend", "active_days", "trend")
    ):
        feed(engine, i, event("app_event", customer="c1", t=T0 + i, action=action))
    feed(engine, 100, event("chat", customer="c2", t=T0 + 40 * DAY, text="hi"))  # the sweep labels c1's snapshots
    feed(engine, 101, event("cancellation", customer="c1", t=T0 + 41 * DAY))


def test_a_long_complaint_costs_linear_time_and_never_hides_the_complaint_count():
    text = " ".join(f"word{i}x" for i in range(5000))
    terms = voc.complaint_terms(text)
    assert len(terms) == voc.MAX_TERMS_PER_COMPLAINT
    assert next(iter(voc.contributions("billing", text))) == "complaints"


def test_a_huge_single_token_is_not_stemmed_letter_by_letter():
    lex = Lexicon.load(("fa",))
    assert lex._verb_stem("ب" * 20_000) is None


def test_a_campaign_action_named_last_is_counted_not_a_processing_error():
    pub = ListPublisher()
    engine = Engine(Settings(metrics_port=0), InMemoryStore(), pub, clock=lambda: T0 / 1000)
    for i in range(2):
        report = engine.process(
            [
                RawMessage(
                    json.dumps(event("campaign", customer="c1", t=T0 + i, action="last")).encode(),
                    b"k",
                    Origin("in", 0, i, T0),
                )
            ]
        )
        assert report.applied == 1 and not report.dead_letters
