"""Every list and map in a profile has a declared bound, and holds it over a long random stream.

One customer gets thousands of random events of every type -- new order and
case ids, campaign actions, attribute names, relationship types, devices,
labels, offers, flags, times jumping days ahead and back -- through the real
engine. Every list and map of the stored profile is then checked against
:data:`BOUNDS`. A container with no declared bound fails the test, so a new
list cannot slip in unbounded.
"""

from __future__ import annotations

import fnmatch
import random
from typing import Any

import pytest

from livesignals import serde
from livesignals.contract import (
    CHANNELS,
    EVENT_ID_MAX_CHARS,
    EVENT_TYPES,
    IDENTIFIER_KINDS,
    IDENTIFIER_MAX_CHARS,
    RawMessage,
)
from livesignals.errors import Origin
from livesignals.settings import Settings
from operators.decisions import policy, responses
from operators.engine import Engine
from operators.profile360 import sizes, timeline, update
from operators.profile360.profile import MAX_EVENT_IDS, CustomerState
from operators.profile360.windows import MAX_DISTINCT, METRICS, TIERS
from operators.rules import rulebook
from operators.rules.rulebook import MAX_STORED_REASON
from operators.rules.templates import MAX_REASON
from operators.scoring import behaviour, features, online
from state.memory import MAX_FLAGS_KEPT, InMemoryStore
from tests.helpers import T0, event

SETTINGS = Settings.load(env={}).replace(
    metrics_port=0, quiet_hours="0-0", contact_daily_cap=50, contact_weekly_cap=200
)
PARTITIONS = 6
SIZE = "bytes"
"""A leaf bounded by its JSON size, not by a count (attribute values, relationships)."""

BOUNDS: dict[str, int | tuple[str, int]] = {
    # path (fnmatch; * = one key or index): most entries
    "identity": 10,
    "identity.ids": len(IDENTIFIER_KINDS),
    "identity.ids.*": update.MAX_IDS_PER_KIND,
    "identity.linked": update.MAX_LINKED,
    "identity.merges": update.MAX_MERGES,
    "identity.merges.*": 3,
    "identity.attributes": update.MAX_ATTRIBUTES,
    "identity.attributes.*": (SIZE, update.MAX_ITEM_BYTES),
    "relationships": update.MAX_RELATIONSHIP_TYPES,
    "relationships.*": update.MAX_OPEN_ITEMS,
    "relationships.*.*": (SIZE, update.MAX_ITEM_BYTES),
    "activity": 10,
    "activity.viewed": update.MAX_VIEWED,
    "activity.viewed.*": 2,
    "activity.open_orders": update.MAX_OPEN_ITEMS,
    "activity.open_orders.*": 3,
    "activity.deliveries": update.MAX_OPEN_ITEMS,
    "activity.deliveries.*": 2,
    "activity.open_cases": update.MAX_OPEN_ITEMS,
    "activity.open_cases.*": 5,
    "activity.errors": update.MAX_ERRORS,
    "activity.errors.*": 3,
    "activity.cart": 4,
    "activity.cart.items": update.MAX_PRODUCTS,
    "activity.last_return": 5,
    "activity.cancelled": 2,
    "activity.open_contacts": len(CHANNELS),
    "activity.open_contacts.*": 5,
    "activity.contacts_ended": len(CHANNELS),
    "activity.contacts_ended.*": 3,
    "history": 16,
    "history.by_channel": len(CHANNELS),
    "history.by_type": len(EVENT_TYPES),
    "history.touch": len(CHANNELS),
    "history.touch.*": 5,
    "history.cases": 3,
    "history.surveys": 3,
    "history.surveys.*": 3,
    "history.campaigns": update.MAX_CAMPAIGN_ACTIONS + 1,
    "history.campaigns.last": 2,
    "history.offers": 3,
    "history.offers_by_action": features.MAX_ACTIONS_REMEMBERED,
    "history.offers_by_action.*": 2,
    "history.offer_streak": 1,
    "history.sent": policy.MAX_SENT_KEPT,
    "history.sent.*": 3,
    "history.proposed": responses.MAX_PROPOSED,
    "history.recent_flags": responses.MAX_RECENT_FLAGS,
    "history.recent_flags.*": 2,
    "value": 12,
    "value.products": update.MAX_PRODUCTS,
    "value.loyalty": 2,
    "consent": 3,
    "flags": update.MAX_FLAGS,
    "flags.*": 7,  # id, severity, reason, raised_at, expires_at, evidence, relevance
    "flags.*.evidence": rulebook.FLAG_EVIDENCE_KEPT,
    "predictions": 10,
    "predictions.recent_texts": online.MAX_RECENT_TEXTS,
    "predictions.recent_texts.*": 5,
    "predictions.recent_texts.*.3": 2,
    "predictions.churn_pending": online.ScoringConfig().max_pending,
    "predictions.churn_pending.*": 4,
    "predictions.churn_pending.*.x": len(features.CHURN_FEATURES) + len(behaviour.FIXED) + 2 * behaviour.MAX_BEHAVIOURS,
    "predictions.churn_activity": 7,  # first, last, prev, names, hits, days, quiet (silence.QUIET_KEY)
    "predictions.churn_activity.names": behaviour.MAX_BEHAVIOURS,
    "predictions.churn_activity.hits": behaviour.MAX_BEHAVIOURS,
    "predictions.churn_activity.days": behaviour.KEEP_DAYS + 1,
    "predictions.churn_activity.days.*": behaviour.MAX_BEHAVIOURS + 1,
    "predictions.churn_pending.*.p": 2,
    "predictions.offers_pending": responses.MAX_PENDING_OFFERS,
    "predictions.offers_pending.*": 7,
    "predictions.offers_pending.*.x": len(features.CHURN_FEATURES),
    "predictions.offers_pending.*.h": 2,
    "predictions.next_best_actions": 5,
    "predictions.next_best_actions.ranked": SETTINGS.nba_top_n,
    "predictions.next_best_actions.ranked.*": 4,
    "predictions.churn": 6,
    "predictions.churn.top": 3,
    "predictions.churn.top.*": 2,
    "predictions.mood": 5,
    "predictions.fraud": 6,
    "recent_contacts": update.MAX_RECENT_CONTACTS,
    "recent_contacts.*": 4,
    "applied": PARTITIONS,
    "timeline_meta": 4,  # n, ttl_day; mood_n, nba: the updates stream's marks (state.store._updates)
    "recent_ids": MAX_EVENT_IDS,
    "seen": PARTITIONS,  # one per input partition (operators.lateness)
    "seen.*": 2,
    "windows": 2,
    "windows.b": len(TIERS),
    "windows.b.*": max(keep for _, keep in TIERS.values()) + 1,
    "windows.b.*.*": len(METRICS),
    "windows.b.*.*.*": MAX_DISTINCT,
}
"""The declared bound of every container in a stored profile (``MAX_*`` constants where there is one)."""


def containers(doc: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every list and map in ``doc`` with its path (``a.b.0``)."""
    out: list[tuple[str, Any]] = []
    if isinstance(doc, dict):
        items: Any = doc.items()
    elif isinstance(doc, list):
        items = enumerate(doc)
    else:
        return out
    if path:
        out.append((path, doc))
    for key, value in items:
        child = f"{path}.{key}" if path else str(key)
        bound = bound_of(child)
        if isinstance(bound, tuple):
            out.append((child, value))  # a size-bounded leaf: not walked
        else:
            out += containers(value, child)
    return out


def bound_of(path: str) -> int | tuple[str, int] | None:
    for pattern, bound in BOUNDS.items():
        if fnmatch.fnmatchcase(path, pattern) and pattern.count(".") == path.count("."):
            return bound
    return None


def check(state: CustomerState) -> list[str]:
    """What is over its bound, or has none declared."""
    problems = []
    for path, value in containers(serde.loads(state.to_bytes())):
        bound = bound_of(path)
        if bound is None:
            if isinstance(value, (dict, list)):
                problems.append(f"{path}: no declared bound ({len(value)} entries)")
        elif isinstance(bound, tuple):
            if len(serde.dumps(value)) > bound[1]:
                problems.append(f"{path}: {len(serde.dumps(value))} bytes > {bound[1]}")
        elif isinstance(value, (dict, list)) and len(value) > bound:
            problems.append(f"{path}: {len(value)} > {bound}")
    return problems


WORDS = "parcel late refund broken thanks great awful help again where order card bill app".split()


def random_event(rng: random.Random, i: int, t: int) -> dict[str, Any]:
    """One valid event of a random type for customer c1, with fresh ids and odd values."""
    etype = rng.choice(sorted(EVENT_TYPES - {"erase"}))  # an erase empties the profile: not what this exercises
    text = " ".join(rng.choices(WORDS, k=rng.randint(1, 12)))
    p: dict[str, Any]
    if etype in ("call", "chat", "email", "sms", "social"):
        p = {
            "text": text,
            "direction": rng.choice(["inbound", "inbound", "outbound"]),
            "topic": rng.choice(["delivery", "billing", f"topic{i}"]),
            "outcome": rng.choice(["resolved", "unresolved", "escalated"]),
            "handle_time_s": rng.randint(1, 900),
            "agent_id": f"agent{rng.randint(0, 50)}",
            "queue": rng.choice(["billing", "delivery", f"q{i}"]),
        }
    elif etype == "survey":
        p = {
            "kind": rng.choice(["csat", "nps", "ces"]),
            "score": rng.randint(1, 5),
            "comment": text,
            "rates_event_id": f"e{rng.randint(0, i + 1)}",
        }
    elif etype in ("web_event", "app_event"):
        p = {
            "action": rng.choice(
                [
                    "page_view",
                    "product_view",
                    "add_to_cart",
                    "checkout_start",
                    "login",
                    "error",
                    "help_article",
                    f"custom{i}",
                ]
            ),
            "product_id": f"p{rng.randint(0, 10_000)}",
            "session_id": f"s{i // 5}",
            "error_code": f"E{i}",
        }
    elif etype in ("order", "return"):
        p = {
            "order_id": f"o{rng.randint(0, i)}",
            "amount": rng.randint(1, 5000) / 3,
            "status": rng.choice(["placed", "paid", "cancelled"] if etype == "order" else ["requested", "refunded"]),
            "items": [f"p{rng.randint(0, 10_000)}" for _ in range(rng.randint(0, 30))],
        }
    elif etype == "delivery":
        p = {
            "order_id": f"o{rng.randint(0, i)}",
            "status": rng.choice(["shipped", "in_transit", "delayed", "delivered", "failed", "returned"]),
        }
    elif etype == "ticket":
        p = {
            "case_id": f"k{rng.randint(0, i)}",
            "status": rng.choice(["opened", "updated", "resolved", "reopened"]),
            "topic": f"t{i}",
            "error_code": f"E{i}",
        }
    elif etype == "consent":
        p = {"purpose": rng.choice(["marketing", "service", "profiling"]), "granted": rng.random() < 0.8}
    elif etype == "offer_response":
        p = {
            "action": rng.choice(["retention_offer", "cross_sell", f"elsewhere{i}"]),
            "response": rng.choice(["accepted", "rejected", "ignored"]),
        }
        if rng.random() < 0.5:
            p["decision_id"] = f"d{i}"
    elif etype == "agent_feedback":
        kind = rng.choice(["sentiment", "flag", "action"])
        label = rng.choice(["negative", "neutral", "positive"] if kind == "sentiment" else ["relevant", "not_relevant"])
        p = {"target_id": f"e{rng.randint(0, i)}", "kind": kind, "label": label}
    elif etype == "profile_update":
        p = {
            "fields": {
                f"field{rng.randint(0, 80)}": rng.choice([text, i, None, [i] * rng.randint(0, 300)]),
                "timezone": rng.choice(["Europe/Athens", "Asia/Tehran", f"Nowhere/{i}", "../x"]),
            },
            "relationships": [{"type": f"rel{rng.randint(0, 40)}", "id": f"r{i}", "pad": "x" * rng.randint(0, 900)}],
        }
    elif etype == "loyalty":
        p = {"tier": rng.choice(["silver", "gold"]), "points": i}
    elif etype == "campaign":
        p = {"campaign_id": f"cmp{i}", "action": rng.choice(["opened", "clicked", f"custom{i}"])}
    else:
        p = {"reason": text}
    doc = event(etype, "c1", t, event_id=f"e{i}", **p)
    if rng.random() < 0.3:
        doc["customer"][rng.choice(["device_id", "cookie_id", "email"])] = f"x{rng.randint(0, i)}"
    return doc


def test_one_customer_s_profile_stays_within_every_declared_bound_over_a_long_random_stream():
    rng = random.Random(9)
    store = InMemoryStore()
    engine = Engine(SETTINGS, store, _Drop())
    t, offsets, batch, dead = T0, [0] * PARTITIONS, [], 0
    for i in range(3000):
        t += rng.choice([1_000, 60_000, 3_600_000, 21_600_000, -7_200_000])  # ~170 days in all
        p = rng.randrange(PARTITIONS)
        batch.append(RawMessage(serde.dumps(random_event(rng, i, t)), None, Origin("in", p, offsets[p], T0)))
        offsets[p] += 1
        if len(batch) == 200:
            report = engine.process(batch)
            dead += len(report.dead_letters)
            batch = []
            problems = check(store.states["customer_id:c1"])
            assert not problems, problems
    state = store.states["customer_id:c1"]
    assert state.events > 2900 and dead < 100  # the stream was (nearly all) valid: it exercised the profile
    assert len(state.identity["linked"]) == update.MAX_LINKED and len(state.recent_ids) == MAX_EVENT_IDS
    # the bound of its claims index ls:{<cust>}:claims (state.keys; break-test 12j, J2)
    assert state.identity.get("claims_n", 0) <= update.MAX_CLAIMS
    # the engine's own maps: one entry per partition read; per-event staging emptied after each event
    assert len(engine._partitions) <= PARTITIONS and not engine._aggregates.changes
    assert store.flags.maxlen == MAX_FLAGS_KEPT and len(store.flags) > 0


def test_a_container_without_a_declared_bound_is_reported():
    state = CustomerState("customer_id:c1", history={"brand_new_list": [1, 2, 3]})
    assert check(state) == ["history.brand_new_list: no declared bound (3 entries)"]


def test_the_time_zone_cache_is_bounded_and_odd_zones_never_raise():
    from datetime import UTC

    policy._known_zone.cache_clear()
    for i in range(3 * policy.ZONE_CACHE_SIZE):
        assert policy._zone(f"Nowhere/{i}") is UTC
    for odd in (["Europe/Athens"], {"a": 1}, 3, None, "", "\x00", "../../etc/passwd", "x" * 10_000, "America"):
        assert policy._zone(odd) is UTC
    assert policy._known_zone.cache_info().currsize <= policy.ZONE_CACHE_SIZE
    assert str(policy._zone("Asia/Tehran")) == "Asia/Tehran"


class _Drop:
    def publish(self, records: list[Any]) -> None:
        """Drop the records."""


# --- bytes: every string has a byte bound, so the document has one -----------------------

WIDE = "\U0001d4c1"
"""A character of 4 bytes in UTF-8: the most bytes a string of the contract's length can hold."""

STRING_BYTES: dict[str, int] = {
    # path (fnmatch) of strings allowed beyond sizes.MAX_STORED_BYTES, and their bound
    "identity.ids.*.*": 4 * IDENTIFIER_MAX_CHARS,  # customer identifiers: kept whole (they key profiles)
    "identity.linked.*": 16 + 4 * IDENTIFIER_MAX_CHARS,  # kind:value
    "flags.*.reason": 4 * MAX_STORED_REASON,
    "flags.*.evidence.*": 4 * rulebook.MAX_STORED_EVIDENCE,
    "predictions.next_best_actions.ranked.*.3": 4 * MAX_REASON,  # the reasons of the top 3 actions
    "predictions.recent_texts.*.2": 4 * online.TEXT_CHARS,
    "predictions.recent_texts.*.0": 4 * EVENT_ID_MAX_CHARS,  # whole: labels name the event it rates
    "identity.attributes": 4 * update.MAX_KEY_CHARS,  # the names of attributes (values: sized leaves)
    "relationships": 4 * 64,  # relationship types (the schema's maxLength)
}
"""Strings (values, and keys of the maps named) that may be longer than ``MAX_STORED_BYTES``."""


def long_strings(doc: Any, path: str = "") -> list[str]:
    """Strings in ``doc`` over their byte bound (sized leaves are not walked)."""
    problems = []
    items: Any = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        child = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and json_bytes(key) > _string_bound(path):
            problems.append(f"{child}: key of {json_bytes(key)} bytes")
        if isinstance(bound_of(child), tuple):
            continue
        if isinstance(value, str) and json_bytes(value) > _string_bound(child):
            problems.append(f"{child}: {json_bytes(value)} bytes")
        problems += long_strings(value, child)
    return problems


def json_bytes(text: str) -> int:
    """Bytes ``text`` takes in the stored JSON (a C0 control is a 6-byte escape), quotes excluded."""
    return len(serde.dumps(text)) - 2


def _string_bound(path: str) -> int:
    for pattern, bound in STRING_BYTES.items():
        if fnmatch.fnmatchcase(path, pattern) and pattern.count(".") == path.count("."):
            return bound
    return sizes.MAX_STORED_BYTES


CONTROL = "\x1f"
"""A character JSON writes in 6 bytes (``\\u001f``): more than any UTF-8 character (issue #9)."""


def wide(n: int, i: int, rng: random.Random, char: str = WIDE) -> str:
    """A unique string of ``n`` characters, nearly all ``char`` (4 bytes, or a 6-byte escape)."""
    return (f"{i}-{rng.randrange(10**9)}-" + char * n)[:n]


def hostile_event(rng: random.Random, i: int, t: int, char: str = WIDE) -> dict[str, Any]:
    """A valid event whose every string is as long (in bytes) as the contract lets it be, and new;
    ``char`` fills the labels and texts (identifiers stay ``WIDE``: a control makes them invalid)."""
    doc = random_event(rng, i, t)
    p = doc["payload"]
    for name, limit in (("topic", 128), ("error_code", 128), ("reason", 256), ("tier", 64),
                        ("lang", 16), ("url", 2048)):  # fmt: skip
        if name in p or rng.random() < 0.3:
            p[name] = wide(limit, i, rng, char if name != "lang" else WIDE)
    for name in ("order_id", "case_id", "product_id", "session_id", "campaign_id", "rates_event_id", "target_id"):
        if name in p:
            p[name] = wide(128, i, rng)
    if "action" in p and rng.random() < 0.5:
        p["action"] = wide(64, i, rng, char)
    if "items" in p:
        p["items"] = [wide(128, i, rng) for _ in p["items"]]
    if "text" in p or "comment" in p:
        p["text" if "text" in p else "comment"] = wide(13_000 if char == WIDE else 8_000, i, rng, char)  # <64 KB
    if "fields" in p:
        p["fields"] = {wide(64, j, rng): wide(120, i, rng, char) for j in range(3)}
    doc["event_id"] = wide(128, i, rng)
    doc["customer"] = {"customer_id": "c1", rng.choice(["device_id", "cookie_id", "email"]): wide(256, i, rng)}
    return doc


@pytest.mark.parametrize("char", [WIDE, CONTROL], ids=["wide", "control"])
def test_every_string_of_a_profile_has_a_byte_bound_and_the_document_stays_under_max_profile_bytes(char):
    """Bounds in bytes of the stored JSON: 4-byte characters, and controls JSON escapes in 6 (issue #9)."""
    rng = random.Random(11)
    store = _TimelineStore()
    engine = Engine(SETTINGS.replace(max_future_skew_s=10**9), store, _Drop())
    t, batch, dead, peak = T0, [], 0, 0
    for i in range(1500):
        t += rng.choice([1_000, 60_000, 3_600_000, -600_000])
        batch.append(RawMessage(serde.dumps(hostile_event(rng, i, t, char)), None, Origin("in", 0, i, T0)))
        if len(batch) == 100:
            report = engine.process(batch)
            dead += len(report.dead_letters)
            batch = []
            state = store.states["customer_id:c1"]
            peak = max(peak, len(state.to_bytes()))
            problems = long_strings(serde.loads(state.to_bytes())) + check(state)
            assert not problems, problems[:10]
    assert dead < 150, "the stream was (nearly all) valid"
    assert peak <= sizes.MAX_PROFILE_BYTES, f"{peak} bytes"
    longest = max(len(member) for member in store.timeline_entries)
    assert longest <= timeline.MAX_ENTRY_BYTES, f"a timeline entry of {longest} bytes"


class _TimelineStore(InMemoryStore):
    """The in-memory store, keeping the timeline entries it is given (it drops them otherwise)."""

    def __init__(self) -> None:
        super().__init__()
        self.timeline_entries: list[bytes] = []

    def commit(self, states: Any, flags: Any, offsets: Any, partitions: Any = None, notify: bool = True) -> None:
        """Record the new timeline entries, then commit as the in-memory store does."""
        states = list(states)
        for state in states:
            self.timeline_entries += [member for _, member in state.new_timeline]
        super().commit(states, flags, offsets, partitions, notify)


def test_a_timeline_summary_is_cut_to_its_byte_bound_without_controls():
    """Issue #9: a web_event's 2048-character URL of 4-byte characters, or a snippet of controls."""
    from livesignals.contract import Event

    url = Event("e1", "web_event", "web", {"customer_id": "c1"}, 0, {"action": "view", "url": WIDE * 2048},
                Origin("in", 0, 0, T0))  # fmt: skip
    chat = Event("e2", "chat", "chat", {"customer_id": "c1"}, 0, {"text": "\x01" * 5000, "topic": "\x1f" * 16},
                 Origin("in", 0, 1, T0))  # fmt: skip
    for ev in (url, chat):
        line = timeline.summary(ev)
        assert len(line.encode()) <= timeline.MAX_SUMMARY_BYTES and line.isprintable()
        assert len(timeline.entry(ev, 0.5)) <= timeline.MAX_ENTRY_BYTES
    assert timeline.summary(url).endswith("…")


def test_the_text_token_cache_is_bounded_by_text_length_too():
    from models import text

    text._cached_clauses.cache_clear()
    for i in range(3 * text.CACHE_LONG_TEXTS):
        assert text.tokens(f"{i} " + "parcel late " * 2000)[0] == str(i)  # 24,000 characters each
    for i in range(50):
        text.tokens(f"short text {i}")
    assert text._long_clauses.cache_info().currsize == text.CACHE_LONG_TEXTS
    assert (
        text._short_clauses.cache_info().currsize == 50 and text._short_clauses.cache_info().maxsize == text.CACHE_TEXTS
    )
