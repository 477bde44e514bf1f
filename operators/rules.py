"""The first live rules: which flags and triggers an event raises.

A rule sees the customer's state *after* the event was applied. Flags are
deduplicated while active: a flag that is raised and not yet expired is not
raised again (issue 5 replaces these hand-written rules with a declarative
catalogue with hysteresis; the shapes stay).

Rules today:

* ``repeat_contact`` -- ``repeat_contact_threshold`` inbound contacts within
  ``repeat_contact_window_s`` (any channel).
* ``negative_survey`` -- CSAT <= 2 of 5, NPS <= 6 of 10 (a detractor) or
  CES >= 5 of 7; a high-value customer also gets a ``retention_offer`` trigger.
* ``delivery_problem`` -- a delivery is delayed or failed; triggers a
  ``proactive_notification`` on the customer's last-used channel.
* ``consent_withdrawn`` -- marketing consent was withdrawn.
* ``high_churn_risk`` -- the churn model's probability reached ``churn_flag_threshold``;
  the reason names the features that drive it.
* ``fraud_risk`` -- the anomaly score of an order, return or account change reached
  ``fraud_flag_threshold``; the reason names the most unusual feature.
* ``frustrated`` -- the customer's mood (moving average of text sentiment over at
  least two texts) fell to -0.5 or below.
* ``context_carried`` -- an inbound contact within ``context_window_s`` of a touch
  on another contact channel (the customer switched channels: the agent sees
  the earlier touch, its topic and outcome, as evidence).

Every trigger then passes the contact policy (:mod:`operators.policy`: consent
per purpose, caps, quiet hours, ignored offers) in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from livesignals.contract import CONTACT_CHANNELS, Event
from livesignals.settings import Settings
from operators.profile import CustomerState
from operators.signals import Flag, Trigger, new_flag, new_trigger
from operators.surveys import is_negative_survey
from operators.views import context_carried

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """The thresholds the rules read (from :class:`~livesignals.settings.Settings`)."""

    repeat_contact_window_ms: int = DAY_MS
    repeat_contact_threshold: int = 3
    high_value_spend: float = 500.0
    context_window_ms: int = DAY_MS
    churn_flag_threshold: float = 0.7
    fraud_flag_threshold: float = 0.8
    frustrated_mood: float = -0.5

    @classmethod
    def from_settings(cls, s: Settings) -> RuleConfig:
        """Take the rule thresholds from the settings."""
        return cls(
            s.repeat_contact_window_s * 1000,
            s.repeat_contact_threshold,
            s.high_value_spend,
            s.context_window_s * 1000,
            s.churn_flag_threshold,
            s.fraud_flag_threshold,
        )


@dataclass(slots=True)
class Signals:
    """What one event raised: flags and (before the contact policy) triggers."""

    flags: list[Flag]
    triggers: list[Trigger]


def evaluate(state: CustomerState, event: Event, cfg: RuleConfig) -> Signals:
    """Flags and triggers raised by ``event`` given the customer's updated state."""
    flags: list[Flag] = []
    triggers: list[Trigger] = []
    p = event.payload
    now = event.event_time_ms

    if event.is_contact and p.get("direction", "inbound") == "inbound":
        carried = context_carried(state, event.channel, now, cfg.context_window_ms)
        if carried:
            reason = (
                f"{_how(carried['type'], carried['channel'])} {carried['minutes_ago']} min ago"
                + (f" about {carried['topic']}" if carried.get("topic") else "")
                + (f" ({carried['outcome']})" if carried.get("outcome") else "")
            )
            flags.append(
                new_flag(event, "context_carried", "info", reason, HOUR_MS,
                         evidence=(carried["event_id"], event.event_id))
            )  # fmt: skip
        since = now - cfg.repeat_contact_window_ms
        recent = [c for c in state.recent_contacts if since <= c[0] <= now]
        if len(recent) >= cfg.repeat_contact_threshold:
            reason = f"{len(recent)} contacts in {cfg.repeat_contact_window_ms // HOUR_MS} h"
            flags.append(new_flag(event, "repeat_contact", "warning", reason, cfg.repeat_contact_window_ms))
    elif event.type == "survey" and is_negative_survey(p["kind"], p["score"]):
        flags.append(new_flag(event, "negative_survey", "warning", f"{p['kind']} score {p['score']:g}", 7 * DAY_MS))
        if state.value.get("spend", 0.0) >= cfg.high_value_spend:
            triggers.append(
                new_trigger(
                    event,
                    "retention_offer",
                    _preferred_channel(state),
                    ("negative_survey", "high_value"),
                    2 * DAY_MS,
                )
            )
    elif event.type == "delivery" and p["status"] in ("delayed", "failed"):
        flags.append(
            new_flag(
                event,
                "delivery_problem",
                "warning",
                f"order {p['order_id']} {p['status']}",
                3 * DAY_MS,
            )
        )
        triggers.append(
            new_trigger(
                event,
                "proactive_notification",
                _preferred_channel(state),
                (f"delivery_{p['status']}",),
                DAY_MS,
            )
        )
    elif event.type == "consent" and p["purpose"] == "marketing" and not p["granted"]:
        flags.append(new_flag(event, "consent_withdrawn", "info", "marketing consent withdrawn", 30 * DAY_MS))

    flags += _model_flags(state, event, cfg)
    flags = [f for f in flags if _not_active(state, f, now)]
    for f in flags:
        state.flags[f.name] = {
            "id": f.flag_id,
            "severity": f.severity,
            "raised_at": f.raised_at_ms,
            "expires_at": f.expires_at_ms,
        }
    return Signals(flags, triggers)


def _model_flags(state: CustomerState, event: Event, cfg: RuleConfig) -> list[Flag]:
    """Flags raised by the models' latest scores (written by this very event)."""
    out: list[Flag] = []
    now, pred = event.event_time_ms, state.predictions
    churn = pred.get("churn")
    if churn and churn.get("t") == now and not churn.get("cancelled") and churn["p"] >= cfg.churn_flag_threshold:
        drivers = ", ".join(name for name, _ in churn.get("top", [])) or "overall profile"
        out.append(
            new_flag(event, "high_churn_risk", "warning", f"churn risk {churn['p']:.0%} ({drivers})", 7 * DAY_MS)
        )
    fraud = pred.get("fraud")
    if fraud and fraud.get("t") == now and fraud.get("warm") and fraud["score"] >= cfg.fraud_flag_threshold:
        reason = f"anomaly {fraud['score']:.2f}: {fraud['reason']} {fraud['z']:g} sd from normal"
        out.append(new_flag(event, "fraud_risk", "critical", reason, DAY_MS))
    mood = pred.get("mood")
    if mood and mood.get("t") == now and mood["n"] >= 2 and mood["avg"] <= cfg.frustrated_mood:
        out.append(new_flag(event, "frustrated", "warning", f"mood {mood['avg']:+.2f} over {mood['n']} texts", DAY_MS))
    return out


def _how(event_type: str, channel: str) -> str:
    """``"call on phone"`` reads as ``"phone call"``; ``"social on social"`` as ``"social"``."""
    if event_type == channel:
        return channel
    return f"{channel} {event_type}" if event_type in ("call", "chat", "email", "sms", "social") else event_type


def _not_active(state: CustomerState, flag: Flag, now_ms: int) -> bool:
    active = state.flags.get(flag.name)
    return active is None or active["expires_at"] <= now_ms


def _preferred_channel(state: CustomerState) -> str:
    """The channel the customer used most for contacts, else email."""
    by_channel = state.history.get("by_channel", {})
    contact_channels = {c: n for c, n in by_channel.items() if c in CONTACT_CHANNELS}
    if not contact_channels:
        return "email"
    return max(sorted(contact_channels), key=lambda c: contact_channels[c])
