"""The event contract: one versioned envelope for every channel, enforced at ingest.

The published JSON Schema (``livesignals/schemas/event-v1.json``) is the one
definition; this module compiles it (fastjsonschema) and adds the checks a
schema cannot express (cheaply): size, nesting depth, event time absurdly far
in the future, the identifier rules (:mod:`livesignals.identifiers`), survey
scales and feedback labels per kind. :func:`decode` turns raw Kafka bytes into
an :class:`Event` or raises :class:`~livesignals.errors.InvalidEvent` with a
reason code -- whatever the bytes. A valid event the fast path takes (below)
costs no exception object; one it declines costs msgspec's one.

The schema is checked first by its translation into msgspec structs
(:mod:`livesignals.contract_fast`, in C); fastjsonschema runs only on what that path
declines, so it still decides -- and words -- every rejection, and the
:class:`Event` is built from the same orjson document as before
(``tests/unit/test_contract_fast.py``).
"""

from __future__ import annotations

import calendar
import importlib.resources
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final

import fastjsonschema
import msgspec

from livesignals import serde
from livesignals.contract_fast import FastPath
from livesignals.errors import InvalidEvent, Origin, Reason
from livesignals.identifiers import canonical_identifier, normalise_identifier
from livesignals.validator_cache import compile_validator

SCHEMA_VERSION: Final = 1

IDENTIFIER_KINDS: Final = ("customer_id", "email", "phone", "device_id", "cookie_id")
"""Identifier kinds, strongest first: the first present one keys the customer."""

CONTACT_TYPES: Final = frozenset({"call", "chat", "email", "sms", "social"})
"""Assisted or conversational interactions that carry text and count as contacts."""

CONTACT_CHANNELS: Final = frozenset({"phone", "chat", "email", "sms", "social"})
"""Channels a customer contacts us on, and on which they can be contacted proactively."""


def load_schema(name: str = "event-v1.json") -> dict[str, Any]:
    """Return a published schema (event, flag, trigger) as a dict."""
    text = importlib.resources.files("livesignals").joinpath("schemas", name).read_bytes()
    schema: dict[str, Any] = serde.loads(text)
    return schema


EVENT_TYPES: Final = frozenset(load_schema()["properties"]["type"]["enum"])
CHANNELS: Final = frozenset(load_schema()["properties"]["channel"]["enum"])

EVENT_ID_MAX_CHARS: Final[int] = load_schema()["properties"]["event_id"]["maxLength"]
IDENTIFIER_MAX_CHARS: Final[int] = load_schema()["definitions"]["identifier"]["maxLength"]
REFERENCE_MAX_CHARS: Final[int] = load_schema()["definitions"]["reference"]["maxLength"]
"""The schema's ``maxLength`` of ids, checked again after NFC normalisation (which can lengthen a string)."""

FAST_PATH: Final = FastPath(load_schema())
"""The schema as msgspec types (:mod:`livesignals.contract_fast`): what it accepts, the schema accepts."""
_FAST_STRUCTS: Final = FAST_PATH.by_type
_convert: Final = msgspec.convert

MAX_DEPTH: Final = 16
"""Deepest nesting of objects and arrays an event may have (the envelope itself is level 1)."""

REFERENCE_FIELDS: Final = (
    "order_id", "case_id", "target_id", "decision_id", "rates_event_id", "product_id", "session_id", "campaign_id",
    "request_id",
    "agent_id", "queue",
)  # fmt: skip
"""Payload fields that hold an id: they follow the identifier rules (:mod:`livesignals.identifiers`)."""
_REFERENCE_NAMES: Final = frozenset(REFERENCE_FIELDS)
_REFERENCE_ORDER: Final = {name: i for i, name in enumerate(REFERENCE_FIELDS)}

SURVEY_SCALES: Final = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}
"""The score range of each survey kind (the schema bounds every score to 0-10)."""

FEEDBACK_LABELS: Final = {
    "sentiment": frozenset({"negative", "neutral", "positive"}),
    "flag": frozenset({"not_relevant", "relevant"}),
    "action": frozenset({"not_relevant", "relevant"}),
}
"""The labels an agent may give per feedback kind (the schema lists their union)."""


@cache
def _validators() -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The envelope validator, one payload validator per event type, one per common payload field.

    All come from the published schema. Its ``allOf`` of ``if type == X then
    payload is Y`` is dispatched here by a dict lookup instead: fastjsonschema
    evaluates every ``if`` by raising an exception, which cost more than the
    rest of the engine per event. ``definitions/payloads/common`` is checked
    field by field for the fields present (a payload holds a few of its 30+).
    """
    schema = load_schema()
    formats = {"date-time": lambda _: True}  # parsed (and rejected) by _event_time_ms
    defs = schema["definitions"]

    def compiled(sub: dict[str, Any]) -> Any:
        # compiled once per schema and kept on disk: a restarted engine loads them (issue #10, recovery)
        return compile_validator({"$id": schema["$id"], "definitions": defs, **sub}, formats=formats)

    properties = {**schema["properties"], "payload": {"type": "object"}}  # its common part: below
    envelope = compiled({k: v for k, v in schema.items() if k not in ("allOf", "definitions", "properties")}
                        | {"properties": properties})  # fmt: skip
    payloads: dict[str, Any] = {}
    for rule in schema["allOf"]:
        condition = rule["if"]["properties"]["type"]
        validator = compiled({"allOf": [{"$ref": rule["then"]["properties"]["payload"]["$ref"]}]})
        for event_type in condition.get("enum", [condition.get("const")]):
            payloads[event_type] = validator
    common = {name: compiled(sub) for name, sub in defs["payloads"]["common"]["properties"].items()}
    return envelope, payloads, common


def _schema_error(prefix: str, exc: Any) -> InvalidEvent:
    path = ".".join([prefix, *(str(p) for p in exc.path[1:])])
    return InvalidEvent(Reason.SCHEMA, f"{path}: {exc.message.removeprefix('data.').removeprefix('data ')}")


@dataclass(slots=True)
class Event:
    """A validated interaction.

    ``customer_key`` is the primary identifier (``kind:value``, strongest kind
    first) under which the customer's state is kept until identity resolution
    says otherwise. ``origin`` says where in Kafka the event was read.
    """

    event_id: str
    type: str
    channel: str
    ids: dict[str, str]
    event_time_ms: int
    payload: dict[str, Any]
    origin: Origin
    customer_key: str = ""
    """The key the customer's state lives under, e.g. ``"customer_id:c42"`` (derived from ``ids``)."""

    def __post_init__(self) -> None:
        if not self.customer_key:
            self.customer_key = primary_key(self.ids)

    @property
    def is_contact(self) -> bool:
        """True for calls, chats, emails, texts and social posts."""
        return self.type in CONTACT_TYPES


def primary_key(ids: dict[str, str]) -> str:
    """The strongest identifier as ``kind:value``.

    >>> primary_key({"device_id": "d9", "email": "a@b.c"})
    'email:a@b.c'
    """
    for kind in IDENTIFIER_KINDS:
        value = ids.get(kind)
        if value:
            return f"{kind}:{value}"
    raise InvalidEvent(Reason.NO_CUSTOMER, "no customer identifier")


def _no_payload_rules(_payload: dict[str, Any]) -> None:
    """A type the schema gives no payload definition: the common field types were checked."""


_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))", re.ASCII
)
"""RFC 3339 ``date-time`` (section 5.6), offset required: ``2026-01-01T09:30:00.250+03:30`` or ``...Z``.

Not whatever :meth:`datetime.fromisoformat` takes: no space for ``T``, no basic
format (``20260101T000000Z``), no week dates, no hour-only or minute-only
times, no comma fractions, no ``+0000`` or ``+00`` offsets: each reads as
something, but a producer sending them is not following the contract."""


def _event_time_ms(value: Any) -> int:
    """Epoch milliseconds of an RFC 3339 ``date-time`` with an offset, or of epoch milliseconds.

    A leap second (``23:59:60Z``; RFC 3339 allows ``:60`` at UTC minute 59) is read as the last
    millisecond of its minute, ``:59.999``: it stays in its day and orders before the next one
    (epoch milliseconds cannot name it).

    >>> _event_time_ms("2026-01-01T00:00:00.5+01:00"), _event_time_ms("1970-01-01T00:00:01z")
    (1767222000500, 1000)
    >>> _event_time_ms("2016-12-31T23:59:60Z") - _event_time_ms("2016-12-31T23:59:59Z")
    999
    >>> _event_time_ms("2026-01-01 00:00:00Z")
    Traceback (most recent call last):
    ...
    livesignals.errors.InvalidEvent: bad_time: event_time '2026-01-01 00:00:00Z' is not RFC 3339 with an offset or Z
    """
    if isinstance(value, int):
        return value  # the schema bounds it to [0, year 9999]
    if isinstance(value, float):
        return int(value)  # integer-valued: the schema said "integer"
    m = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise InvalidEvent(Reason.BAD_TIME, f"event_time {_show(value)} is not RFC 3339 with an offset or Z")
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    offset_min = 0 if m.group(8) else (int(m.group(10)) * 60 + int(m.group(11))) * (1 if m.group(9) == "+" else -1)
    leap = second == 60 and (minute - offset_min) % 60 == 59  # minute 59 in UTC
    second -= leap
    try:
        if int(m.group(10) or 0) > 23 or int(m.group(11) or 0) > 59:
            raise ValueError("offset out of range")
        local = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise InvalidEvent(Reason.BAD_TIME, f"event_time {_show(value)} is out of range ({exc})") from None
    fraction_ms = 999 if leap else int((m.group(7) or "0")[:3].ljust(3, "0"))
    ms = (calendar.timegm(local.timetuple()) - offset_min * 60) * 1000 + fraction_ms
    if ms < 0:
        raise InvalidEvent(Reason.BAD_TIME, f"event_time {_show(value)} is before 1970")
    return ms


def _show(value: Any) -> str:
    """A short, safe rendering of any JSON value for a rejection's detail (no deep repr)."""
    if isinstance(value, str):
        return repr(value[:64]) + ("..." if len(value) > 64 else "")
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    return f"a JSON {'array' if isinstance(value, list) else 'object'}"


def _classify_schema_error(doc: dict[str, Any], exc: Any) -> InvalidEvent:
    """The most useful reason for a schema failure; ``doc`` may hold any JSON in any field."""
    path = ".".join(str(p) for p in exc.path[1:]) or "event"
    if "schema_version" in doc and doc["schema_version"] != SCHEMA_VERSION:
        return InvalidEvent(Reason.UNSUPPORTED_VERSION, f"schema_version {_show(doc['schema_version'])}")
    for name, known in (("type", EVENT_TYPES), ("channel", CHANNELS)):
        value = doc.get(name)
        if name in doc and not (isinstance(value, str) and value in known):
            return InvalidEvent(Reason.UNKNOWN_TYPE, f"unknown {name} {_show(value)}")
    customer = doc.get("customer")
    if not isinstance(customer, dict) or not customer:
        return InvalidEvent(Reason.NO_CUSTOMER, "customer must hold at least one identifier")
    message = exc.message.removeprefix("data.").removeprefix("data ")
    return InvalidEvent(Reason.SCHEMA, message if message.startswith(path) else f"{path}: {message}")


def _too_deep(doc: Any, limit: int) -> bool:
    """True if ``doc`` nests objects/arrays more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _identifier(where: str, value: str, max_chars: int = 0, prefix: str = "") -> str:
    """``value`` normalised, or rejected as field ``prefix + where`` (joined only then: this runs per id)."""
    if not isinstance(value, str):  # request_id outside an erase: a payload field the schema leaves free
        raise InvalidEvent(Reason.SCHEMA, f"{prefix}{where}: must be string")
    try:
        return normalise_identifier(value, max_chars or REFERENCE_MAX_CHARS)
    except ValueError as exc:
        raise InvalidEvent(Reason.BAD_IDENTIFIER, f"{prefix}{where} {exc}") from None


def _customer_id(kind: str, value: str) -> str:
    try:
        return canonical_identifier(kind, value, IDENTIFIER_MAX_CHARS)
    except ValueError as exc:
        raise InvalidEvent(Reason.BAD_IDENTIFIER, f"customer.{kind} {exc}") from None


def _checked_payload(event_type: str, p: dict[str, Any]) -> dict[str, Any]:
    """What the schema cannot say cheaply: referenced ids, scales per survey kind, labels per kind."""
    present = _REFERENCE_NAMES.intersection(p)  # in C: a payload holds one or two of the eleven
    for name in present if len(present) < 2 else sorted(present, key=_REFERENCE_ORDER.__getitem__):
        p[name] = _identifier(name, p[name], 0, "payload.")  # in REFERENCE_FIELDS order: the first bad one is named
    if event_type == "survey":
        low, high = SURVEY_SCALES[p["kind"]]
        if not low <= p["score"] <= high:
            raise InvalidEvent(Reason.SCHEMA, f"payload.score: {p['kind']} scores run {low}-{high}, not {p['score']}")
    elif event_type == "agent_feedback" and p["label"] not in FEEDBACK_LABELS[p["kind"]]:
        allowed = " | ".join(sorted(FEEDBACK_LABELS[p["kind"]]))
        raise InvalidEvent(Reason.SCHEMA, f"payload.label: {p['kind']} labels are {allowed}, not {p['label']!r}")
    elif event_type in ("order", "return") and "items" in p:
        p["items"] = [_item(i, item) for i, item in enumerate(p["items"])]
    return p


def _item(i: int, item: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(item, str):
        return _identifier(f"payload.items.{i}", item)
    if "product_id" in item:
        item["product_id"] = _identifier(f"payload.items.{i}.product_id", item["product_id"])
    return item


def decode(
    value: bytes | None,
    origin: Origin,
    *,
    now_ms: int,
    max_bytes: int = 65536,
    max_future_skew_ms: int = 300_000,
) -> Event:
    """Decode and validate one raw message, or raise :class:`InvalidEvent`.

    Total: whatever the bytes, this returns an :class:`Event` whose fields have the
    types the engine relies on, or raises :class:`InvalidEvent` with a reason --
    never anything else (``tests/unit/test_contract_fuzz.py``, ``bench.fuzz``).

    >>> raw = (b'{"schema_version":1,"event_id":"e1","type":"chat","channel":"chat",'
    ...        b'"customer":{"customer_id":"c1"},"event_time":1000,"payload":{"text":"hi"}}')
    >>> decode(raw, Origin("in", 0, 0), now_ms=2000).customer_key
    'customer_id:c1'
    >>> try:
    ...     decode(b"{oops", Origin("in", 0, 1), now_ms=2000)
    ... except InvalidEvent as exc:
    ...     print(exc.reason)
    not_json
    """
    if value is None:
        raise InvalidEvent(Reason.NOT_JSON, "empty message (tombstone)")
    if len(value) > max_bytes:
        raise InvalidEvent(Reason.OVERSIZED, f"{len(value)} bytes > max_event_bytes {max_bytes}")
    try:
        doc = serde.loads(value)
    except serde.JSONDecodeError as exc:
        raise InvalidEvent(Reason.NOT_JSON, str(exc)) from None
    if not isinstance(doc, dict):
        raise InvalidEvent(Reason.NOT_AN_OBJECT, f"top level is {_show(doc)}, not an object")
    if value.count(b"{") + value.count(b"[") > MAX_DEPTH and _too_deep(doc, MAX_DEPTH):
        raise InvalidEvent(Reason.TOO_DEEP, f"JSON nested deeper than {MAX_DEPTH} levels")
    try:  # FAST_PATH.accepts(doc), inlined (per event): a missing, unknown or unhashable type raises here too
        _convert(doc, _FAST_STRUCTS[doc["type"]])
        fast = True
    except Exception:
        fast = False
    if not fast:
        _validate(doc)  # raises the schema's reason, or accepts what the fast path was merely stricter about
    event_type, payload = doc["type"], doc["payload"]
    when = doc["event_time"]
    event_time_ms = when if type(when) is int else _event_time_ms(when)  # epoch ms (the schema bounds it): as is
    if event_time_ms - now_ms > max_future_skew_ms:
        ahead_s = (event_time_ms - now_ms) // 1000
        raise InvalidEvent(Reason.FUTURE_TIME, f"event_time is {ahead_s}s in the future")
    event_id = _identifier("event_id", doc["event_id"], EVENT_ID_MAX_CHARS)  # checked in this order: event_id,
    ids = {}  # customer ids, payload (a loop, not a comprehension: no frame of its own, per event)
    for kind, v in doc["customer"].items():
        ids[kind] = _customer_id(kind, v)
    return Event(
        event_id=event_id,
        type=event_type,
        channel=doc["channel"],
        ids=ids,
        event_time_ms=event_time_ms,
        payload=_checked_payload(event_type, payload),
        origin=origin,
    )


def _validate(doc: dict[str, Any]) -> None:
    """The published schema's verdict on ``doc`` (fastjsonschema): return, or raise its reason."""
    envelope, payloads, common = _validators()
    try:
        envelope(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _classify_schema_error(doc, exc) from None
    event_type, payload = doc["type"], doc["payload"]
    for name, value in payload.items():
        check = common.get(name)
        if check is not None:
            try:
                check(value)
            except fastjsonschema.JsonSchemaValueException as exc:
                raise _schema_error(f"payload.{name}", exc) from None
    try:
        payloads.get(event_type, _no_payload_rules)(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _schema_error("payload", exc) from None


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as read from Kafka, before decoding: the engine's input."""

    value: bytes | None
    key: bytes | None
    origin: Origin
    headers: Sequence[tuple[str, str | bytes | None]] | None = None
    """Kafka headers (the engine reads its own ``ls.origin.*`` on the repartition topic)."""
