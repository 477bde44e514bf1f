"""The event contract: one versioned envelope for every channel, enforced at ingest.

The published JSON Schema (``livesignals/schemas/event-v1.json``) is the one
definition; this module compiles it (fastjsonschema) and adds the checks a
schema cannot express: size, and event time absurdly far in the future.
:func:`decode` turns raw Kafka bytes into an :class:`Event` or raises
:class:`~livesignals.errors.InvalidEvent` with a reason code.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Final

import fastjsonschema

from livesignals import serde
from livesignals.errors import InvalidEvent, Origin, Reason

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


@cache
def _validators() -> tuple[Any, dict[str, Any]]:
    """The envelope validator and one payload validator per event type.

    Both come from the published schema. Its ``allOf`` of ``if type == X then
    payload is Y`` is dispatched here by a dict lookup instead: fastjsonschema
    evaluates every ``if`` by raising an exception, which cost more than the
    rest of the engine per event.
    """
    schema = load_schema()
    formats = {"date-time": lambda _: True}  # parsed (and rejected) by _event_time_ms
    envelope = fastjsonschema.compile({k: v for k, v in schema.items() if k != "allOf"}, formats=formats)
    payloads: dict[str, Any] = {}
    for rule in schema["allOf"]:
        condition = rule["if"]["properties"]["type"]
        ref = rule["then"]["properties"]["payload"]["$ref"]
        sub = {"$id": schema["$id"], "definitions": schema["definitions"], "allOf": [{"$ref": ref}]}
        compiled = fastjsonschema.compile(sub, formats=formats)
        for event_type in condition.get("enum", [condition.get("const")]):
            payloads[event_type] = compiled
    return envelope, payloads


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


def _event_time_ms(value: Any) -> int:
    if isinstance(value, int):
        return value
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(Reason.BAD_TIME, f"event_time {value!r} is not RFC 3339") from exc
    if parsed.tzinfo is None:
        raise InvalidEvent(Reason.BAD_TIME, f"event_time {value!r} has no UTC offset")
    return int(parsed.timestamp() * 1000)


def _classify_schema_error(doc: dict[str, Any], exc: Any) -> InvalidEvent:
    path = ".".join(str(p) for p in exc.path[1:]) or "event"
    if doc.get("schema_version") != SCHEMA_VERSION and "schema_version" in doc:
        return InvalidEvent(Reason.UNSUPPORTED_VERSION, f"schema_version {doc['schema_version']!r}")
    if "type" in doc and doc["type"] not in EVENT_TYPES:
        return InvalidEvent(Reason.UNKNOWN_TYPE, f"unknown event type {doc['type']!r}")
    if "channel" in doc and doc["channel"] not in CHANNELS:
        return InvalidEvent(Reason.UNKNOWN_TYPE, f"unknown channel {doc['channel']!r}")
    customer = doc.get("customer")
    if not isinstance(customer, dict) or not customer:
        return InvalidEvent(Reason.NO_CUSTOMER, "customer must hold at least one identifier")
    return InvalidEvent(Reason.SCHEMA, f"{path}: {exc.message.removeprefix('data.')}")


def decode(
    value: bytes | None,
    origin: Origin,
    *,
    now_ms: int,
    max_bytes: int = 65536,
    max_future_skew_ms: int = 86_400_000,
) -> Event:
    """Decode and validate one raw message, or raise :class:`InvalidEvent`.

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
        raise InvalidEvent(Reason.NOT_AN_OBJECT, f"top level is {type(doc).__name__}, not object")
    envelope, payloads = _validators()
    try:
        envelope(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _classify_schema_error(doc, exc) from None
    payload_validator = payloads.get(doc["type"])
    if payload_validator is not None:
        try:
            payload_validator(doc["payload"])
        except fastjsonschema.JsonSchemaValueException as exc:
            path = ".".join(["payload", *(str(p) for p in exc.path[1:])])
            message = exc.message.removeprefix("data.").removeprefix("data ")
            raise InvalidEvent(Reason.SCHEMA, f"{path}: {message}") from None
    event_time_ms = _event_time_ms(doc["event_time"])
    if event_time_ms - now_ms > max_future_skew_ms:
        ahead_s = (event_time_ms - now_ms) // 1000
        raise InvalidEvent(Reason.FUTURE_TIME, f"event_time is {ahead_s}s in the future")
    return Event(
        event_id=doc["event_id"],
        type=doc["type"],
        channel=doc["channel"],
        ids=doc["customer"],
        event_time_ms=event_time_ms,
        payload=doc["payload"],
        origin=origin,
    )


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as read from Kafka, before decoding: the engine's input."""

    value: bytes | None
    key: bytes | None
    origin: Origin
