"""Timeline entries: every interaction, in a line an agent can read.

The timeline is the system of record of the customer's interactions (issue 3).
An entry is compact JSON: event id, time, type, channel, a one-line summary
and the outcome if any. Entries are deterministic (same event, same bytes),
so re-adding one on replay is a no-op in a Redis sorted set.
"""

from __future__ import annotations

from typing import Any

from livesignals import serde
from livesignals.contract import Event

SNIPPET_CHARS = 120


def summary(event: Event) -> str:
    """One line that says what happened.

    >>> from livesignals.errors import Origin
    >>> e = Event("e1", "delivery", "backoffice", {"customer_id": "c1"}, 0,
    ...           {"order_id": "o9", "status": "delayed"}, Origin("t", 0, 0))
    >>> summary(e)
    'delivery of order o9: delayed'
    """
    p = event.payload
    t = event.type
    if event.is_contact:
        parts = [p.get("direction", "inbound"), t]
        if p.get("topic"):
            parts.append(f"about {p['topic']}")
        line = " ".join(parts)
        if p.get("text"):
            line += f": {_snippet(p['text'])}"
        return line
    if t == "survey":
        line = f"{p['kind']} survey: {p['score']:g}"
        return f"{line}: {_snippet(p['comment'])}" if p.get("comment") else line
    if t in ("web_event", "app_event"):
        detail = p.get("product_id") or p.get("error_code") or p.get("url") or ""
        return f"{p['action']} {detail}".strip()
    if t in ("order", "return"):
        money = f"{p['amount']:.2f} {p.get('currency', '')}".strip()
        return f"{t} {p['order_id']} {p.get('status', 'placed')}: {money}"
    if t == "delivery":
        return f"delivery of order {p['order_id']}: {p['status']}"
    if t == "ticket":
        return f"case {p['case_id']} {p['status']}" + (f": {p['topic']}" if p.get("topic") else "")
    if t == "consent":
        return f"{p['purpose']} consent {'granted' if p['granted'] else 'withdrawn'}"
    if t == "offer_response":
        return f"offer {p.get('action', '')} {p['response']}".replace("  ", " ")
    if t == "campaign":
        return f"campaign {p.get('campaign_id', '')} {p.get('action', '')}".strip()
    if t == "loyalty":
        return f"loyalty {p.get('tier', '')} {p.get('points', '')} points".replace("  ", " ")
    if t == "cancellation":
        return f"cancellation: {p.get('reason', 'no reason given')}"
    return t.replace("_", " ")


def entry(event: Event, sentiment: float | None = None) -> bytes:
    """The timeline member for ``event`` (its score is the event time), with the
    text's sentiment when it was scored."""
    doc: dict[str, Any] = {
        "id": event.event_id, "t": event.event_time_ms, "type": event.type,
        "ch": event.channel, "s": summary(event),
    }  # fmt: skip
    if event.payload.get("outcome"):
        doc["outcome"] = event.payload["outcome"]
    if sentiment is not None:
        doc["sentiment"] = round(sentiment, 2)
    return serde.dumps(doc)


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"
