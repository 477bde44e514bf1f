"""Contact-centre KPIs, live: what one event contributes, and how to read them.

Definitions (as a contact-centre manager reads them; "contact" = an inbound
call, chat, email, text or social message):

* **First-contact resolution (FCR)** -- of the issues customers raised for the
  first time (contacts that are not repeats), the share resolved on that
  contact (``outcome = resolved``).
* **Repeat-contact rate** -- share of contacts that come within 24 h of an
  earlier contact by the same customer.
* **Average handle time (AHT)** -- mean ``handle_time_s`` of contacts that report it.
* **CSAT** -- share of CSAT answers of 4 or 5 (of 5), in %.
* **NPS** -- % promoters (9-10) minus % detractors (0-6).
* **Customer effort score (CES)** -- mean CES answer, 1 (easy) to 7 (very hard).
* **Self-service deflection** -- self-service interactions (help articles,
  order tracking, resolved chatbot sessions, FAQ) as a share of self-service
  plus contacts.

Each is kept per channel and overall, for the last hour and the last day,
as counts in :class:`~operators.profile360.windows.Windows` buckets (per Kafka
partition, summed by the reader). A survey counts towards the channel of the
interaction it rates when that is known, else its own channel.
"""

from __future__ import annotations

from typing import Any

from livesignals.contract import Event
from operators.profile360.profile import CustomerState
from operators.profile360.sizes import stored
from operators.profile360.update import SELF_SERVICE_ACTIONS
from operators.profile360.windows import Windows

REPEAT_WINDOW_MS = 24 * 3_600_000
VALUE_COMPONENTS = frozenset({"handle_s", "ces"})
"""KPI components kept as ``[n, sum, min, max]``; every other one is a count."""


class KpiKinds(dict[str, str]):
    """Kinds of KPI bucket metrics (``channel|component``), by component."""

    def get(self, key: str, default: Any = None) -> str:
        """``value`` for handle time and CES, else ``count``."""
        return "value" if key.rsplit("|", 1)[-1] in VALUE_COMPONENTS else "count"


KPI_WINDOW_KINDS = KpiKinds()


def new_windows(doc: dict[str, Any] | None = None) -> Windows:
    """KPI buckets, empty or rebuilt from their persisted form."""
    return Windows.from_json(doc, KPI_WINDOW_KINDS)


def contributions(state_before: CustomerState, event: Event) -> dict[str, Any]:
    """KPI components for one event, keyed ``channel|component``, given the
    customer's state *before* the event (to tell repeats)."""
    p = event.payload
    out: dict[str, Any] = {}
    channel = event.channel
    if event.is_contact and p.get("direction", "inbound") == "inbound":
        t = event.event_time_ms
        repeat = any(0 <= t - c[0] <= REPEAT_WINDOW_MS for c in state_before.recent_contacts)
        out["contacts"] = 1
        if repeat:
            out["repeats"] = 1
        elif p.get("outcome"):
            out["first_contacts"] = 1
            if p["outcome"] == "resolved":
                out["first_resolved"] = 1
        if "handle_time_s" in p:
            out["handle_s"] = float(p["handle_time_s"])
    elif event.type == "survey":
        channel = _rated_channel(state_before, p.get("rates_event_id")) or channel
        kind, score = p["kind"], p["score"]
        if kind == "csat":
            out["csat_n"] = 1
            if score >= 4:
                out["csat_top2"] = 1
        elif kind == "nps":
            out["nps_n"] = 1
            if score >= 9:
                out["nps_promoters"] = 1
            elif score <= 6:
                out["nps_detractors"] = 1
        else:
            out["ces"] = float(score)
    elif p.get("action") in SELF_SERVICE_ACTIONS or (
        event.channel == "self_service" and event.type in ("web_event", "app_event")
    ):
        out["self_service"] = 1
    keyed: dict[str, Any] = {}
    for component, value in out.items():
        keyed[f"{channel}|{component}"] = value
        keyed[f"all|{component}"] = value
    return keyed


def _rated_channel(state: CustomerState, rated_event: str | None) -> str | None:
    if not rated_event:
        return None
    rated_event = stored(rated_event)  # the profile keeps event ids in their stored form (sizes.py)
    for contact in reversed(state.recent_contacts):
        if contact[3:] == [rated_event]:
            return str(contact[1])
    for channel, touch in state.history.get("touch", {}).items():
        if touch.get("event_id") == rated_event:
            return str(channel)
    return None


def report(windows: Windows, now_ms: int) -> dict[str, dict[str, dict[str, float | None]]]:
    """KPI values per window (``1h``, ``24h``) and channel (``all`` = overall)."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    channels = {m.split("|", 1)[0] for tier in ("5m", "1h") for b in windows.buckets.get(tier, {}).values() for m in b}
    for window in ("1h", "24h"):
        out[window] = {}
        for ch in sorted(channels):

            def q(component: str, ch: str = ch, window: str = window) -> Any:
                return windows.query(f"{ch}|{component}", window, now_ms)

            contacts, first = q("contacts"), q("first_contacts")
            handle = q("handle_s")
            ces = q("ces")
            csat_n, nps_n = q("csat_n"), q("nps_n")
            self_service = q("self_service")
            out[window][ch] = {
                "contacts": contacts,
                "fcr_pct": _pct(q("first_resolved"), first),
                "repeat_contact_pct": _pct(q("repeats"), contacts),
                "aht_s": round(handle[1] / handle[0], 1) if handle[0] else None,
                "csat_pct": _pct(q("csat_top2"), csat_n),
                "nps": round(100 * (q("nps_promoters") - q("nps_detractors")) / nps_n, 1) if nps_n else None,
                "ces": round(ces[1] / ces[0], 2) if ces[0] else None,
                "deflection_pct": _pct(self_service, self_service + contacts),
            }
    return out


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None
