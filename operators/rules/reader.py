"""Reading a rules file's tables into rules: the rule types, the names they read, and the checks at load.

:class:`Reader` turns each ``[[flag]]`` and ``[[action]]`` table into a
:class:`FlagRule` or an :class:`ActionRule`, naming the line of any error
(:class:`~operators.rules.rules_file.RulebookError`); :class:`operators.rules.rulebook.Rulebook`
evaluates them. The rules file's format is described there.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from livesignals import serde
from livesignals.contract import CONTACT_CHANNELS
from operators.profile360.windows import METRICS
from operators.rules import guards, rules_file
from operators.rules.context import DERIVED_NAMES
from operators.rules.dependencies import inputs_of
from operators.rules.expressions import Condition, ConditionError, compile_condition
from operators.rules.failures import counted_errors
from operators.rules.rules_file import RulebookError
from operators.rules.templates import MAX_EVIDENCE_ITEMS, MAX_REASON, Template, clip, compile_evidence

ROOTS = frozenset({
    "event", "identity", "activity", "history", "value", "consent", "flags", "predictions",
    "w1h", "w24h", "w7d", "w30d", "rfm", "derived",
})  # fmt: skip
"""What a condition can read (windows as ``w1h``/``w24h``/``w7d``/``w30d``)."""
_METRIC_NAMES = frozenset(METRICS)
FIELDS = {
    "derived": DERIVED_NAMES, "w1h": _METRIC_NAMES, "w24h": _METRIC_NAMES, "w7d": _METRIC_NAMES,
    "w30d": _METRIC_NAMES, "rfm": frozenset({"recency_days", "frequency", "monetary"}),
    "event": frozenset({"type", "channel", "payload", "time", "inbound", "raised"}),
}  # fmt: skip
"""Names checked at load under these roots (a typo is an error, not a silent null)."""

SEVERITIES = frozenset({"info", "warning", "critical"})
PURPOSES = frozenset({"marketing", "service"})
HOUR_MS = 3_600_000
MAX_HOURS = 24 * 366 * 10
"""Longest ``ttl_hours``/``cooldown_hours`` (ten years)."""
MAX_WEIGHT = 1e6
_FLAG_KEYS = {"name", "severity", "raise_when", "clear_when", "ttl_hours", "reason", "evidence"}
_ACTION_KEYS = {
    "name", "purpose", "eligible_when", "value", "weight", "channel", "cooldown_hours", "ttl_hours", "reason", "item",
}  # fmt: skip
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class FlagRule:
    """One declared flag."""

    name: str
    severity: str
    raise_when: Condition
    clear_when: Condition | None
    ttl_ms: int
    reason: Template
    evidence: tuple[Condition, ...] = ()
    inputs: frozenset[str] | None = None
    """What ``raise_when`` and ``clear_when`` read, when all of it is tracked
    (:mod:`operators.rules.dependencies`); None: the rule runs on every event."""
    guards: tuple[ast.expr | None, ast.expr | None] = field(default=(None, None), compare=False, repr=False)
    """``raise_when`` and ``clear_when`` as trees, for :func:`operators.rules.guards.false_for`."""


@dataclass(frozen=True)
class ActionRule:
    """One declared next-best action."""

    name: str
    purpose: str
    eligible_when: Condition
    value: Condition
    weight: float
    channel: str
    """A channel name, or ``preferred``: the customer's most used contact channel."""
    cooldown_ms: int
    ttl_ms: int
    reason: Template
    item: Condition | None = None
    """What exactly to offer (e.g. ``derived.product_to_offer``), carried on the trigger."""


class Reader:
    """Turns the TOML tables into rules, naming the line of any error (wrong types included)."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.lines = rules_file.LineIndex(text)
        self.seen: set[tuple[str, str]] = set()

    def flag(self, table: dict[str, Any], index: int) -> FlagRule:
        name, where = self._name(table, "flag", index, _FLAG_KEYS)
        label = f"flag {name!r}"
        severity = self._one_of(table, "severity", "warning", SEVERITIES, where, label)
        evidence = table.get("evidence", [])
        if not isinstance(evidence, list) or not all(isinstance(p, str) for p in evidence):
            raise RulebookError(f"{self._at('evidence', where)}: {label}: evidence must be a list of paths")
        if len(evidence) > MAX_EVIDENCE_ITEMS:
            raise RulebookError(f"{self._at('evidence', where)}: {label}: at most {MAX_EVIDENCE_ITEMS} evidence paths")
        on_error = counted_errors("flag", name, "evidence")
        return FlagRule(
            name=name,
            severity=severity,
            raise_when=self._expr(table, "raise_when", name, "flag", where, required=True),  # type: ignore[arg-type]
            clear_when=self._expr(table, "clear_when", name, "flag", where),
            ttl_ms=self._hours(table, "ttl_hours", 24, where, label),
            reason=self._template(table, "flag", name, where),
            inputs=inputs_of(table["raise_when"], table.get("clear_when")),
            guards=(guards.parse(table["raise_when"]), guards.parse(table.get("clear_when"))),
            evidence=tuple(
                self._guard(
                    lambda: compile_evidence(evidence, ROOTS, FIELDS, on_error),
                    self._at("evidence", where),
                    label,
                    "evidence",
                )
            ),
        )

    def action(self, table: dict[str, Any], index: int) -> ActionRule:
        name, where = self._name(table, "action", index, _ACTION_KEYS)
        label = f"action {name!r}"
        purpose = self._one_of(table, "purpose", "marketing", PURPOSES, where, label)
        channel = table.get("channel", "preferred")
        if not isinstance(channel, str) or (channel != "preferred" and channel not in _CHANNELS):
            raise RulebookError(f"{self._at('channel', where)}: {label}: unknown channel {rules_file.shown(channel)}")
        weight = table.get("weight", 1.0)
        if not rules_file.number_within(weight, 0, MAX_WEIGHT):
            raise RulebookError(
                f"{self._at('weight', where)}: {label}: weight must be a number >= 0 and <= {MAX_WEIGHT:g}"
            )
        value = self._expr(table, "value", name, "action", where)
        item = self._expr(table, "item", name, "action", where)
        return ActionRule(
            name=name,
            purpose=purpose,
            eligible_when=self._expr(table, "eligible_when", name, "action", where, required=True),  # type: ignore[arg-type]
            value=value or (lambda ctx: 1.0),
            weight=float(weight),
            channel=channel,
            cooldown_ms=self._hours(table, "cooldown_hours", 72, where, label),
            ttl_ms=self._hours(table, "ttl_hours", 48, where, label),
            reason=self._template(table, "action", name, where),
            item=None if item is None else _short_text(item, counted_errors("action", name, "item")),
        )

    def _one_of(
        self, table: dict[str, Any], key: str, default: str, allowed: frozenset[str], where: str, label: str
    ) -> str:
        value = table.get(key, default)
        if not isinstance(value, str) or value not in allowed:
            raise RulebookError(f"{self._at(key, where)}: {label}: {key} must be one of {sorted(allowed)}")
        return value

    def _at(self, key: str, where: str) -> str:
        """``source:line`` of ``key = ...`` in the table around ``where`` (else ``where``)."""
        line = self.lines.key_line(key, int(where.rsplit(":", 1)[1]))
        return where if line is None else f"{self.source}:{line}"

    def _name(self, table: dict[str, Any], kind: str, index: int, keys: set[str]) -> tuple[str, str]:
        name = table.get("name")
        line = (self.lines.name_line(name) if isinstance(name, str) else None) or self.lines.table_line(kind, index)
        where = f"{self.source}:{line}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise RulebookError(f"{where}: {kind} needs a name of lower-case letters, digits and _")
        if (kind, name) in self.seen:
            raise RulebookError(f"{where}: {kind} {name!r} is declared twice")
        self.seen.add((kind, name))
        extra = set(table) - keys
        if extra:
            raise RulebookError(f"{where}: {kind} {name!r}: unknown keys {sorted(extra)[:10]}")
        return name, where

    def _expr(
        self, table: dict[str, Any], key: str, name: str, kind: str, where: str, required: bool = False
    ) -> Condition | None:
        expr = table.get(key)
        if expr is None:
            if required:
                raise RulebookError(f"{where}: {kind} {name!r} needs {key}")
            return None
        at = self._at(key, where)
        if not isinstance(expr, str):
            raise RulebookError(f"{at}: {kind} {name!r}: {key} must be a string, not {rules_file.toml_type(expr)}")
        on_error = counted_errors(kind, name, key)
        return self._guard(lambda: compile_condition(expr, ROOTS, FIELDS, on_error), at, f"{kind} {name!r}", key)

    def _template(self, table: dict[str, Any], kind: str, name: str, where: str) -> Template:
        label = f"{kind} {name!r}"
        text = table.get("reason", name.replace("_", " "))
        at = self._at("reason", where)
        if not isinstance(text, str):
            raise RulebookError(f"{at}: {label}: reason must be a string, not {rules_file.toml_type(text)}")
        on_error = counted_errors(kind, name, "reason")
        return self._guard(lambda: Template(text, ROOTS, FIELDS, on_error), at, label, "reason")

    def _hours(self, table: dict[str, Any], key: str, default: float, where: str, label: str) -> int:
        hours = table.get(key, default)
        if not rules_file.number_within(hours, 0, MAX_HOURS):
            raise RulebookError(
                f"{self._at(key, where)}: {label}: {key} must be a number of hours >= 0 and <= {MAX_HOURS}"
            )
        return int(float(hours) * HOUR_MS)

    @staticmethod
    def _guard(build: Any, where: str, label: str, key: str) -> Any:
        try:
            return build()
        except ConditionError as exc:
            raise RulebookError(f"{where}: {label}: {key}: {exc}") from None


_CHANNELS = CONTACT_CHANNELS | {"push", "web", "app"}


def _short_text(read: Condition, on_error: Any) -> Condition:
    """An ``item`` reader whose value, shown on the trigger, is at most a reason's length.

    A string is cut to :data:`~operators.rules.templates.MAX_REASON` characters; a list
    or map is kept only if its JSON is at most that many bytes, else the item is null
    and the rule's error is counted (``livesignals_rule_errors_total``): an item must
    name what to offer, not carry a payload.
    """

    def item(ctx: dict[str, Any]) -> Any:
        value = read(ctx)
        if isinstance(value, str):
            return clip(value)
        if isinstance(value, dict | list):
            try:
                size = len(serde.dumps(value))
            except (TypeError, ValueError) as exc:  # not JSON (odd keys, 64-bit overflow)
                on_error(exc)
                return None
            if size > MAX_REASON:
                on_error(ValueError(f"item is {size} bytes of JSON, more than {MAX_REASON}"))
                return None
        return value

    return item
