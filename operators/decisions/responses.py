"""Learning from responses: offers accepted, rejected, ignored or expired; agents' verdicts.

What the engine remembers lives in the customer's own state (same partition
as the responses, so restart-safe):

* ``predictions.offers_pending`` -- the last :data:`MAX_PENDING_OFFERS` actions
  sent, each with its decision id, expiry, the propensity said at the time and
  the features it was said from (values in :data:`~operators.scoring.features.CHURN_FEATURES`
  order, and the customer's ``[answered, accepted]`` record with the action);
* ``history.recent_flags`` -- ids and names of the last flags raised, so an
  agent's verdict on a flag id finds its flag;
* ``predictions.next_best_actions`` -- the last decision's top-N as
  ``[action, score, propensity, reason]``, for the 360.

Labels for the ``offers`` model (counted in ``livesignals_model_labels_total``):

* an ``offer_response`` naming a pending decision (``decision_id``, else the
  latest pending offer of the same ``action``) is learned from the features
  at decision time: ``accepted`` is positive, ``rejected``/``ignored`` negative;
* responses are matched by the time they *happened*: a response whose event
  time is at or before the offer's expiry is the customer's answer, whatever
  arrived in between; one after the expiry makes the offer ``expired`` and is
  then taken as if no offer were pending (below: ``unmatched`` when it names
  the decision);
* an offer whose expiry passes without a response is learned as ignored
  (``expired``) once the customer's newest event time is past its expiry by
  more than the late-event grace (``late_event_grace_s``): until then, a late
  response that happened in time can still claim it;
* a response to an offer LiveSignals did not make (no ``decision_id``, e.g. a
  campaign) is learned from the features now; a response naming an unknown
  ``decision_id`` (late, or replayed) is counted ``unmatched`` and not learned;
* an agent's ``agent_feedback`` of kind ``action`` with label
  ``not_relevant`` on a pending decision is a negative label.

An agent's verdict on a flag (``agent_feedback`` of kind ``flag``: ``relevant``
or ``not_relevant``) teaches the ``flag_relevance`` model, whose probability
is published with every flag raised afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from livesignals import serde
from livesignals.contract import Event
from models.registry import Models
from operators.decisions.actions import Decision
from operators.profile360.profile import CustomerState
from operators.rules.signals import Flag
from operators.scoring.features import CHURN_FEATURES, churn_features, offer_history, record_response, response_features
from operators.scoring.online import ScoringReport

MAX_PENDING_OFFERS = 5
MAX_RECENT_FLAGS = 5
MAX_PROPOSED = 16
"""Actions whose last proposal time (cooldown) is kept per customer, most recent last."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a decision (or of an offer made elsewhere), for the decision log.

    ``outcome_id`` (the record's ``ls.id``) is deterministic and unique to what the
    record says: a decision's expiry, or a response event at its Kafka position.
    """

    decision_id: str | None
    customer_key: str
    action: str | None
    response: str
    """``accepted``, ``rejected``, ``ignored``, ``expired`` or ``not_relevant``."""
    at_ms: int
    event_id: str | None
    outcome_id: str

    def to_json(self) -> dict[str, Any]:
        """The decision-log record, joined to its decision by ``decision_id``."""
        return {
            "kind": "outcome", "decision_id": self.decision_id, "customer": self.customer_key,
            "action": self.action, "response": self.response, "at": self.at_ms, "event_id": self.event_id,
        }  # fmt: skip


def remember(state: CustomerState, decision: Decision, sent: bool, top_n: int) -> None:
    """Show the ranking in the 360; when the action was sent, start its cooldown and await its response."""
    now, chosen = decision.at_ms, decision.chosen
    state.predictions["next_best_actions"] = {
        "t": now, "decision_id": decision.decision_id, "chosen": chosen.action, "sent": sent,
        "ranked": [[c.action, round(c.score, 2), round(c.propensity, 3), c.reason] for c in decision.ranked[:top_n]],
    }  # fmt: skip
    if not sent:
        return
    proposed = state.history.setdefault("proposed", {})
    proposed.pop(chosen.action, None)
    proposed[chosen.action] = now
    while len(proposed) > MAX_PROPOSED:
        del proposed[next(iter(proposed))]
    pending = state.predictions.setdefault("offers_pending", [])
    pending.append({
        "id": decision.decision_id, "action": chosen.action, "t": now, "exp": now + chosen.ttl_ms,
        "p": round(chosen.propensity, 4), "h": decision.past.get(chosen.action, [0, 0]),
        "x": [float(f"{decision.features[k]:.4g}") for k in CHURN_FEATURES] if decision.features else None,
    })  # fmt: skip
    del pending[:-MAX_PENDING_OFFERS]


def note_relevance(state: CustomerState, flag: Flag) -> None:
    """Keep a raised flag's relevance (:func:`flag_relevance`, None before any verdict on its name) with the
    flag in the 360, so readers (the agent desktop's flags API) show what was published with it."""
    active = state.flags.get(flag.name)
    if active is not None and active.get("id") == flag.flag_id:
        active["relevance"] = flag.relevance


def note_flag(state: CustomerState, flag: Flag) -> None:
    """Remember a raised flag's id, so an agent's verdict on it can be learned."""
    recent = state.history.setdefault("recent_flags", [])
    recent.append([flag.flag_id, flag.name])
    del recent[:-MAX_RECENT_FLAGS]


def learn_responses(
    models: Models,
    state: CustomerState,
    event: Event,
    report: ScoringReport,
    present: int | None = None,
    grace_ms: int = 0,
) -> list[Outcome]:
    """Learn the responses due at this event (expired offers first); the outcomes for the decision log.

    ``present`` is the customer's newest event time (default: this event's): offers
    expired by more than ``grace_ms`` before it are learned as ``expired``.
    """
    now, p = event.event_time_ms, event.payload
    due = (now if present is None else max(now, present)) - grace_ms
    outcomes = [_learn_offer(models, state, o, "expired", None, report) for o in _take_expired(state, due)]
    if event.type == "offer_response":
        outcomes += _offer_response(models, state, event, report)
    elif event.type == "agent_feedback" and p["kind"] == "action":
        # "relevant" says nothing about the customer's answer: the offer keeps waiting for it.
        offer = _take_pending(state, p["target_id"], None) if p["label"] == "not_relevant" else None
        if offer is not None:
            outcomes.append(_learn_offer(models, state, offer, "not_relevant", event, report))
        elif p["label"] != "relevant":
            report.labels[("offers", "unmatched")] += 1
    elif event.type == "agent_feedback" and p["kind"] == "flag":
        name = next((n for fid, n in state.history.get("recent_flags", []) if fid == p["target_id"]), None)
        if name is None or p["label"] not in ("relevant", "not_relevant"):
            report.labels[("flag_relevance", "unmatched")] += 1
        else:
            x = churn_features(state, now)
            models.teach("flag_relevance", [name, x, p["label"] == "relevant"])
            report.labels[("flag_relevance", p["label"])] += 1
            report.learned = True
    return outcomes


def flag_relevance(models: Models, state: CustomerState, flag_name: str, now_ms: int) -> float | None:
    """The chance agents find this flag relevant for this customer (None before any verdict on it)."""
    model = models.model("flag_relevance")
    if model.rate(flag_name) is None:
        return None
    return round(model.predict_one(flag_name, churn_features(state, now_ms)), 4)


def _offer_response(models: Models, state: CustomerState, event: Event, report: ScoringReport) -> list[Outcome]:
    p = event.payload
    response = p["response"]
    out: list[Outcome] = []
    offer = _take_pending(state, p.get("decision_id"), p.get("action"))
    if offer is not None and event.event_time_ms > offer["exp"]:  # answered after it lapsed: it expired
        out.append(_learn_offer(models, state, offer, "expired", None, report))
        offer = None
    if offer is not None:
        return [_learn_offer(models, state, offer, response, event, report)]
    outcome_id = _outcome_id(event.customer_key, p.get("decision_id"), response, event)
    outcome = Outcome(p.get("decision_id"), event.customer_key, p.get("action"), response, event.event_time_ms,
                      event.event_id, outcome_id)  # fmt: skip
    out.append(outcome)
    if p.get("decision_id") or not p.get("action"):
        report.labels[("offers", "unmatched")] += 1
        return out
    # An offer made elsewhere: what the customer looks like now (before this response is applied).
    x = {**churn_features(state, event.event_time_ms), **response_features(offer_history(state, p["action"]))}
    _learn(models, p["action"], x, response, None, report)
    return out


def _outcome_id(customer_key: str, decision_id: str | None, response: str, event: Event | None) -> str:
    """Unique to what the outcome says: a decision's expiry, or one response event at its position."""
    if event is None:
        return serde.deterministic_id("outcome", customer_key, decision_id, response)
    o = event.origin
    return serde.deterministic_id(
        "outcome", customer_key, decision_id or "", response, o.topic, o.partition, o.offset, o.timestamp_ms
    )


def _learn_offer(
    models: Models, state: CustomerState, offer: dict[str, Any], response: str, event: Event | None,
    report: ScoringReport,
) -> Outcome:  # fmt: skip
    at = event.event_time_ms if event is not None else offer["exp"]
    x = dict(zip(CHURN_FEATURES, offer["x"], strict=True)) if offer.get("x") else churn_features(state, at)
    x.update(response_features(offer.get("h", [0, 0])))
    if response == "expired":
        record_response(state, offer["action"], False)
    _learn(models, offer["action"], x, response, offer["p"], report)
    return Outcome(offer["id"], state.customer_key, offer["action"], response, at,
                   event.event_id if event is not None else None,
                   _outcome_id(state.customer_key, offer["id"], response, event))  # fmt: skip


def _learn(
    models: Models, action: str, x: dict[str, float], response: str, said: float | None, report: ScoringReport
) -> None:
    """Teach every ``offers`` model one response; ``said`` is the champion's propensity at decision time."""
    models.teach("offers", [action, x, response == "accepted"], {"champion": said})
    report.labels[("offers", response)] += 1
    report.learned = True


def _take_expired(state: CustomerState, due_ms: int) -> list[dict[str, Any]]:
    """Remove and return the pending offers whose expiry is *before* ``due_ms`` (strictly: an offer due exactly
    now still waits, as an event exactly the grace old is still on time)."""
    pending = state.predictions.get("offers_pending")
    if not pending:
        return []
    for o in pending:  # a loop, not all(<generator>): most events find nothing due, and this runs for each
        if o["exp"] < due_ms:
            break
    else:
        return []
    state.predictions["offers_pending"] = [o for o in pending if o["exp"] >= due_ms]
    return [o for o in pending if o["exp"] < due_ms]


def _take_pending(state: CustomerState, decision_id: str | None, action: str | None) -> dict[str, Any] | None:
    """Remove and return the pending offer with this id (else the latest of this action)."""
    pending = state.predictions.get("offers_pending", [])
    for i in range(len(pending) - 1, -1, -1):
        o = pending[i]
        if (decision_id and o["id"] == decision_id) or (not decision_id and action and o["action"] == action):
            return pending.pop(i)
    return None
