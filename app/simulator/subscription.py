"""A second stream, shaped like a subscription app, written apart from :mod:`app.simulator.journeys`.

Models judged only on the simulator that taught them look better than they
are. This generator shares no code or assumptions with the main simulator:
customers of a social app on monthly plans, six months of in-app events of
eight kinds -- ``post``, ``like``, ``message``, ``reply``, ``new_friend``,
``unfriend``, ``ad_view``, ``dislike`` -- a renewal payment (``order``) on
each customer's renewal day, and cancellations at renewal.

How a customer behaves:

* an engagement level (events per day, log-normal) and a taste over the eight
  behaviours (each customer its own mix);
* a latent satisfaction that wanders (random walk); some customers enter a
  *decline* at a random time: satisfaction drifts down for weeks. Engagement
  follows satisfaction (``level * exp(satisfaction)``), and as it falls the mix
  shifts from creating (post, reply, message, new friend) to passive and
  negative behaviour (ad view, dislike, unfriend);
* at each renewal the customer cancels with a probability that rises as the
  last 30 days' engagement falls below the 30 before and as satisfaction is
  low -- so declining engagement drives churn, and the label is only known
  at the renewal. A cancelled customer sends nothing more.

Each customer's ``customer_since`` (sign-up, up to two years before the
stream starts) arrives in a ``profile_update`` on their first day. Ground
truth: ``{"kind": "renewal", "customer_id", "at", "cancelled"}`` for every
renewal and ``{"kind": "churn", "customer_id", "at"}`` for each cancellation.

>>> sim = SubscriptionSimulator(SubscriptionConfig(customers=20, days=40, seed=3))
>>> events = [e for e, _ in sim.stream()]
>>> sorted({e["payload"].get("action") for e in events if e["type"] == "app_event"}) == sorted(ACTIONS)
True
>>> all(a["event_time"] <= b["event_time"] for a, b in zip(events, events[1:]))
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DAY_MS = 86_400_000
ACTIONS = ("post", "like", "message", "reply", "new_friend", "unfriend", "ad_view", "dislike")
CREATING = {"post": 1.0, "like": 0.6, "message": 1.0, "reply": 1.0, "new_friend": 0.8}
"""Behaviours that fall with satisfaction (weight of the fall); the others rise as it falls."""


@dataclass(frozen=True)
class SubscriptionConfig:
    """Size and shape of the stream (defaults: the outside stream's size, 1,500 customers, ~6 months)."""

    customers: int = 1500
    days: int = 182
    seed: int = 11
    start_ms: int = 1_767_225_600_000  # 2026-01-01
    events_per_day: float = 10.0
    """Median events per customer per day at normal satisfaction (~2.2M events over the defaults)."""
    decline_share: float = 0.1
    """Share of customers who enter a decline at some point."""
    base_cancel: float = -5.0
    """Log-odds of cancelling at a renewal for a content customer (under 1 % a month); with the
    declines, about 170 of 1,500 customers cancel in six months."""
    price: float = 9.99


@dataclass
class _Customer:
    customer_id: str
    level: float
    taste: dict[str, float]
    renewal_day: int
    since_ms: int
    satisfaction: float = 0.0
    decline_from: int | None = None
    decline_rate: float = 0.0
    daily: list[int] = field(default_factory=list)
    cancelled: bool = False


class SubscriptionSimulator:
    """Deterministic for a seed; :meth:`stream` yields ``(event, truth records)`` in time order."""

    def __init__(self, config: SubscriptionConfig | None = None) -> None:
        self.config = config or SubscriptionConfig()
        self.rng = random.Random(self.config.seed)
        self.customers = [self._customer(i) for i in range(self.config.customers)]
        self._n = 0

    def _customer(self, i: int) -> _Customer:
        rng, c = self.rng, self.config
        taste = {a: rng.gammavariate(1.5, 1.0) for a in ACTIONS}
        taste["like"] *= 3.0
        taste["ad_view"] *= 2.0
        declining = rng.random() < c.decline_share
        return _Customer(
            customer_id=f"s{i:05d}",
            level=c.events_per_day * math.exp(rng.gauss(0.0, 0.7) - 0.245),
            taste=taste,
            renewal_day=rng.randrange(30),
            since_ms=c.start_ms - rng.randrange(1, 730) * DAY_MS,
            decline_from=rng.randrange(5, c.days) if declining else None,
            decline_rate=rng.uniform(0.03, 0.12),
        )

    def stream(self) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Every event of every day, in time order, with the truth records it reveals."""
        for day in range(self.config.days):
            todays: list[tuple[int, dict[str, Any], list[dict[str, Any]]]] = []
            for customer in self.customers:
                if not customer.cancelled:
                    todays += self._day(customer, day)
            todays.sort(key=lambda item: item[0])
            for _, event, truth in todays:
                yield event, truth

    def _day(self, c: _Customer, day: int) -> list[tuple[int, dict[str, Any], list[dict[str, Any]]]]:
        rng, cfg = self.rng, self.config
        day_ms = cfg.start_ms + day * DAY_MS
        out: list[tuple[int, dict[str, Any], list[dict[str, Any]]]] = []
        if day == 0:
            fields = {"customer_since": c.since_ms, "plan": "monthly"}
            out.append((day_ms, self._event(c, day_ms, "profile_update", "app", {"fields": fields}), []))
        if day > 0 and day % 30 == c.renewal_day:
            out += self._renewal(c, day_ms)
            if c.cancelled:
                return out
        drift = -c.decline_rate if c.decline_from is not None and day >= c.decline_from else 0.02 * -c.satisfaction
        c.satisfaction = max(-4.0, min(1.0, c.satisfaction + drift + rng.gauss(0.0, 0.08)))
        s = c.satisfaction
        weights = {
            a: w * (math.exp(CREATING[a] * s) if a in CREATING else math.exp(-0.6 * s)) for a, w in c.taste.items()
        }
        total = sum(weights.values())
        mean = c.level * math.exp(0.8 * s) * (0.6 if (day % 7) in (5, 6) else 1.0)
        n = _poisson(rng, mean)
        c.daily.append(n)
        actions = rng.choices(list(weights), [w / total for w in weights.values()], k=n)
        for action in actions:
            t = day_ms + rng.randrange(DAY_MS)
            out.append((t, self._event(c, t, "app_event", "app", {"action": action}), []))
        return out

    def _renewal(self, c: _Customer, day_ms: int) -> list[tuple[int, dict[str, Any], list[dict[str, Any]]]]:
        last30, before = sum(c.daily[-30:]), sum(c.daily[-60:-30])
        trend = (last30 - before) / (last30 + before + 1) if len(c.daily) >= 45 else 0.0
        logit = self.config.base_cancel - 3.0 * trend - 1.2 * min(0.0, c.satisfaction)
        cancel = self.rng.random() < 1.0 / (1.0 + math.exp(-logit))
        truth = [{"kind": "renewal", "customer_id": c.customer_id, "at": day_ms, "cancelled": cancel}]
        if cancel:
            c.cancelled = True
            truth.append({"kind": "churn", "customer_id": c.customer_id, "at": day_ms})
            reason = {"reason": "not using it enough"}
            return [(day_ms, self._event(c, day_ms, "cancellation", "app", reason), truth)]
        payment = {"order_id": f"{c.customer_id}-{day_ms // DAY_MS}", "amount": self.config.price, "status": "paid"}
        return [(day_ms, self._event(c, day_ms, "order", "app", payment), truth)]

    def _event(self, c: _Customer, t: int, etype: str, channel: str, payload: dict[str, Any]) -> dict[str, Any]:
        self._n += 1
        return {
            "schema_version": 1,
            "event_id": f"sub-{self.config.seed}-{self._n}",
            "type": etype,
            "channel": channel,
            "customer": {"customer_id": c.customer_id},
            "event_time": t,
            "payload": payload,
        }


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (normal approximation above 30)."""
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
