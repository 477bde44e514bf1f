"""Timeline entries: every interaction, in a line an agent can read.

The timeline is the system of record of the customer's interactions (issue 3).
An entry is compact JSON: event id, time, type, channel, a one-line summary
and the outcome if any. Entries are deterministic (same event, same bytes),
so re-adding one on replay is a no-op in a Redis sorted set.

Bytes: the summary is at most :data:`MAX_SUMMARY_BYTES` of UTF-8, without
control characters (a longer one is cut, ending in ``…``); the id and outcome
are the 360's stored forms (``sizes.MAX_STORED_BYTES``), so an entry is at most
:data:`MAX_ENTRY_BYTES` and a customer's timeline at most
``timeline_max_entries`` of them (``state/keys.py``).
"""

from __future__ import annotations

from typing import Any

from livesignals import serde
from livesignals.contract import Event
from operators.profile360.sizes import MAX_STORED_BYTES, printable

SNIPPET_CHARS = 120
MAX_SUMMARY_BYTES = 640
"""Longest summary an entry keeps, in UTF-8 bytes: a 120-character snippet of 4-byte characters
with its prefix and topic fits; a 2048-character URL of them (8 KB) does not."""
MAX_ENTRY_BYTES = 1024
"""Longest timeline entry, in bytes of JSON: the summary, the stored id and outcome (64 bytes each),
type, channel, time, sentiment and the keys; ``tests/unit/test_bounds.py`` checks it."""


def summary(event: Event) -> str:
    """One line that says what happened, at most :data:`MAX_SUMMARY_BYTES` bytes.

    >>> from livesignals.errors import Origin
    >>> e = Event("e1", "delivery", "backoffice", {"customer_id": "c1"}, 0,
    ...           {"order_id": "o9", "status": "delayed"}, Origin("t", 0, 0))
    >>> summary(e)
    'delivery of order o9: delayed'
    """
    return _clip_bytes(printable(_line(event)), MAX_SUMMARY_BYTES)


def _line(event: Event) -> str:
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
        doc["outcome"] = _clip_bytes(printable(str(event.payload["outcome"])), MAX_STORED_BYTES)
    if sentiment is not None:
        doc["sentiment"] = round(sentiment, 2)
    return serde.dumps(doc)


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


def _clip_bytes(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` bytes of UTF-8, ending in ``…`` when cut.

    >>> _clip_bytes("\U0001d4c1" * 3, 9)
    '\U0001d4c1…'
    """
    if len(text) <= limit // 4:
        return text  # at most 4 bytes a character: it fits (most summaries)
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", "ignore") + "…"
