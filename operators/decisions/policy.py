"""Contact policy: whether a trigger may go out now, and why not.

*Now* is the moment of sending: the wall clock (the engine's clock), not the
event time of the decision -- an engine catching up on a backlog must not
send at 03:00 because the events it reads are from 15:00, nor send offers
that expired while it was behind. (Replays of recorded streams use the
customer's newest event time instead: setting ``policy_clock``.)

Checked on every trigger, in this order (the first that fails is the reason
counted in ``livesignals_triggers_suppressed_total{action,reason}``):

0. ``stale`` -- the trigger's decision moment (``created_at``) is older than
   ``max_age_ms`` (setting ``trigger_max_age_s``), or its ``expires_at`` has passed;
1. ``no_<purpose>_consent`` -- the customer withdrew consent for the action's
   purpose (``marketing`` or ``service``, declared per action in the rules file);
2. ``ignored_offers`` -- a marketing action after ``max_ignored`` offers in a
   row were ignored or rejected (an accepted offer resets the streak);
3. ``quiet_hours`` -- the customer's local time (``identity.attributes.timezone``,
   an IANA name; UTC when unknown) is within the quiet hours;
4. ``channel_daily_cap`` / ``daily_cap`` / ``weekly_cap`` -- too many triggers
   already sent on that channel today, or in all today or this week.

A trigger that passes is recorded in the customer's history (for the caps; by
the engine at its decision moment, see :meth:`ContactPolicy.admit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from operators.profile360.profile import CustomerState
from operators.rules.signals import Trigger

DAY_MS = 86_400_000
MAX_SENT_KEPT = 30


@dataclass(frozen=True)
class ContactPolicy:
    """Caps, quiet hours and suppression; every field is a setting."""

    daily_cap: int = 2
    weekly_cap: int = 5
    channel_daily_caps: dict[str, int] = field(default_factory=lambda: {"sms": 1, "phone": 1})
    quiet_start_hour: int = 21
    quiet_end_hour: int = 8
    max_ignored: int = 3
    max_age_ms: int | None = None
    """Oldest decision moment a trigger may be sent for (None: no limit but its expiry)."""

    def admit(self, state: CustomerState, trigger: Trigger, now_ms: int) -> str | None:
        """Every check, staleness first: ``None`` if the trigger may be sent at ``now_ms``, else the reason.

        A trigger let through is recorded at its decision moment, not at ``now_ms``: the
        customer's state stays a function of the input (a replay rebuilds it byte for byte),
        and since nothing older than ``max_age_ms`` is sent, the caps' count is off by at
        most that much at the edge of their window.
        """
        return self.stale(trigger, now_ms) or self.check(state, trigger, now_ms, trigger.created_at_ms)

    def stale(self, trigger: Trigger, now_ms: int) -> str | None:
        """``"stale"`` when the moment has passed: decision older than ``max_age_ms``, or expired."""
        too_old = self.max_age_ms is not None and now_ms - trigger.created_at_ms > self.max_age_ms
        return "stale" if too_old or trigger.expires_at_ms <= now_ms else None

    def check(self, state: CustomerState, trigger: Trigger, now_ms: int, record_at: int | None = None) -> str | None:
        """Consent, ignored offers, quiet hours and caps (1-4 above): ``None`` if the trigger
        may go out at ``now_ms`` (and it is then recorded, at ``record_at`` if given), else the reason."""
        purpose = trigger.purpose
        if state.consent.get(purpose) is False:
            return f"no_{purpose}_consent"
        if purpose == "marketing" and state.history.get("offer_streak", {}).get("ignored", 0) >= self.max_ignored:
            return "ignored_offers"
        if self._quiet(state, now_ms):
            return "quiet_hours"
        sent: list[list[Any]] = state.history.get("sent", [])
        today = [s for s in sent if now_ms - s[0] < DAY_MS]
        cap = self.channel_daily_caps.get(trigger.channel)
        if cap is not None and sum(1 for s in today if s[1] == trigger.channel) >= cap:
            return "channel_daily_cap"
        if len(today) >= self.daily_cap:
            return "daily_cap"
        if sum(1 for s in sent if now_ms - s[0] < 7 * DAY_MS) >= self.weekly_cap:
            return "weekly_cap"
        at = now_ms if record_at is None else record_at
        sent = [*sent, [at, trigger.channel, trigger.action]][-MAX_SENT_KEPT:]
        state.history["sent"] = sent
        return None

    def _quiet(self, state: CustomerState, now_ms: int) -> bool:
        zone = _zone((state.identity.get("attributes") or {}).get("timezone"))
        hour = datetime.fromtimestamp(now_ms / 1000, tz=zone).hour
        start, end = self.quiet_start_hour, self.quiet_end_hour
        return start <= hour or hour < end if start > end else start <= hour < end


ZONE_CACHE_SIZE = 512
"""Time zones kept resolved (LRU): IANA has about 600 names; a bad name costs a lookup, never a raise."""


def _zone(name: Any) -> Any:
    """The customer's ``tzinfo``: UTC for anything that is not a known IANA zone name (never raises)."""
    if not isinstance(name, str) or not name or len(name) > 64:
        return UTC
    return _known_zone(name)


@lru_cache(maxsize=ZONE_CACHE_SIZE)
def _known_zone(name: str) -> Any:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return UTC
