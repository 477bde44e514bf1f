"""Scripted journeys that raise and then clear each flag of the shipped catalogue.

Shared by the in-memory catalogue test (``tests/unit/test_catalogue.py``) and
the same test through real Kafka and Redis (``tests/integration/test_flag_catalogue.py``).
One customer per flag; every journey starts at ``t0`` and ends with the
event that clears the flag (by its ``clear_when``, or by the first event
after its TTL).

The model-driven flags need models that already learned: :func:`trained_models`
returns a model set whose churn model learned that a negative survey answer
means churn, and whose anomaly model has seen hundreds of ordinary orders.
"""

from __future__ import annotations

import math
import random
from typing import Any

from models.registry import ModelSet
from operators.scoring.features import CHURN_FEATURES
from tests.helpers import event

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR


def trained_models() -> ModelSet:
    """A model set as it would be after weeks of labels (deterministic)."""
    models = ModelSet.from_config()
    churn = models.model("churn")
    for i in range(600):
        y = i % 2 == 0
        x = dict.fromkeys(CHURN_FEATURES, 0.0)
        x["negative_surveys"] = 1.0 if y else 0.0
        churn.learn_one(x, y)
    fraud, rng = models.model("fraud"), random.Random(7)
    for _ in range(4 * fraud.window_size):
        fraud.learn_one({
            "amount": math.exp(rng.gauss(4.0, 0.8)), "amount_ratio": math.exp(rng.gauss(0.0, 0.3)),
            "orders_1h": float(rng.choice([1, 1, 1, 2])), "return_ratio": rng.random() * 0.2,
            "new_identity_1h": float(rng.random() < 0.02), "account_change": float(rng.random() < 0.1),
            "hour_of_day": rng.random(),
        })  # fmt: skip
    return models


def journeys(t0: int) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Flag name -> (events that raise it, events that then clear it), one customer per flag."""

    def ev(flag: str, etype: str, dt: int, **payload: Any) -> dict[str, Any]:
        doc = event(etype, f"c-{flag}", t0 + dt, **payload)
        doc["event_id"] = f"{flag}-{etype}-{dt}"
        return doc

    def orders(flag: str, n: int, amount: float = 50.0) -> list[dict[str, Any]]:
        return [ev(flag, "order", i * MIN, order_id=f"o{i}", amount=amount) for i in range(n)]

    web = "web_event"
    return {
        "fraud_risk": (
            [*orders("fraud_risk", 3), ev("fraud_risk", "order", 10 * MIN, order_id="big", amount=9000.0)],
            [ev("fraud_risk", web, 25 * HOUR, action="page_view")],
        ),
        "frustrated": (
            [
                ev("frustrated", "chat", i * MIN, text="This is terrible, awful, horrible service. I hate it.")
                for i in range(2)
            ],
            [
                ev("frustrated", "chat", (10 + i) * MIN, text="Great, thank you, excellent and wonderful help!")
                for i in range(5)
            ],
        ),
        "repeat_contact": (
            [ev("repeat_contact", "call", i * HOUR, topic="billing") for i in range(3)],
            [ev("repeat_contact", web, 30 * HOUR, action="page_view")],
        ),
        "high_churn_risk": (
            [ev("high_churn_risk", "survey", 0, kind="nps", score=2)],
            [ev("high_churn_risk", "survey", DAY, kind="nps", score=10)],
        ),
        "valuable_customer_stuck": (
            [
                *orders("valuable_customer_stuck", 1, 800.0),
                *(ev("valuable_customer_stuck", web, HOUR + i * MIN, action="error") for i in range(2)),
            ],
            [ev("valuable_customer_stuck", web, 3 * HOUR, action="page_view")],
        ),
        "context_carried": (
            [
                ev("context_carried", "social", 0, topic="payment", outcome="unresolved"),
                ev("context_carried", "call", 12 * MIN),
            ],
            [ev("context_carried", web, 3 * HOUR, action="page_view")],
        ),
        "delivery_problem": (
            [ev("delivery_problem", "delivery", 0, order_id="o1", status="delayed")],
            [ev("delivery_problem", "delivery", DAY, order_id="o1", status="delivered")],
        ),
        "case_open_too_long": (
            [
                ev("case_open_too_long", "ticket", 0, case_id="k1", status="opened", topic="technical"),
                ev("case_open_too_long", web, 3 * DAY + HOUR, action="page_view"),
            ],
            [ev("case_open_too_long", "ticket", 3 * DAY + 2 * HOUR, case_id="k1", status="resolved")],
        ),
        "likely_to_negotiate": (
            [
                *(
                    ev("likely_to_negotiate", "offer_response", i * MIN, action="upsell", response="rejected")
                    for i in range(2)
                ),
                ev("likely_to_negotiate", "survey", 10 * MIN, kind="nps", score=2),
            ],
            [ev("likely_to_negotiate", "survey", DAY, kind="nps", score=10)],
        ),
        "vip": (
            [ev("vip", "loyalty", 0, points=100, tier="gold")],
            [ev("vip", "loyalty", DAY, points=100, tier="silver")],
        ),
        "consent_withdrawn": (
            [ev("consent_withdrawn", "consent", 0, purpose="marketing", granted=False)],
            [ev("consent_withdrawn", "consent", DAY, purpose="marketing", granted=True)],
        ),
        "negative_survey": (
            [ev("negative_survey", "survey", 0, kind="csat", score=1)],
            [ev("negative_survey", web, 8 * DAY, action="page_view")],
        ),
    }


def extra_evidence(flag: str) -> str | None:
    """Evidence beyond the triggering event that a flag must carry (a substring), if any."""
    return {
        "context_carried": "context_carried-social-0",
        "high_churn_risk": "negative_surveys=",
        "fraud_risk": "amount",
    }.get(flag)
