"""Customers with latent traits, and the interactions they produce.

Every customer has a value (spend scale), a churn propensity, a baseline mood,
a language, a preferred channel, an activity weight (a few customers are very
active: Zipf-like skew) and the action they would accept (:func:`best_action`:
it follows from their traits for three customers in four, so a model can learn
it from behaviour; the fourth has a whim of their own). In the warning
period before cancelling, a churner's mood sinks, it stops ordering and
contacts us more; then it cancels and goes quiet.

The event mix by count follows the reference workload: ~70 % web/app events,
~10 % orders, ~10 % text interactions, ~5 % surveys, ~5 % the rest
(deliveries, returns, tickets, loyalty, campaigns, consent, offer responses,
cancellations). Some web/app activity is anonymous (a device id only) until
a login links the device to the customer.

Same seed, same stream: all randomness comes from one ``random.Random(seed)``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from app.simulator.texts import make_text

OFFERS = ("retention_offer", "cross_sell", "upsell", "expert_callback", "goodwill_credit", "self_service_article")
"""Actions a simulated customer may be offered (named as in the shipped rules file)."""
ACCEPT_BEST, ACCEPT_OTHER = 0.6, 0.05
"""Chance a customer accepts their best action, and any other."""
CONTACT_CHANNELS = {
    "call": "phone",
    "chat": "chat",
    "email": "email",
    "sms": "sms",
    "social": "social",
}
MIX = (("digital", 0.70), ("order", 0.10), ("text", 0.10), ("survey", 0.05), ("other", 0.05))
WARNING_MIX = (("digital", 0.62), ("order", 0.02), ("text", 0.22), ("survey", 0.09), ("other", 0.05))
"""A churner in its warning period stops ordering and contacts us more."""
OTHER = (
    ("delivery", 0.45),
    ("ticket", 0.15),
    ("return", 0.10),
    ("loyalty", 0.08),
    ("campaign", 0.08),
    ("offer_response", 0.08),
    ("consent", 0.03),
    ("profile_update", 0.03),
)
DIGITAL_ACTIONS = (
    ("page_view", 0.45),
    ("product_view", 0.25),
    ("search", 0.1),
    ("add_to_cart", 0.1),
    ("checkout_start", 0.04),
    ("login", 0.03),
    ("error", 0.02),
    ("help_article", 0.01),
)


@dataclass(frozen=True)
class SimulatorConfig:
    """What to simulate; every field is a constructor parameter kept as is."""

    customers: int = 1000
    seed: int = 42
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    step_ms: float = 50.0
    """Simulated time between consecutive events (1000 / rate for a live stream)."""
    languages: tuple[tuple[str, float], ...] = (("en", 0.6), ("fa", 0.35), ("el", 0.05))
    anonymous_share: float = 0.3
    """Share of web/app events sent with a device id only."""
    churn_horizon_ms: int = 2 * 3_600_000
    """Churners cancel at a random time within this span of simulated time."""
    warning_ms: int | None = None
    """How long before cancelling a churner shows warning signs (mood sinking, more
    complaints); default a quarter of ``churn_horizon_ms``."""
    activity_skew: float = 1.1
    """Zipf exponent of per-customer activity."""


def best_action(rng: random.Random, churn_propensity: float, value: float, mood: float) -> str:
    """The action a customer would accept: set by their traits, or (one in four) at random.

    Likely churners want a retention offer, big spenders an upsell, unhappy
    customers an expert on the phone, the rest a cross-sell.
    """
    if rng.random() < 0.25:
        return rng.choice(OFFERS)
    if churn_propensity >= 0.3:
        return "retention_offer"
    if value >= 110.0:
        return "upsell"
    if mood < -0.1:
        return "expert_callback"
    return "cross_sell"


@dataclass
class Customer:
    """A simulated customer's latent traits and running situation."""

    customer_id: str
    email: str
    phone: str
    device_id: str
    lang: str
    value: float
    churn_propensity: float
    mood: float
    preferred_contact: str
    best_offer: str
    churn_at_ms: int | None
    churned: bool = False
    open_orders: list[tuple[str, float]] = field(default_factory=list)
    last_contact_event: str | None = None
    issues: int = 0


class Simulator:
    """Generates ``(event, truth_records)`` pairs, deterministically for a seed.

    >>> def ids(seed):
    ...     return [e["event_id"] for e, _ in Simulator(SimulatorConfig(50, seed)).stream(5)]
    >>> ids(1) == ids(1)
    True
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.rng = random.Random(self.config.seed)
        self.customers = [self._new_customer(i) for i in range(self.config.customers)]
        weights = [1.0 / (rank + 1) ** self.config.activity_skew for rank in range(len(self.customers))]
        self.rng.shuffle(weights)
        self._cum_weights = list(_accumulate(weights))
        self._seq = 0
        self.now_ms = self.config.start_ms

    def customer_truth(self) -> Iterator[dict[str, Any]]:
        """One ground-truth record per customer (latent traits, churn date, best offer)."""
        for c in self.customers:
            yield {
                "kind": "customer",
                "customer_id": c.customer_id,
                "lang": c.lang,
                "value": round(c.value, 2),
                "churn_propensity": round(c.churn_propensity, 4),
                "mood": round(c.mood, 4),
                "preferred_contact": c.preferred_contact,
                "best_offer": c.best_offer,
                "churn_at": c.churn_at_ms,
            }

    def stream(self, count: int | None = None) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Yield ``count`` events (forever when None), each with its truth records."""
        produced = 0
        while count is None or produced < count:
            self._seq += 1
            self.now_ms = int(self.config.start_ms + self._seq * self.config.step_ms)
            customer = self._pick_customer()
            if customer is None:
                continue
            event, truth = self._event_for(customer)
            produced += 1
            yield event, truth

    # --- customers ---------------------------------------------------------

    def _new_customer(self, i: int) -> Customer:
        rng = self.rng
        lang = _weighted(rng, self.config.languages)
        churn_propensity = rng.betavariate(1.2, 6.0)
        will_churn = rng.random() < churn_propensity * 1.5
        churn_at = (
            self.config.start_ms + int(rng.uniform(0.2, 1.0) * self.config.churn_horizon_ms) if will_churn else None
        )
        device_id = f"d{rng.getrandbits(48):012x}"
        value = math.exp(rng.gauss(4.0, 0.8))
        mood = max(-1.0, min(1.0, rng.gauss(0.2, 0.4) - churn_propensity))
        return Customer(
            customer_id=f"c{i:07d}",
            email=f"user{i}@example.com",
            phone=f"+1555{i:07d}",
            device_id=device_id,
            lang=lang,
            value=value,
            churn_propensity=churn_propensity,
            mood=mood,
            preferred_contact=rng.choice(list(CONTACT_CHANNELS)),
            best_offer=best_action(rng, churn_propensity, value, mood),
            churn_at_ms=churn_at,
        )

    def _pick_customer(self) -> Customer | None:
        c = self.rng.choices(self.customers, cum_weights=self._cum_weights)[0]
        if c.churned:
            return None
        return c

    def _in_warning(self, c: Customer) -> bool:
        warning = self.config.warning_ms or self.config.churn_horizon_ms // 4
        return c.churn_at_ms is not None and 0 <= c.churn_at_ms - self.now_ms <= warning

    def _current_mood(self, c: Customer) -> float:
        mood = c.mood - 0.15 * c.issues
        if c.churn_at_ms is not None:
            warning = self.config.warning_ms or self.config.churn_horizon_ms // 4
            closeness = 1.0 - max(0.0, c.churn_at_ms - self.now_ms) / warning
            mood -= 1.2 * max(0.0, closeness)
        return max(-1.0, min(1.0, mood))

    # --- events ------------------------------------------------------------

    def _envelope(
        self,
        c: Customer,
        etype: str,
        channel: str,
        payload: dict[str, Any],
        anonymous: bool = False,
    ) -> dict[str, Any]:
        ids = {"device_id": c.device_id} if anonymous else {"customer_id": c.customer_id}
        if etype == "app_event" and not anonymous and payload.get("action") == "login":
            ids["device_id"] = c.device_id
        return {
            "schema_version": 1,
            "event_id": f"ev-{self.config.seed}-{self._seq}",
            "type": etype,
            "channel": channel,
            "customer": ids,
            "event_time": self.now_ms,
            "payload": payload,
        }

    def _event_for(self, c: Customer) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if c.churn_at_ms is not None and self.now_ms >= c.churn_at_ms:
            c.churned = True
            return self._envelope(c, "cancellation", "self_service", {"reason": "customer_request"}), [
                {"kind": "churn", "customer_id": c.customer_id, "at": self.now_ms}
            ]
        kind = _weighted(self.rng, WARNING_MIX if self._in_warning(c) else MIX)
        if kind == "digital":
            return self._digital(c), []
        if kind == "order":
            return self._order(c), []
        if kind == "text":
            return self._text(c)
        if kind == "survey":
            return self._survey(c)
        return self._other(c)

    def _digital(self, c: Customer) -> dict[str, Any]:
        rng = self.rng
        action = _weighted(rng, DIGITAL_ACTIONS)
        etype, channel = ("app_event", "app") if rng.random() < 0.4 else ("web_event", "web")
        payload: dict[str, Any] = {"action": action, "session_id": f"s{rng.getrandbits(32):08x}"}
        if action in ("product_view", "add_to_cart"):
            payload["product_id"] = f"p{rng.randrange(500):03d}"
        if action == "error":
            payload["error_code"] = rng.choice(["PAY-402", "APP-500", "LOGIN-401"])
            c.issues += 1
        anonymous = action != "login" and rng.random() < self.config.anonymous_share
        if action == "login":
            etype, channel = "app_event", "app"
        return self._envelope(c, etype, channel, payload, anonymous=anonymous)

    def _order(self, c: Customer) -> dict[str, Any]:
        amount = round(c.value * self.rng.uniform(0.3, 1.7), 2)
        order_id = f"o{self.config.seed}-{self._seq}"
        c.open_orders.append((order_id, amount))
        del c.open_orders[:-5]
        channel = self.rng.choice(["web", "app", "store"])
        return self._envelope(
            c,
            "order",
            channel,
            {"order_id": order_id, "amount": amount, "currency": "EUR", "status": "placed"},
        )

    def _text(self, c: Customer) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rng = self.rng
        etype = c.preferred_contact if rng.random() < 0.7 else rng.choice(list(CONTACT_CHANNELS))
        mood = self._current_mood(c)
        sentiment = (
            "negative"
            if rng.random() < 0.5 - 0.45 * mood
            else ("positive" if rng.random() < 0.5 + 0.4 * mood else "neutral")
        )
        order_id = c.open_orders[-1][0] if c.open_orders else ""
        topic, text = make_text(c.lang, sentiment, rng, order_id)
        resolved = rng.random() < (0.55 + 0.3 * mood)
        payload: dict[str, Any] = {
            "direction": "inbound",
            "text": text,
            "topic": topic,
            "outcome": "resolved" if resolved else "unresolved",
            "lang": c.lang,
        }
        if etype in ("call", "chat"):
            payload["handle_time_s"] = round(rng.lognormvariate(5.5, 0.5), 1)
        event = self._envelope(c, etype, CONTACT_CHANNELS[etype], payload)
        c.last_contact_event = event["event_id"]
        if sentiment == "negative":
            c.issues += 1
        return event, [
            {
                "kind": "text",
                "event_id": event["event_id"],
                "customer_id": c.customer_id,
                "lang": c.lang,
                "sentiment": sentiment,
                "topic": topic,
            }
        ]

    def _survey(self, c: Customer) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rng = self.rng
        mood = self._current_mood(c)
        kind = rng.choice(["csat", "nps", "ces"])
        noise = rng.gauss(0, 0.25)
        x = max(0.0, min(1.0, 0.5 + 0.5 * mood + noise))  # 0 = unhappy, 1 = happy
        score = {"csat": 1 + round(4 * x), "nps": round(10 * x), "ces": 7 - round(6 * x)}[kind]
        payload: dict[str, Any] = {"kind": kind, "score": score}
        if c.last_contact_event:
            payload["rates_event_id"] = c.last_contact_event
        sentiment = "negative" if x < 0.4 else ("positive" if x > 0.65 else "neutral")
        if rng.random() < 0.4:
            payload["comment"] = make_text(c.lang, sentiment, rng)[1]
        event = self._envelope(c, "survey", rng.choice(["email", "sms", "web"]), payload)
        truth = (
            [
                {
                    "kind": "text",
                    "event_id": event["event_id"],
                    "customer_id": c.customer_id,
                    "lang": c.lang,
                    "sentiment": sentiment,
                    "field": "comment",
                }
            ]
            if "comment" in payload
            else []
        )
        return event, truth

    def _other(self, c: Customer) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rng = self.rng
        kind = _weighted(rng, OTHER)
        order_id, amount = c.open_orders[-1] if c.open_orders else (f"o-legacy-{c.customer_id}", 20.0)
        if kind == "delivery":
            status = _weighted(rng, (("shipped", 0.35), ("delivered", 0.5), ("delayed", 0.1), ("failed", 0.05)))
            if status in ("delayed", "failed"):
                c.issues += 1
            return self._envelope(c, "delivery", "backoffice", {"order_id": order_id, "status": status}), []
        if kind == "return":
            return self._envelope(
                c,
                "return",
                rng.choice(["web", "store"]),
                {
                    "order_id": order_id,
                    "amount": amount,
                    "status": "requested",
                    "reason": rng.choice(["damaged", "wrong_size", "no_fault_found"]),
                },
            ), []
        if kind == "ticket":
            status = rng.choice(["opened", "updated", "resolved"])
            return self._envelope(
                c,
                "ticket",
                "backoffice",
                {
                    "case_id": f"case-{c.customer_id}-{c.issues}",
                    "status": status,
                    "topic": "technical",
                },
            ), []
        if kind == "offer_response":
            offer = rng.choice(OFFERS)
            accept_p = ACCEPT_BEST if offer == c.best_offer else ACCEPT_OTHER
            response = "accepted" if rng.random() < accept_p else rng.choice(["rejected", "ignored"])
            return self._envelope(c, "offer_response", "email", {"action": offer, "response": response}), [
                {
                    "kind": "offer",
                    "customer_id": c.customer_id,
                    "action": offer,
                    "accepted": response == "accepted",
                }
            ]
        if kind == "consent":
            return self._envelope(c, "consent", "web", {"purpose": "marketing", "granted": rng.random() < 0.7}), []
        if kind == "loyalty":
            return self._envelope(
                c,
                "loyalty",
                "app",
                {"points": rng.randrange(10, 500), "tier": rng.choice(["silver", "gold"])},
            ), []
        if kind == "campaign":
            return self._envelope(
                c,
                "campaign",
                "email",
                {
                    "campaign_id": f"cmp-{rng.randrange(20)}",
                    "action": rng.choice(["sent", "opened", "clicked"]),
                },
            ), []
        return self._envelope(
            c,
            "profile_update",
            "web",
            {"fields": {"city": rng.choice(["Athens", "Tehran", "Berlin"])}},
        ), []


def _weighted(rng: random.Random, options: tuple[tuple[Any, float], ...]) -> Any:
    r = rng.random() * sum(w for _, w in options)
    for value, weight in options:
        r -= weight
        if r <= 0:
            return value
    return options[-1][0]


def _accumulate(values: list[float]) -> Iterator[float]:
    total = 0.0
    for v in values:
        total += v
        yield total
