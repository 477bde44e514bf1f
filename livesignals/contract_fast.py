"""The contract's fast path: the published JSON Schema as msgspec types, checked in C.

:func:`livesignals.contract.decode` parses with orjson, then asks
:meth:`FastPath.accepts` whether the document is valid. That is one
``msgspec.convert`` into the struct of its ``type``, one of a tagged union that
this module builds *from the published schema* when the contract is imported:
one struct per event type, holding the envelope's fields and the payload
fields of that type (its own definition intersected with
``definitions/payloads/common``), with ``msgspec.Meta`` bounds mirroring
``minLength``, ``maxLength``, ``minimum``, ``maximum``, ``enum``/``const``,
``required``, ``additionalProperties: false`` and ``minProperties``.

The one rule: this path may be *stricter* than the schema, never laxer. A
``False`` answer costs nothing but time: ``decode`` then runs the schema
validators (fastjsonschema), which reject with today's exact reason, or accept
what msgspec was merely stricter about (a float-valued ``event_time``, an item
given as an object, ...). So whatever this module cannot express exactly is
translated to a type that accepts nothing (:data:`_NOTHING`), and the schema
path decides. Today that is a payload holding ``fields`` (``propertyNames``
and a type of its own for ``timezone``) or ``relationships`` (open objects),
whatever the event type (so most ``profile_update`` events), and ``items``
holding an object. A keyword or shape the
translator does not know makes its field accept nothing (or leaves its event
type out of the union), so a schema change can slow the fast path but never
widen it (``tests/unit/test_contract_fast.py`` checks both directions on a corpus).

The document is *not* taken from msgspec: :class:`~livesignals.contract.Event`
is built from orjson's dict as before, so JSON parsing (``not_json``, duplicate
keys, numbers beyond 64 bits) and the payload the engine sees are unchanged by
construction.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, Union, get_args

import msgspec
import msgspec.inspect
import msgspec.json
from msgspec import UNSET, Meta, UnsetType

_NOTHING: Final[Any] = Annotated[str, Meta(pattern="(?!)")]
"""A type no JSON value converts to: a constraint the fast path cannot express sends the event to the schema path."""

_STRING_KEYS: Final = frozenset({"type", "minLength", "maxLength", "description"})
_NUMBER_KEYS: Final = frozenset({"type", "minimum", "maximum", "description"})
_ENUM_KEYS: Final = frozenset({"enum", "description"})
_OPAQUE_FIELDS: Final = frozenset({"fields", "relationships"})
"""Payload fields whose schema (open objects with per-key rules) msgspec cannot say: the schema path decides."""


class Untranslatable(ValueError):
    """A schema part this module does not translate (the field or type then goes to the schema path)."""


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with a ``#/...`` ``$ref`` followed (its ``description`` siblings dropped)."""
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise Untranslatable(f"$ref {ref}")
        target: Any = schema
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def _leaf(node: dict[str, Any]) -> tuple[str, Any]:
    """A scalar schema as ``(kind, bounds)``: ``("str", (min, max))``, ``("num", (min, max))``,
    ``("bool", None)`` or ``("enum", values)``; anything else is :class:`Untranslatable`."""
    keys = set(node)
    if "enum" in node and keys <= _ENUM_KEYS:
        return "enum", tuple(node["enum"])
    if "const" in node and keys <= {"const", "description"}:
        return "enum", (node["const"],)
    kind = node.get("type")
    if kind == "string" and keys <= _STRING_KEYS:
        return "str", (node.get("minLength", 0), node.get("maxLength"))
    if kind == "number" and keys <= _NUMBER_KEYS:
        return "num", (node.get("minimum"), node.get("maximum"))
    if kind == "boolean" and keys <= {"type", "description"}:
        return "bool", None
    raise Untranslatable(f"schema {sorted(keys)}")


def _admits(leaf: tuple[str, Any], value: Any) -> bool:
    """True if the scalar ``value`` satisfies ``leaf`` (to intersect an enum with another leaf)."""
    kind, bounds = leaf
    if kind == "enum":
        return any(type(value) is type(v) and value == v for v in bounds)
    if kind == "str":
        return isinstance(value, str) and bounds[0] <= len(value) and (bounds[1] is None or len(value) <= bounds[1])
    return False  # the schema's enums are all strings: a number or boolean enum is not intersected


def _intersect(a: tuple[str, Any], b: tuple[str, Any]) -> tuple[str, Any]:
    """The leaf accepting exactly what both accept, or :class:`Untranslatable`."""
    if a[0] == "enum" or b[0] == "enum":
        enum, other = (a, b) if a[0] == "enum" else (b, a)
        return "enum", tuple(v for v in enum[1] if _admits(other, v))
    if a[0] != b[0]:
        return "enum", ()  # a string and a number: nothing is both
    if a[0] == "bool":
        return a
    (lo_a, hi_a), (lo_b, hi_b) = a[1], b[1]
    if a[0] == "str":
        return "str", (max(lo_a, lo_b), hi_a if hi_b is None else hi_b if hi_a is None else min(hi_a, hi_b))
    lo = lo_a if lo_b is None else lo_b if lo_a is None else max(lo_a, lo_b)
    hi = hi_a if hi_b is None else hi_b if hi_a is None else min(hi_a, hi_b)
    return "num", (lo, hi)


def _render(leaf: tuple[str, Any]) -> Any:
    """The msgspec type of a leaf."""
    kind, bounds = leaf
    if kind == "enum":
        values = bounds
        if not values or (not all(isinstance(v, str) for v in values) and not all(type(v) is int for v in values)):
            return _NOTHING  # empty (no value is both), or mixed kinds: let the schema path decide
        return Literal[values]
    if kind == "bool":
        return bool
    lo, hi = bounds
    if kind == "str":
        return Annotated[str, Meta(min_length=lo or None, max_length=hi)]
    # "number": an int or a float, never a bool; every bound in the schema is far below 2**53, so an int
    # compared after conversion to float is compared exactly where it matters
    if any(b is not None and abs(b) >= 2**53 for b in bounds):
        return _NOTHING
    return Annotated[float, Meta(ge=lo, le=hi)]


def _field(schema: dict[str, Any], nodes: list[dict[str, Any]]) -> Any:
    """The msgspec type of a payload field that must satisfy every schema in ``nodes``."""
    try:
        resolved = [_resolve(schema, n) for n in nodes]
        if any(r.get("type") == "array" for r in resolved):
            return _items(schema, resolved)
        leaf = _leaf(resolved[0])
        for other in resolved[1:]:
            leaf = _intersect(leaf, _leaf(other))
    except Untranslatable:
        return _NOTHING
    return _render(leaf)


def _items(schema: dict[str, Any], resolved: list[dict[str, Any]]) -> Any:
    """``items`` of an order (common and commerce share one definition): strings only on the fast path;
    an item given as an object (``additionalProperties`` with a rule per key) goes to the schema path."""
    first = resolved[0]
    if any(r is not first for r in resolved) or set(first) != {"type", "maxItems", "items"}:
        raise Untranslatable("array")
    item = first["items"]
    if item.get("type") != ["object", "string"]:
        raise Untranslatable("array items")
    return Annotated[list[Annotated[str, Meta(max_length=item["maxLength"])]], Meta(max_length=first["maxItems"])]


def _payload_fields(schema: dict[str, Any], payload: dict[str, Any]) -> tuple[list[tuple[str, Any, Any]], bool]:
    """A payload struct's fields (common and type-specific), and whether it forbids unknown fields."""
    common = schema["definitions"]["payloads"]["common"]
    if set(payload) - {"type", "properties", "required", "additionalProperties", "description"}:
        raise Untranslatable("payload keywords")
    closed = payload.get("additionalProperties", True) is False
    if payload.get("additionalProperties", False) not in (True, False):
        raise Untranslatable("payload additionalProperties")
    names = dict.fromkeys([*payload.get("properties", {}), *common["properties"]])
    required = set(payload.get("required", ()))
    out: list[tuple[str, Any, Any]] = []
    for name in names:
        if closed and name not in payload.get("properties", {}):
            continue  # not allowed at all: an unknown field of a closed struct
        nodes = [n for n in (payload.get("properties", {}).get(name), common["properties"].get(name)) if n]
        kind = _NOTHING if name in _OPAQUE_FIELDS else _field(schema, nodes)
        out.append((name, kind, msgspec.NODEFAULT) if name in required else (name, kind | UnsetType, UNSET))
    missing = required - set(names)
    if missing:
        raise Untranslatable(f"required {sorted(missing)} without a definition")
    return sorted(out, key=lambda f: f[2] is not msgspec.NODEFAULT), closed


def _envelope_fields(schema: dict[str, Any]) -> list[tuple[str, Any]]:
    """The envelope's fields but ``type`` (the tag) and ``payload`` (per type), from the schema."""
    props = schema["properties"]
    if schema.get("additionalProperties") is not False or set(schema["required"]) != set(props):
        raise Untranslatable("envelope")
    customer = props["customer"]
    if set(customer) - {"type", "description", "additionalProperties", "minProperties", "properties"}:
        raise Untranslatable("customer")
    ids = [_field(schema, [p]) for p in customer["properties"].values()]
    if customer.get("additionalProperties") is not False or any(i != ids[0] for i in ids) or ids[0] is _NOTHING:
        raise Untranslatable("customer identifiers")
    when = props["event_time"]
    if set(when) - {"type", "format", "maxLength", "minimum", "maximum", "description"} or when["type"] != [
        "string",
        "integer",
    ]:
        raise Untranslatable("event_time")  # its format (date-time) is checked by contract._event_time_ms
    return [
        ("schema_version", _render(_leaf(props["schema_version"]))),
        ("event_id", _field(schema, [props["event_id"]])),
        ("channel", _field(schema, [props["channel"]])),
        ("customer", Annotated[dict[Literal[tuple(customer["properties"])], ids[0]],  # type: ignore[misc]
                               Meta(min_length=customer.get("minProperties") or None)]),
        ("event_time", Union[Annotated[str, Meta(max_length=when["maxLength"])],  # noqa: UP007
                             Annotated[int, Meta(ge=when["minimum"], le=when["maximum"])]]),
    ]  # fmt: skip


def build(schema: dict[str, Any]) -> tuple[Any, frozenset[str]]:
    """The tagged union of one struct per event type the fast path takes, and the types it leaves to the schema.

    A type is left out when its payload is a part the translator does not know, or when a required
    payload field is one it cannot express (e.g. ``profile_update``: every ``fields`` goes to the schema).
    """
    envelope = _envelope_fields(schema)
    payload_props = schema["properties"]["payload"]
    if set(payload_props) - {"type", "description", "allOf"} or payload_props["allOf"] != [
        {"$ref": "#/definitions/payloads/common"}
    ]:
        raise Untranslatable("payload")
    structs: list[Any] = []
    left: set[str] = set()
    for rule in schema["allOf"]:
        condition = rule["if"]["properties"]["type"]
        event_types = condition.get("enum", [condition.get("const")])
        try:
            fields, closed = _payload_fields(schema, _resolve(schema, rule["then"]["properties"]["payload"]))
        except Untranslatable:
            left.update(event_types)
            continue
        if any(kind is _NOTHING for _, kind, default in fields if default is msgspec.NODEFAULT):
            left.update(event_types)
            continue
        # gc=False: a checked struct is dropped at once and holds no cycle; untracked, it adds no collector work
        payload = msgspec.defstruct("Payload", fields, forbid_unknown_fields=closed, kw_only=True, gc=False)
        for event_type in event_types:
            structs.append(
                msgspec.defstruct(
                    f"Event_{event_type}", [*envelope, ("payload", payload)], tag_field="type", tag=event_type,
                    forbid_unknown_fields=True, gc=False,
                )
            )  # fmt: skip
    left |= set(schema["properties"]["type"]["enum"]) - {s.__struct_config__.tag for s in structs}
    return Union[tuple(structs)], frozenset(left)  # noqa: UP007


class FastPath:
    """The fast path for one schema: :meth:`accepts` a parsed event, or says "ask the schema path".

    Built once per process at import, and with it msgspec's type information for every struct: msgspec builds
    it lazily at a struct's first use, and two worker threads using one struct for the first time at once
    crashed the process (a segmentation fault; two Bytewax workers in one process replaying a backlog, on
    Apache Kafka: ``tests/unit/test_contract_fast.py``)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.union, self.schema_only_types = build(schema)
        """The tagged union of structs, and the event types it leaves to the schema path."""
        self.by_type: dict[Any, Any] = {s.__struct_config__.tag: s for s in get_args(self.union)}
        """The struct of each event type the fast path takes: ``msgspec.convert(doc, by_type[doc["type"]])``
        is :meth:`accepts` without its call (``contract.decode`` inlines it). ``convert`` into a struct class
        reuses the type information msgspec keeps on the class; into a Union it builds it again at every
        call (20x slower): the tag is looked up here instead."""
        for struct in self.by_type.values():  # msgspec's type information, built now, in one thread
            msgspec.json.Decoder(struct)
            msgspec.inspect.type_info(struct)

    def accepts(self, doc: dict[str, Any]) -> bool:
        """True if the parsed event ``doc`` is valid by the schema's rules as translated here.

        ``True`` implies the schema validators accept ``doc``; ``False`` says nothing (ask them).
        """
        try:  # a missing, unknown or unhashable type is a KeyError or TypeError here: the schema path says which
            msgspec.convert(doc, self.by_type[doc["type"]])
        except Exception:  # any failure only means "ask the schema path", which is total
            return False
        return True
