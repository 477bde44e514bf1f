"""Serialisation helpers: one JSON library (orjson) and deterministic ids.

Outputs that can be re-emitted on replay (flags, triggers) carry ids derived
from what caused them, never random ones, so that consumers can deduplicate.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


def dumps(obj: Any, indent: bool = False) -> bytes:
    """Encode to compact JSON bytes (keys in insertion order), or indented for people.

    >>> dumps({"a": 1, "b": [True, None]})
    b'{"a":1,"b":[true,null]}'
    """
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2) if indent else orjson.dumps(obj)


def dumps_int_keys(obj: Any) -> bytes:
    """:func:`dumps` of ``obj`` whose dicts may have integer keys, written as JSON strings (what ``str(key)``
    gives), without copying them into dicts with string keys first.

    >>> dumps_int_keys({"b": {5: [1], -3: {}}}) == dumps({"b": {"5": [1], "-3": {}}})
    True
    """
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


def fragment(encoded: bytes) -> Any:
    """JSON already encoded, which :func:`dumps` writes as is where it stands in a document.

    >>> dumps({"a": 1, "b": fragment(b'{"c":2}')})
    b'{"a":1,"b":{"c":2}}'
    """
    return orjson.Fragment(encoded)


def loads(data: bytes | str) -> Any:
    """Decode JSON bytes; raises :data:`JSONDecodeError` on bad input."""
    return orjson.loads(data)


def deterministic_id(*parts: object) -> str:
    """A short stable id from the things that caused an output.

    >>> deterministic_id("flag", "c1", "repeat_contact", "in:0:42")
    '53d31a6f55714e23d1337987'
    >>> deterministic_id("a") == deterministic_id("a")
    True
    """
    text = "\x1f".join(str(p) for p in parts).encode()
    return hashlib.blake2b(text, digest_size=12).hexdigest()
