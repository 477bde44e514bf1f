"""Reason templates and evidence for declared rules.

A reason may quote the customer's picture: ``"churn risk {predictions.churn.p:.0%}
({derived.churn_drivers})"``. Each ``{path}`` or ``{path:format}`` is checked
at load like a condition's path and filled when the rule fires; a value
that is missing or does not fit the format is shown as is (``-`` for null).

Evidence names paths whose values are attached to a flag beside the
triggering event: an event id, a list of ids, or the churn model's
``[feature, contribution]`` pairs (shown as ``feature=+0.42``).

>>> t = Template("churn risk {p:.0%} ({why})", frozenset({"p", "why"}))
>>> t.render({"p": 0.734, "why": "complaints_30d"})
'churn risk 73% (complaints_30d)'
>>> evidence_items([["complaints_30d", 0.42], "e-1"])
('complaints_30d=+0.42', 'e-1')
"""

from __future__ import annotations

import re
from typing import Any

from operators.rules.expressions import Condition, ConditionError, compile_condition

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?::([^{}]*))?\}")


class Template:
    """A reason text with ``{path}`` placeholders, compiled once."""

    def __init__(
        self, text: str, roots: frozenset[str] | None = None, fields: dict[str, frozenset[str]] | None = None
    ) -> None:
        self.text = text
        self._parts: list[tuple[str, Condition | None, str]] = []
        last = 0
        for m in _PLACEHOLDER.finditer(text):
            read = compile_condition(m.group(1), roots, fields)
            self._parts.append((text[last : m.start()], read, m.group(2) or ""))
            last = m.end()
        self._tail = text[last:]
        literal = "".join(part[0] for part in self._parts) + self._tail
        if "{" in literal or "}" in literal:
            raise ConditionError("a { without its } (or the reverse): write placeholders as {path} or {path:format}")

    def render(self, ctx: dict[str, Any]) -> str:
        """The text with every placeholder filled from ``ctx``."""
        if not self._parts:
            return self.text
        out = []
        for literal, read, spec in self._parts:
            out.append(literal)
            if read is not None:
                out.append(_format(read(ctx), spec))
        out.append(self._tail)
        return "".join(out)


def compile_evidence(
    paths: list[str], roots: frozenset[str] | None = None, fields: dict[str, frozenset[str]] | None = None
) -> list[Condition]:
    """Readers for the evidence paths of a rule (validated like conditions)."""
    return [compile_condition(path, roots, fields) for path in paths]


def evidence_items(values: list[Any]) -> tuple[str, ...]:
    """Flatten evidence values into short strings (ids, ``name=+value`` pairs)."""
    out: list[str] = []
    for value in values:
        if value is None:
            continue
        if isinstance(value, list | tuple):
            if len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int | float):
                out.append(f"{value[0]}={value[1]:+g}")
            else:
                out.extend(evidence_items(list(value)))
        elif isinstance(value, dict):
            if "event_id" in value:
                out.append(str(value["event_id"]))
        else:
            out.append(str(value))
    return tuple(out)


def _format(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if not spec:
        return f"{value:g}" if isinstance(value, float) else str(value)
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)
