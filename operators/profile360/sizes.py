"""Byte bounds on what a profile stores: every list has an entry bound, every string a byte bound.

Entry bounds alone let a profile reach about 530 KB (long labels, ids and
texts within the contract's limits, in every slot), and the undo record of
atomic apply encodes the profile once per event. So the 360 update stores the
*stored form* of an event (:func:`stored_event`): each payload string it keeps
(topics, outcomes, statuses, reasons, error codes, action names, order, case,
product and campaign ids, the event id) is at most :data:`MAX_STORED_BYTES`
bytes of UTF-8 -- a longer one becomes its first bytes, ``~`` and a digest of
the whole (:func:`stored`), so two long ids that differ stay two ids and the
same long id always maps to the same stored form. Free text (``text``,
``comment``) is not stored in the profile (the timeline keeps a snippet,
``predictions.recent_texts`` 200 characters); customer identifiers are kept
whole (they key other customers' profiles); session and product ids in windows
are kept as digests (only counted; the products themselves: ``activity.viewed``).
Every string the profile stores also loses its control characters (C0, DEL, C1:
:func:`printable`): JSON writes a C0 control as a 6-byte ``\\u001f`` escape, which
would break the "at most 4 bytes a character" arithmetic of :mod:`state.keys`
(a flags section of ``\x1f`` reasons reached 122.5 KB against its 100 KB).
With the entry bounds of :mod:`state.keys` this gives the worst case
:data:`MAX_PROFILE_BYTES`, checked by ``tests/unit/test_bounds.py`` against an
adversarial stream.

>>> stored("o-42")
'o-42'
>>> long = stored("o" * 200)
>>> len(long.encode()) <= MAX_STORED_BYTES, long == stored("o" * 200), long != stored("o" * 199 + "p")
(True, True, True)
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

from livesignals.contract import Event

MAX_STORED_BYTES = 64
"""Longest payload string a profile stores, in UTF-8 bytes (longer ones: prefix ``~`` digest)."""
MAX_PROFILE_BYTES = 384 * 1024
"""Worst-case size of one stored profile document (``ls:{<cust>}:profile``), in bytes: the sum
of the per-section worst cases in :mod:`state.keys` (about 365 KB)."""
FREE_TEXT = frozenset({"text", "comment"})
"""Payload fields of free text: scored, never stored whole in the profile."""
_DIGEST_HEX = 16
_PREFIX_BYTES = MAX_STORED_BYTES - _DIGEST_HEX - 1
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
"""C0 controls (JSON escapes most as 6 bytes), DEL and C1 controls: never stored."""


def printable(text: str) -> str:
    """``text`` without control characters, so that JSON writes every stored character in at most
    4 bytes (a C0 control would take 6, ``\\u001f``); one C call when there is none.

    >>> printable("late\\x1f\\x00 order\\x85")
    'late order'
    """
    return text if text.isprintable() else _CONTROL.sub("", text)


def stored(value: str) -> str:
    """``value`` in at most :data:`MAX_STORED_BYTES` bytes, without control characters, distinct
    long values kept distinct (the digest is of the value as sent)."""
    clean = printable(value)
    if len(clean) <= MAX_STORED_BYTES // 4:
        return clean  # at most 4 bytes a character
    raw = clean.encode()
    if len(raw) <= MAX_STORED_BYTES:
        return clean
    head = raw[:_PREFIX_BYTES].decode("utf-8", "ignore")
    whole = value.encode("utf-8", "surrogatepass")
    return f"{head}~{hashlib.blake2b(whole, digest_size=_DIGEST_HEX // 2).hexdigest()}"


def digest(value: str) -> str:
    """An 8-hex-digit digest, for values that are only counted (sessions and products in windows:
    at most 32 per bucket, so two colliding is a one-in-ten-million event).

    >>> digest("session-1")
    'eb5242e6'
    """
    return hashlib.blake2b(value.encode(), digest_size=4).hexdigest()


def stored_event(event: Event) -> Event:
    """The event as the 360 stores it (see the module docstring); ``event`` itself if nothing is long."""
    payload = event.payload
    changed: dict[str, Any] | None = None
    for name, value in payload.items():
        if name in FREE_TEXT:
            continue
        short: Any = value
        if isinstance(value, str) and (len(value) > MAX_STORED_BYTES // 4 or not value.isprintable()):
            short = stored(value)
        elif name == "items" and isinstance(value, list):
            short = [_item(i) for i in value]
        if short is not value and short != value:
            changed = changed if changed is not None else dict(payload)
            changed[name] = short
    event_id = stored(event.event_id)
    if changed is None and event_id == event.event_id:
        return event
    return dataclasses.replace(event, event_id=event_id, payload=payload if changed is None else changed)


def _item(item: Any) -> Any:
    if isinstance(item, str):
        return stored(item)
    if isinstance(item, dict) and isinstance(item.get("product_id"), str):
        return {"product_id": stored(item["product_id"])}  # the 360 keeps product ids only
    return item
