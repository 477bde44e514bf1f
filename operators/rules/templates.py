"""Reason templates and evidence for declared rules.

A reason may quote the customer's picture: ``"churn risk {predictions.churn.p:.0%}
({derived.churn_drivers})"``. Each ``{path}`` or ``{path:format}`` is checked
at load like a condition's path and filled when the rule fires; a value
that is missing or does not fit the format is shown as is (``-`` for null).

Evidence names paths whose values are attached to a flag beside the
triggering event: an event id, a list of ids, or the churn model's
``[feature, contribution]`` pairs (shown as ``feature=+0.42``).

Limits (a payload value can be as large as the broker allows): a template is
at most :data:`MAX_REASON` characters, a format's width and precision at most
:data:`MAX_FORMAT_WIDTH` (checked at load), a rendered reason at most
:data:`MAX_REASON` characters (cut with an ellipsis), and evidence at most
:data:`MAX_EVIDENCE_ITEMS` strings of :data:`MAX_EVIDENCE_CHARS` characters.

>>> t = Template("churn risk {p:.0%} ({why})", frozenset({"p", "why"}))
>>> t.render({"p": 0.734, "why": "complaints_30d"})
'churn risk 73% (complaints_30d)'
>>> len(Template("{p}").render({"p": "x" * 10**6}))
500
>>> evidence_items([["complaints_30d", 0.42], "e-1"])
('complaints_30d=+0.42', 'e-1')
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

from operators.rules.expressions import Condition, ConditionError, OnError, compile_condition

MAX_REASON = 500
"""Longest reason template and longest rendered reason, in characters."""
MAX_FORMAT_WIDTH = 64
"""Largest width and precision in a ``{path:format}``."""
MAX_EVIDENCE_ITEMS = 20
"""Most evidence strings a rule attaches (after the raising event)."""
MAX_EVIDENCE_CHARS = 200
"""Longest evidence string, in characters."""
ELLIPSIS = "…"

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple = 3, 8, 8, 8
_REPR.maxstring = _REPR.maxother = 80

_BIG_INT = 10**400  # beyond, str() of an int can raise (Python's digit limit) or be long: _short says "?"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?::([^{}]*))?\}")
_FORMAT_SPEC = re.compile(
    r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d+))?[bcdeEfFgGnosxX%]?", re.DOTALL
)


class Template:
    """A reason text with ``{path}`` placeholders, compiled once."""

    def __init__(
        self,
        text: str,
        roots: frozenset[str] | None = None,
        fields: dict[str, frozenset[str]] | None = None,
        on_error: OnError | None = None,
    ) -> None:
        if not isinstance(text, str):
            raise ConditionError(f"a reason must be a string, not {type(text).__name__}")
        if len(text) > MAX_REASON:
            raise ConditionError(f"a reason is at most {MAX_REASON} characters")
        self.text = text
        self._parts: list[tuple[str, Condition | None, str]] = []
        last = 0
        for m in _PLACEHOLDER.finditer(text):
            read = compile_condition(m.group(1), roots, fields, on_error)
            self._parts.append((text[last : m.start()], read, _checked_spec(m.group(2) or "")))
            last = m.end()
        self._tail = text[last:]
        literal = "".join(part[0] for part in self._parts) + self._tail
        if "{" in literal or "}" in literal:
            raise ConditionError("a { without its } (or the reverse): write placeholders as {path} or {path:format}")

    def render(self, ctx: dict[str, Any]) -> str:
        """The text with every placeholder filled from ``ctx``, at most :data:`MAX_REASON` characters."""
        if not self._parts:
            return self.text
        out = []
        for literal, read, spec in self._parts:
            out.append(literal)
            if read is not None:
                out.append(_format(read(ctx), spec))
        out.append(self._tail)
        text = "".join(out)
        return text if len(text) <= MAX_REASON else clip(text)


def clip(text: str, limit: int = MAX_REASON) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when cut.

    >>> clip("abcdef", 4)
    'abc…'
    """
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def compile_evidence(
    paths: list[str],
    roots: frozenset[str] | None = None,
    fields: dict[str, frozenset[str]] | None = None,
    on_error: OnError | None = None,
) -> list[Condition]:
    """Readers for the evidence paths of a rule (validated like conditions)."""
    return [compile_condition(path, roots, fields, on_error) for path in paths]


def evidence_items(values: list[Any]) -> tuple[str, ...]:
    """Flatten evidence values into short strings (ids, ``name=+value`` pairs).

    At most :data:`MAX_EVIDENCE_ITEMS` strings of :data:`MAX_EVIDENCE_CHARS`
    characters, whatever the size or nesting of the values (no recursion).
    """
    out: list[str] = []
    stack: list[Any] = list(reversed(values))
    while stack and len(out) < MAX_EVIDENCE_ITEMS:
        value = stack.pop()
        if value is None:
            continue
        if isinstance(value, list | tuple):
            if len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], float | int):
                out.append(_pair(value[0], value[1]))
            else:
                stack.extend(reversed(value[: MAX_EVIDENCE_ITEMS - len(out)]))
        elif isinstance(value, dict):
            if "event_id" in value:
                stack.append(_short(value["event_id"]))
        else:
            out.append(_short(value))
    return tuple(out)


def _pair(name: str, number: float) -> str:
    """``feature=+0.42``, at most :data:`MAX_EVIDENCE_CHARS` characters."""
    try:
        return clip(f"{name[: MAX_EVIDENCE_CHARS + 1]}={number:+g}", MAX_EVIDENCE_CHARS)
    except (OverflowError, ValueError):  # an int too large for a float
        return _short(name)


def _short(value: Any, limit: int = MAX_EVIDENCE_CHARS) -> str:
    """A value as at most ``limit`` characters: strings cut, containers abridged, never a huge copy."""
    if isinstance(value, str):
        return clip(value[: limit + 1], limit)
    try:
        text = _REPR.repr(value) if isinstance(value, list | tuple | dict) else str(value)
    except (ValueError, RecursionError, MemoryError):  # an int past Python's digit limit, say
        return "?"
    return clip(text, limit)


def _checked_spec(spec: str) -> str:
    """A format spec of the mini-language with width and precision <= :data:`MAX_FORMAT_WIDTH`."""
    m = _FORMAT_SPEC.fullmatch(spec)
    if m is None:
        raise ConditionError(f"not a format: {spec[:20]!r}")
    for part in ("width", "precision"):
        digits = m.group(part) or "0"
        if len(digits) > 3 or int(digits) > MAX_FORMAT_WIDTH:
            raise ConditionError(f"format {part} at most {MAX_FORMAT_WIDTH}: {spec[:20]!r}")
    return spec


def _format(value: Any, spec: str) -> str:
    """One placeholder's text, at most :data:`MAX_REASON` characters (the common types first: it runs per flag)."""
    kind = type(value)
    if kind is str:
        if len(value) > MAX_REASON:
            value = value[: MAX_REASON + 1]  # never copy more of a huge payload string than can be shown
        if not spec:
            return value if len(value) <= MAX_REASON else clip(value)
    elif value is None:
        return "-"
    elif not spec:
        if kind is float:
            return f"{value:g}"
        if kind is bool or (kind is int and -_BIG_INT < value < _BIG_INT):
            return str(value)
        return _short(value, MAX_REASON)
    try:
        text = format(value, spec)
    except (TypeError, ValueError, OverflowError, RecursionError, MemoryError):
        return _short(value, MAX_REASON)
    return text if len(text) <= MAX_REASON else clip(text)
