"""Next-best action: which declared actions a customer is eligible for, and which one to take.

At a *decision moment* (an inbound contact, or an event that raised a flag)
the arbiter takes every action of the rules file (:class:`~operators.rules.rulebook.ActionRule`)
that is eligible (``eligible_when``), out of its cooldown and allowed by
the customer's consent for its purpose, and ranks them by

    score = propensity x value x weight

where *propensity* is the ``offers`` model's probability that this customer
accepts this action (:class:`models.propensity.ResponseModel`, on the profile
features plus the customer's own record with that action), *value* the
rule's value expression (what a success is worth) and *weight* the
business's weight. The ranked top-N, each with its reasons, goes to the
profile's ``predictions.next_best_actions``; one action is chosen for a
trigger.

Policies (setting ``nba_policy``):

* ``learned`` -- epsilon-greedy: the top action with probability
  ``1 - epsilon + epsilon/K``, any other with ``epsilon/K``. The exploration
  is what lets a *new* policy be scored offline on the logged decisions
  (:mod:`app.policy_eval`); the draw is a hash of the decision id, so
  a replayed batch decides the same.
* ``fixed`` -- value x weight only, no propensity, no exploration (a
  business-rule baseline).
* ``random`` -- uniform among the candidates (a baseline).

Every decision is logged with each candidate's propensity, value, weight
and the probability with which the policy would have chosen it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from livesignals import serde
from livesignals.contract import CONTACT_CHANNELS, Event
from models.propensity import ResponseModel
from operators.profile360.profile import CustomerState
from operators.rules.rulebook import ActionRule
from operators.scoring.features import offer_history, response_features

POLICIES = ("learned", "fixed", "random")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One eligible action with the terms of its score."""

    action: str
    purpose: str
    channel: str
    propensity: float
    value: float
    weight: float
    reason: str
    ttl_ms: int
    item: str | None = None
    """What exactly to offer, when the action names it (a product id)."""
    probability: float = 0.0
    """Chance that the deciding policy picks this action (for off-policy evaluation)."""

    @property
    def score(self) -> float:
        """Expected worth: propensity x value x weight."""
        return self.propensity * self.value * self.weight

    def to_json(self) -> dict[str, Any]:
        """The candidate as logged and shown in the 360."""
        return {
            "action": self.action, "channel": self.channel, "score": round(self.score, 4),
            "propensity": round(self.propensity, 4), "value": round(self.value, 2), "weight": self.weight,
            "probability": round(self.probability, 4), "reason": self.reason, "item": self.item,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Decision:
    """One arbitration: the ranked candidates and the action chosen."""

    decision_id: str
    customer_key: str
    event_id: str
    at_ms: int
    policy: str
    epsilon: float
    ranked: tuple[Candidate, ...]
    chosen: Candidate
    features: dict[str, float]
    excluded: tuple[tuple[str, str], ...] = ()
    past: dict[str, list[int]] = field(default_factory=dict)
    """The customer's ``[answered, accepted]`` per candidate action (its response features)."""
    """Eligible actions left out, with the reason (``no_marketing_consent``)."""

    def to_json(self, outcome: str) -> dict[str, Any]:
        """The decision-log record (``outcome``: ``sent`` or the suppression reason)."""
        return {
            "kind": "decision", "decision_id": self.decision_id, "customer": self.customer_key,
            "event_id": self.event_id, "at": self.at_ms, "policy": self.policy, "epsilon": self.epsilon,
            "chosen": self.chosen.action, "probability": round(self.chosen.probability, 6), "outcome": outcome,
            "candidates": [c.to_json() for c in self.ranked], "excluded": [list(e) for e in self.excluded],
            "features": {k: float(f"{v:.4g}") for k, v in self.features.items()}, "past": self.past,
        }  # fmt: skip


class Arbiter:
    """Ranks eligible actions and picks one (see the module docstring).

    Parameters kept as attributes: ``policy``, ``epsilon``, ``top_n``, ``seed``.
    """

    def __init__(self, policy: str = "learned", epsilon: float = 0.1, top_n: int = 3, seed: int = 0) -> None:
        if policy not in POLICIES:
            raise ValueError(f"nba policy must be one of {POLICIES}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError("epsilon must be within [0, 1]")
        self.policy = policy
        self.epsilon = epsilon
        self.top_n = top_n
        self.seed = seed

    def decide(
        self,
        state: CustomerState,
        event: Event,
        ctx: dict[str, Any],
        actions: tuple[ActionRule, ...],
        propensity: ResponseModel | None,
        features: Any,
    ) -> tuple[Decision | None, list[tuple[str, str]]]:
        """The decision for this moment (None when no action is a candidate), and the
        eligible actions that consent excluded, with the reason.

        ``features`` is called (once, only if some action is a candidate and there is
        a propensity model) for the model's input.
        """
        now = event.event_time_ms
        proposed = state.history.get("proposed", {})
        eligible, excluded = [], []
        for rule in actions:
            if now - proposed.get(rule.name, -rule.cooldown_ms) < rule.cooldown_ms or not rule.eligible_when(ctx):
                continue
            if state.consent.get(rule.purpose) is False:
                excluded.append((rule.name, f"no_{rule.purpose}_consent"))
                continue
            eligible.append(rule)
        if not eligible:
            return None, excluded
        x: dict[str, float] = features() if propensity is not None else {}
        preferred = preferred_channel(state) if any(rule.channel == "preferred" for rule in eligible) else ""
        ranked = self._rank([self._terms(rule, state, ctx, propensity, x, preferred) for rule in eligible])
        o = event.origin
        position = (o.topic, o.partition, o.offset, o.timestamp_ms)  # the timestamp: distinct across a log reset
        decision_id = serde.deterministic_id("decision", event.customer_key, *position)
        chosen = self._choose(ranked, decision_id)
        past = {rule.name: list(offer_history(state, rule.name)) for rule in eligible}
        decision = Decision(decision_id, event.customer_key, event.event_id, now, self.policy, self._epsilon(),
                            tuple(ranked), chosen, x, tuple(excluded), past)  # fmt: skip
        return decision, excluded

    @staticmethod
    def _terms(
        rule: ActionRule,
        state: CustomerState,
        ctx: dict[str, Any],
        model: ResponseModel | None,
        x: dict[str, float],
        preferred: str,
    ) -> _Terms:
        """One eligible action's terms (a :class:`Candidate`'s fields but its probability); ``preferred``: the
        customer's preferred channel (once per decision)."""
        value = rule.value(ctx)
        value = max(0.0, float(value)) if isinstance(value, int | float) else 0.0
        if model is not None:
            p = model.predict_one(rule.name, {**x, **response_features(offer_history(state, rule.name))})
        else:
            p = 1.0
        channel = preferred if rule.channel == "preferred" else rule.channel
        item = rule.item(ctx) if rule.item is not None else None
        return (rule.name, rule.purpose, channel, p, value, rule.weight, rule.reason.render(ctx), rule.ttl_ms,
                None if item is None else str(item))  # fmt: skip

    def _rank(self, terms: list[_Terms]) -> list[Candidate]:
        """Best first (by :attr:`Candidate.score`), each with its probability of being chosen under the
        policy: one :class:`Candidate` built per action."""
        k = len(terms)
        if self.policy == "fixed":
            ranked = sorted(terms, key=lambda t: -t[4] * t[5])  # value x weight; stable: declaration order first
            return [_candidate(t, 1.0 if i == 0 else 0.0) for i, t in enumerate(ranked)]
        ranked = sorted(terms, key=lambda t: -(t[3] * t[4] * t[5]))  # Candidate.score
        eps = self._epsilon()
        return [_candidate(t, (1 - eps if i == 0 else 0.0) + eps / k) for i, t in enumerate(ranked)]

    def _choose(self, ranked: list[Candidate], decision_id: str) -> Candidate:
        eps = self._epsilon()
        u = _uniform(self.seed, decision_id)
        if u < eps:
            return ranked[min(len(ranked) - 1, int(u / eps * len(ranked)))]
        return ranked[0]

    def _epsilon(self) -> float:
        return {"learned": self.epsilon, "fixed": 0.0, "random": 1.0}[self.policy]


_Terms = tuple[str, str, str, float, float, float, str, int, str | None]
"""A :class:`Candidate`'s fields in order, without its probability."""


def _candidate(terms: _Terms, probability: float) -> Candidate:
    """The candidate of ``terms`` chosen with ``probability`` (``tests/unit/test_actions.py`` checks that the
    terms are the fields in order)."""
    return Candidate(*terms, probability)


def preferred_channel(state: CustomerState) -> str:
    """The channel the customer used most for contacts, else email."""
    by_channel = state.history.get("by_channel", {})
    contact_channels = {c: n for c, n in by_channel.items() if c in CONTACT_CHANNELS}
    if not contact_channels:
        return "email"
    return max(sorted(contact_channels), key=lambda c: contact_channels[c])


def _uniform(seed: int, decision_id: str) -> float:
    """A uniform draw in [0, 1) fixed by the seed and the decision (replays decide alike)."""
    digest = hashlib.blake2b(f"{seed}:{decision_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
