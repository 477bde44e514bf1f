"""Generators of hostile input for the property tests and ``bench.fuzz``.

Two forms of the same idea: hypothesis strategies (shrinking, for the test
suite) and a seeded :class:`random.Random` mutator (cheap, for the millions of
executions of ``bench.fuzz``). Both start from valid events of every type and
break them: any JSON in any envelope or payload field, odd identifiers,
byte-level damage, and the poison corpus itself.
"""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import strategies as st

from livesignals import serde
from livesignals.contract import CHANNELS, EVENT_TYPES, Event
from livesignals.errors import InvalidEvent, Reason
from livesignals.identifiers import normalise_identifier
from operators.ports import OutRecord
from operators.profile360 import views
from operators.profile360.profile import CustomerState
from operators.report import BatchReport
from tests.helpers import T0, event
from tests.poison import CORPUS

TEMPLATES: tuple[dict[str, Any], ...] = (
    event("chat", text="my order never came, this is awful", topic="delivery", outcome="unresolved",
          handle_time_s=120, lang="en"),
    event("call", text="thanks, all sorted", outcome="resolved", direction="inbound"),
    event("email", text="cancel my subscription now", direction="outbound"),
    event("survey", kind="csat", score=1, comment="terrible", rates_event_id="e-c1-1767225600000-chat"),
    event("survey", kind="nps", score=10),
    event("web_event", action="add_to_cart", product_id="p1", session_id="s1"),
    event("app_event", action="error", error_code="E42"),
    event("order", order_id="o1", amount=99.5, currency="EUR", items=["p1", {"product_id": "p2"}]),
    event("return", order_id="o1", amount=20, reason="broken"),
    event("delivery", order_id="o1", status="delayed"),
    event("ticket", case_id="k1", status="opened", topic="billing"),
    event("loyalty", tier="gold", points=1200),
    event("campaign", campaign_id="cmp1", action="clicked"),
    event("profile_update", fields={"timezone": "Europe/Paris", "city": "Lyon"},
          relationships=[{"type": "household", "id": "c2"}]),
    event("consent", purpose="marketing", granted=False),
    event("cancellation", reason="too expensive"),
    event("offer_response", decision_id="d1", action="discount_10", response="accepted"),
    event("agent_feedback", target_id="e1", kind="sentiment", label="negative"),
    event("agent_feedback", target_id="f1", kind="flag", label="not_relevant"),
    {**event("chat", text="hi"), "customer": {"email": "a@b.c", "device_id": "d1", "cookie_id": "k1"}},
)  # fmt: skip
"""A valid event of every type (and an anonymous one with several identifiers)."""

FIELDS = ("schema_version", "event_id", "type", "channel", "customer", "event_time", "payload")
PAYLOAD_FIELDS = (
    "text", "comment", "topic", "lang", "action", "product_id", "session_id", "error_code", "url", "outcome",
    "status", "kind", "response", "direction", "amount", "handle_time_s", "score", "points", "granted", "order_id",
    "case_id", "campaign_id", "decision_id", "rates_event_id", "target_id", "label", "currency", "reason", "tier",
    "fields", "relationships", "items", "timezone", "purpose", "extra",
)  # fmt: skip
ODD_TEXT = ("", " ", "\x00", "\n", "\u200b", "\u200f", "\u202e", "\ufeff", "\u00a0", "e\u0301", "\ud7ff",
            "Europe/Paris", "../../etc", "{x}", "%s", "Negative", "NaN", "1e999", "a" * 300)  # fmt: skip

# --- hypothesis ---------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40), st.sampled_from(ODD_TEXT),
)  # fmt: skip
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


@st.composite
def event_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with zero to three fields replaced by any JSON (envelope, customer or payload)."""
    doc = json.loads(json.dumps(draw(st.sampled_from(TEMPLATES))))
    doc["customer"] = {"customer_id": draw(st.sampled_from(("c1", "c2", "c3")))}
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(("envelope", "payload", "payload", "customer", "fields")))
        value = draw(json_values)
        if where == "envelope":
            doc[draw(st.sampled_from(FIELDS))] = value
        elif where == "customer" and isinstance(doc.get("customer"), dict):
            doc["customer"][draw(st.sampled_from(("customer_id", "email", "device_id")))] = value
        elif where == "fields" and isinstance(doc.get("payload"), dict):
            doc["payload"]["fields"] = {"timezone": value}
        elif isinstance(doc.get("payload"), dict):
            doc["payload"][draw(st.sampled_from(PAYLOAD_FIELDS))] = value
    return doc


def encode(doc: Any) -> bytes:
    """JSON bytes of anything hypothesis builds (Python's encoder: integers of any size)."""
    return json.dumps(doc, ensure_ascii=False).encode()


@st.composite
def messages(draw: st.DrawFn) -> bytes | None:
    """One raw message: a damaged event, damaged bytes, or a poison of the corpus."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.sampled_from(CORPUS)).value
    raw = encode(draw(event_docs()))
    if kind == 1:
        i = draw(st.integers(0, len(raw)))
        return raw[:i] + draw(st.binary(max_size=8)) + raw[i + draw(st.integers(0, 8)) :]
    return raw


# --- the fast mutator of bench.fuzz ----------------------------------------------


class Mutator:
    """Seeded hostile messages, fast enough for millions of executions."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.templates = [serde.dumps(t) for t in TEMPLATES]
        self.poison = [p.value for p in CORPUS if p.value is None or len(p.value) < 100_000]

    def value(self, depth: int = 0) -> Any:
        """Any JSON value."""
        r = self.rng
        k = r.randrange(9 if depth < 3 else 6)
        if k == 0:
            return None
        if k == 1:
            return r.random() < 0.5
        if k == 2:
            return r.choice((0, -1, 2**63, 2**64 - 1, 10**30, r.randrange(-(10**6), 10**6), T0))
        if k == 3:
            return r.choice((0.5, -1e308, 1e308, 1e-300, 9.99, 10.01, float(T0)))
        if k == 4:
            return r.choice(ODD_TEXT)
        if k == 5:
            return "".join(chr(r.randrange(0, 0x3000)) for _ in range(r.randrange(0, 8)))
        if k in (6, 7):
            return [self.value(depth + 1) for _ in range(r.randrange(0, 4))]
        return {r.choice(PAYLOAD_FIELDS): self.value(depth + 1) for _ in range(r.randrange(0, 4))}

    def doc(self) -> dict[str, Any]:
        """A valid event with up to three fields replaced by any JSON."""
        r = self.rng
        doc = serde.loads(r.choice(self.templates))
        doc["customer"] = {"customer_id": f"c{r.randrange(50)}"}
        doc["event_id"] = f"e{r.randrange(10**9)}"
        doc["event_time"] = T0 + r.randrange(0, 30 * 86_400_000)
        for _ in range(r.choice((0, 0, 0, 1, 1, 2, 3))):
            where = r.randrange(4)
            if where == 0:
                doc[r.choice(FIELDS)] = self.value()
            elif where == 1 and isinstance(doc.get("customer"), dict):
                doc["customer"][r.choice(("customer_id", "email", "phone"))] = self.value()
            elif isinstance(doc.get("payload"), dict):
                doc["payload"][r.choice(PAYLOAD_FIELDS)] = self.value()
        return doc

    def message(self) -> bytes | None:
        """One raw message: mostly damaged events, some byte-damaged, some poison."""
        r = self.rng
        k = r.randrange(10)
        if k == 0:
            return r.choice(self.poison)
        raw = json.dumps(self.doc()).encode()
        if k == 1:
            i = r.randrange(len(raw) + 1)
            return raw[:i] + r.randbytes(r.randrange(0, 6)) + raw[i + r.randrange(0, 6) :]
        return raw


# --- the properties ------------------------------------------------------------------

STRINGS = ("text", "comment", "topic", "lang", "action", "url", "outcome", "status", "kind", "response", "label",
           "order_id", "case_id", "decision_id", "rates_event_id", "target_id", "product_id", "session_id")  # fmt: skip
NUMBERS = ("amount", "handle_time_s", "score", "points")
SCALAR = (str, int, float, bool, type(None))


def check_event(e: Event) -> None:
    """What the engine relies on for an accepted event (AssertionError if not)."""
    assert e.type in EVENT_TYPES and e.channel in CHANNELS
    assert isinstance(e.event_time_ms, int) and 0 <= e.event_time_ms <= 253402300799999
    for value in (e.event_id, *e.ids.values()):
        assert normalise_identifier(value) == value and value.isprintable()
    p = e.payload
    for name in STRINGS:
        assert name not in p or isinstance(p[name], str), name
    for name in NUMBERS:
        assert name not in p or (isinstance(p[name], int | float) and not isinstance(p[name], bool)), name
    fields = p.get("fields", {})
    assert isinstance(fields, dict) and all(isinstance(v, SCALAR) for v in fields.values())
    assert "timezone" not in fields or isinstance(fields["timezone"], str)


def check_rejection(exc: InvalidEvent) -> None:
    """A rejection names a reason and a bounded detail."""
    assert isinstance(exc.reason, Reason) and exc.detail and len(exc.detail) <= 1000


class ListPublisher:
    """Keeps what the engine publishes (the engine's publisher protocol, in memory)."""

    def __init__(self) -> None:
        self.records: list[OutRecord] = []

    def publish(self, records: list[OutRecord]) -> None:
        """Keep ``records``."""
        self.records.extend(records)


def check_report(report: BatchReport, n_messages: int) -> None:
    """Every message applied, skipped as a replay or a duplicate, or dead-lettered with a reason -- exactly one."""
    assert report.applied + report.replay_skipped + report.duplicates + len(report.dead_letters) == n_messages
    assert len({d.origin for d in report.dead_letters}) == len(report.dead_letters), "one verdict per message"
    for d in report.dead_letters:
        assert isinstance(d.reason, Reason) and d.detail
        assert d.reason != Reason.PROCESSING_ERROR, f"decode let through what the engine cannot apply: {d.detail}"


def the_360(state: CustomerState, now_ms: int) -> bytes:
    """The 360 views of a state read back from its stored bytes, as JSON (what ``read_360`` builds)."""
    state = CustomerState.from_bytes(state.customer_key, state.to_bytes())
    doc = {
        "identity": state.identity, "relationships": state.relationships, "activity": state.activity,
        "history": state.history, "value": {**state.value, **views.rfm(state, now_ms)},
        "lifetime_value": views.lifetime_value(state, now_ms), "consent": state.consent, "flags": state.flags,
        "predictions": state.predictions, "past": views.past(state, now_ms), "present": views.present(state, now_ms),
        "future": views.future(state), "windows": state.windows.summary(now_ms),
    }  # fmt: skip
    return serde.dumps(doc)
