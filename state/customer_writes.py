"""What one customer's commit writes beside its profile: its timeline entries and its desks' updates.

Planned by :meth:`state.store.ProfileStore.plan` (CPU only, no round trip): each function returns the writes as
``(command, *arguments)`` tuples and moves the marks it keeps in the profile's ``timeline_meta``.
"""

from __future__ import annotations

import zlib
from typing import Any

from livesignals import documents, serde
from operators.profile360.profile import CustomerState
from state import entry_contacts


def update_writes(state: CustomerState, stream: str, maxlen: int) -> list[tuple[Any, ...]]:
    """XADD to ``{ls:flags}:updates`` (``stream``) when the customer's mood or next-best-action decision changed
    since the last one written (for desktops: gateway.push). What was written last is kept in the profile's
    ``timeline_meta`` (``mood_n``: the mood's count of texts; ``nba``: CRC-32 of the decision id), so it
    is exact across batches, caches and restarts, and written in the same commit as the profile."""
    meta, p, ops = state.timeline_meta, state.predictions, []
    decision = (p.get("next_best_actions") or {}).get("decision_id", "")
    changes = (("mood", "mood_n", (p.get("mood") or {}).get("n", 0)),
               ("next_best_actions", "nba", zlib.crc32(decision.encode()) if decision else 0))  # fmt: skip
    for kind, mark, now in changes:
        if now and meta.get(mark, 0) != now:
            meta[mark] = now
            doc = serde.dumps({"customer": state.customer_key, "kind": kind, kind: p[kind]})
            fields = {
                "customer": state.customer_key,
                "kind": kind,
                "doc": doc,
                entry_contacts.FIELD: entry_contacts.encode(state.activity.get("open_contacts", {})),
            }
            ops.append(("xadd", stream, fields, "*", maxlen, True))
    return ops


def timeline_writes(
    state: CustomerState, key: str, form: documents.Compression, max_entries: int, max_age_days: int
) -> list[tuple[Any, ...]]:
    """ZADD the batch's entries to the timeline ``key``; trim and refresh the TTL only when needed.

    ``meta["n"]`` bounds the entries from above (a replay re-adds existing
    members), so the rank trim runs whenever the real count exceeds the
    maximum: the key always ends with exactly the newest entries. The TTL
    (maximum age + 1 day) is refreshed once per event day, so no entry
    expires before the maximum age.
    """
    meta = state.timeline_meta
    ops: list[tuple[Any, ...]] = [
        ("zadd", key, {documents.encode(member, form, "timeline"): t for t, member in state.new_timeline})
    ]
    meta["n"] = meta.get("n", 0) + len(state.new_timeline)
    if meta["n"] > max_entries:
        ops.append(("zremrangebyrank", key, 0, -max_entries - 1))
        meta["n"] = max_entries
    newest = max(t for t, _ in state.new_timeline)
    day = newest // 86_400_000
    if meta.get("ttl_day") != day:
        ops.append(("zremrangebyscore", key, "-inf", f"({newest - max_age_days * 86_400_000}"))
        ops.append(("expire", key, (max_age_days + 1) * 86_400))
        meta["ttl_day"] = day
    return ops
