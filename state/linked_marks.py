"""How the 360 marks what it takes from a customer's linked identifiers (a device, a cookie): such an identifier
is no credential, so whoever holds the device id or a copy of the cookie may have written what its profile holds
(break-tests 12f F7, 12g G1, 12h H4). Used by :func:`state.reader.view_360`."""

from __future__ import annotations

from typing import Any

from livesignals import serde
from operators.profile360.profile import CustomerState


def own_reasons_first(
    present: dict[str, Any], own: list[dict[str, Any]], own_keys: set[bytes], origin: dict[bytes, str]
) -> None:
    """``present``'s reasons: the customer's own (``own``, from its own state) first, then those the merge of
    linked identifiers added or changed, marked ``via`` (their kind, from ``origin``). A linked touch that is
    newer on a channel replaces the customer's touch in the merged state, so a linked "resolved" chat hid the
    customer's own escalated one (break-test 12h, H4)."""
    added = []
    for reason in present["reasons"]:
        key = serde.dumps(reason)
        if key not in own_keys:
            added.append({**reason, "via": origin.get(key, "linked")})
    reasons = [*own, *added]
    present["reasons"], present["why_now"] = reasons, (reasons[0] if reasons else None)


def mark_touches(state: CustomerState, other: CustomerState, kind: str) -> None:
    """Mark the channel touches the merge took from ``other`` (a linked identifier of ``kind``)."""
    touches, theirs = state.history.get("touch", {}), other.history.get("touch", {})
    for channel, touch in list(touches.items()):
        if touch is theirs.get(channel):
            touches[channel] = {**touch, "via": kind}
