"""Read the live picture: a customer's 360, the contact-centre KPIs, the voice of the customer.

This is what an agent desktop, a bot or a CRM sync calls when a conversation
starts. The 360 merges, at read time, the anonymous profiles linked to the
customer (a device that browsed before logging in), unless an identifier is
shared by several customers. Each call costs two or three Redis round trips.
"""

from __future__ import annotations

import time
from typing import Any

from livesignals import serde
from operators.partition import PartitionAggregates
from operators.profile360 import kpis, views, voc
from operators.profile360.identity import is_shared, merge_linked
from operators.profile360.profile import CustomerState
from state.keys import Keys
from state.models_store import RedisModelLog

TIMELINE_SHOWN = 50


def read_360(
    client: Any,
    keys: Keys,
    customer_key: str,
    now_ms: int | None = None,
    channel: str | None = None,
    timeline: int = TIMELINE_SHOWN,
) -> dict[str, Any]:
    """The customer's 360: sections, three tenses, windows and the latest timeline.

    ``channel`` is where the customer is contacting us now, if known (it
    decides which earlier touch "carries context").
    """
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    pipe.get(keys.profile(customer_key))
    pipe.zrevrange(keys.timeline(customer_key), 0, timeline - 1)
    row, entries = pipe.execute()
    state = CustomerState.from_bytes(customer_key, row)
    linked = state.identity.get("linked", [])
    merged, shared = _merge_linked(client, keys, state, linked, timeline)
    entries = _merge_timelines(entries, merged, timeline)
    return {
        "customer": customer_key,
        "known": bool(row),
        "as_of": now_ms,
        "identity": {**state.identity, "merged": sorted(merged), "shared_identifiers": shared},
        "relationships": state.relationships,
        "activity": state.activity,
        "history": state.history,
        "value": {**state.value, **views.rfm(state, now_ms), "lifetime_value": views.lifetime_value(state, now_ms)},
        "consent": state.consent,
        "flags": state.flags,
        "predictions": state.predictions,
        "past": views.past(state, now_ms),
        "present": views.present(state, now_ms, channel),
        "future": views.future(state),
        "windows": state.windows.summary(now_ms),
        "timeline": [serde.loads(e) for e in entries],
    }  # fmt: skip


def _merge_linked(
    client: Any, keys: Keys, state: CustomerState, linked: list[str], timeline: int
) -> tuple[dict[str, list[bytes]], list[str]]:
    if not linked:
        return {}, []
    pipe = client.pipeline(transaction=False)
    for identifier in linked:
        pipe.smembers(keys.owners(identifier))
        pipe.get(keys.profile(identifier))
        pipe.zrevrange(keys.timeline(identifier), 0, timeline - 1)
    rows = pipe.execute()
    merged: dict[str, list[bytes]] = {}
    shared: list[str] = []
    for i, identifier in enumerate(linked):
        owners, profile, entries = rows[3 * i : 3 * i + 3]
        if is_shared(owners):
            shared.append(identifier)
            continue
        if profile:
            merge_linked(state, CustomerState.from_bytes(identifier, profile))
        merged[identifier] = entries
    return merged, shared


def _merge_timelines(own: list[bytes], merged: dict[str, list[bytes]], limit: int) -> list[bytes]:
    if not merged:
        return own
    by_id = {}
    for raw in [*own, *(e for entries in merged.values() for e in entries)]:
        doc = serde.loads(raw)
        by_id[doc["id"]] = (doc["t"], raw)
    return [raw for _, raw in sorted(by_id.values(), key=lambda v: -v[0])][:limit]


def _partition_aggregates(client: Any, keys: Keys) -> PartitionAggregates:
    total = PartitionAggregates()
    names = list(client.scan_iter(keys.partition_pattern(), count=1000))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hmget(name, "kpi", "voc")  # only what KPIs need: no model, no due index
    for kpi, voc_row in pipe.execute():
        part = PartitionAggregates.from_fields({k: v for k, v in ((b"kpi", kpi), (b"voc", voc_row)) if v})
        total.kpi.merge(part.kpi)
        total.voc.merge(part.voc)
    return total


def read_models(client: Any, keys: Keys) -> list[dict[str, Any]]:
    """Every model's version and validation figures, one row per model and role (the models are
    shared by every partition: :mod:`operators.scoring.learner`). Reads a JSON summary, no pickle."""
    return [{"config": "shared", **row} for row in RedisModelLog(client, keys.prefix).summary()]


def read_kpis(client: Any, keys: Keys, now_ms: int | None = None) -> dict[str, Any]:
    """Contact-centre KPIs for the last hour and day, per channel and overall."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    return kpis.report(_partition_aggregates(client, keys).kpi, now_ms)


def read_voc(client: Any, keys: Keys, now_ms: int | None = None, top: int = 10) -> dict[str, Any]:
    """Terms and topics rising in complaints: the last hour against the day."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    return voc.rising(_partition_aggregates(client, keys).voc, now_ms, top)


__all__ = ["read_360", "read_kpis", "read_voc"]
