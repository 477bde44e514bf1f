"""The rules file: declarative flags and next-best actions, validated at load, reloadable.

A business analyst writes::

    [[flag]]
    name = "vip_stuck"
    severity = "warning"
    raise_when = "derived.vip and w1h.errors >= 2"
    clear_when = "w1h.errors == 0"
    ttl_hours = 4
    reason = "valuable customer stuck: {w1h.errors} errors in the last hour"
    evidence = ["derived.context_carried"]

    [[action]]
    name = "retention_offer"
    purpose = "marketing"
    eligible_when = "predictions.churn.p >= 0.5"
    value = "derived.lifetime_value * 0.2"
    weight = 1.0
    cooldown_hours = 72
    reason = "churn risk {predictions.churn.p:.0%}"

A flag is raised when ``raise_when`` holds (once while it is active) and
cleared when ``clear_when`` holds (hysteresis: raised at ``errors >= 2``, it
stays until ``errors == 0``, so it does not flap) or, lazily, by the first
event after its ``ttl_hours``. Both raise and clear are published.

An action is a *candidate* for the customer while ``eligible_when`` holds
and it was not proposed within ``cooldown_hours``; :mod:`operators.decisions.actions`
ranks the candidates by propensity x ``value`` x ``weight``.

Conditions use :mod:`operators.rules.expressions` over :data:`ROOTS`
(:mod:`operators.rules.context` lists the ``derived`` values); reasons use
:mod:`operators.rules.templates`. A malformed file is rejected with the line of
the error, and the rules in force stay in force (:class:`RulebookSource`).
"""

from __future__ import annotations

import logging
import os
import re
import time
import tomllib
from dataclasses import dataclass
from typing import Any

from livesignals.contract import CONTACT_CHANNELS, Event
from operators.profile360.profile import CustomerState
from operators.profile360.windows import METRICS
from operators.rules.context import DERIVED_NAMES
from operators.rules.expressions import Condition, ConditionError, compile_condition
from operators.rules.signals import Flag, new_flag
from operators.rules.templates import Template, compile_evidence, evidence_items

log = logging.getLogger(__name__)

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
_FLAG_KEYS = {"name", "severity", "raise_when", "clear_when", "ttl_hours", "reason", "evidence"}
_ACTION_KEYS = {
    "name", "purpose", "eligible_when", "value", "weight", "channel", "cooldown_hours", "ttl_hours", "reason", "item",
}  # fmt: skip
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


class RulebookError(ValueError):
    """A rules file that cannot be used; the message names the line."""


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


@dataclass(frozen=True)
class Rulebook:
    """The flags and actions of one rules file."""

    flags: tuple[FlagRule, ...]
    actions: tuple[ActionRule, ...] = ()
    source: str = ""

    @classmethod
    def parse(cls, text: str, source: str = "<rules>") -> Rulebook:
        """Validate and compile a rules file, or raise :class:`RulebookError` naming the line."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RulebookError(f"{source}: {exc}") from None
        unknown = set(doc) - {"flag", "action"}
        if unknown:
            raise RulebookError(f"{source}:{_line_of(text, sorted(unknown)[0])}: unknown table {sorted(unknown)[0]!r}")
        reader = _Reader(text, source)
        flags = tuple(reader.flag(t, i) for i, t in enumerate(_tables(doc, "flag", source)))
        actions = tuple(reader.action(t, i) for i, t in enumerate(_tables(doc, "action", source)))
        return cls(flags, actions, source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Rulebook:
        """Read and validate a rules file."""
        with open(path, encoding="utf-8") as fh:
            return cls.parse(fh.read(), str(path))

    def evaluate(self, state: CustomerState, event: Event, ctx: dict[str, Any]) -> list[Flag]:
        """Flags this event raises or clears, deduplicated against the state (which it updates).

        ``ctx`` is :func:`operators.rules.context.context` for this event.
        """
        now = event.event_time_ms
        out: list[Flag] = []
        for rule in self.flags:
            active = state.flags.get(rule.name)
            if active is not None and active["expires_at"] <= now:  # lazy expiry: say it is over
                del state.flags[rule.name]
                out.append(new_flag(event, rule.name, "info", f"expired: {active.get('reason', rule.name)}", 0,
                                    cleared=True))  # fmt: skip
                active = None
            if active is None:
                if rule.raise_when(ctx):
                    reason = rule.reason.render(ctx)
                    evidence = (event.event_id, *evidence_items([read(ctx) for read in rule.evidence]))
                    flag = new_flag(event, rule.name, rule.severity, reason, rule.ttl_ms, evidence=evidence)
                    state.flags[rule.name] = {
                        "id": flag.flag_id, "severity": flag.severity, "reason": reason,
                        "raised_at": flag.raised_at_ms, "expires_at": flag.expires_at_ms,
                    }  # fmt: skip
                    out.append(flag)
            elif rule.clear_when is not None and rule.clear_when(ctx):
                del state.flags[rule.name]
                reason = f"cleared: {active.get('reason', rule.name)}"
                out.append(new_flag(event, rule.name, "info", reason, 0, cleared=True))
        return out


class _Reader:
    """Turns the TOML tables into rules, naming the line of any error."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.seen: set[tuple[str, str]] = set()

    def flag(self, table: dict[str, Any], index: int) -> FlagRule:
        name, where = self._name(table, "flag", index, _FLAG_KEYS)
        severity = self._one_of(table, "severity", "warning", SEVERITIES, where, f"flag {name!r}")
        evidence = table.get("evidence", [])
        if not isinstance(evidence, list) or not all(isinstance(p, str) for p in evidence):
            raise RulebookError(f"{self._at('evidence', None, where)}: flag {name!r}: evidence must be a list of paths")
        return FlagRule(
            name=name,
            severity=severity,
            raise_when=self._expr(table, "raise_when", name, "flag", required=True),  # type: ignore[arg-type]
            clear_when=self._expr(table, "clear_when", name, "flag"),
            ttl_ms=self._hours(table, "ttl_hours", 24, where, name),
            reason=self._template(table, f"flag {name!r}", where),
            evidence=tuple(
                self._guard(lambda: compile_evidence(evidence, ROOTS, FIELDS), where, f"flag {name!r}", "evidence")
            ),
        )

    def action(self, table: dict[str, Any], index: int) -> ActionRule:
        name, where = self._name(table, "action", index, _ACTION_KEYS)
        purpose = self._one_of(table, "purpose", "marketing", PURPOSES, where, f"action {name!r}")
        channel = str(table.get("channel", "preferred"))
        if channel != "preferred" and channel not in CONTACT_CHANNELS | {"push", "web", "app"}:
            raise RulebookError(f"{self._at('channel', channel, where)}: action {name!r}: unknown channel {channel!r}")
        weight = table.get("weight", 1.0)
        if not isinstance(weight, int | float) or weight < 0:
            raise RulebookError(f"{self._at('weight', weight, where)}: action {name!r}: weight must be a number >= 0")
        return ActionRule(
            name=name,
            purpose=purpose,
            eligible_when=self._expr(table, "eligible_when", name, "action", required=True),  # type: ignore[arg-type]
            value=self._expr(table, "value", name, "action") or (lambda ctx: 1.0),
            weight=float(weight),
            channel=channel,
            cooldown_ms=self._hours(table, "cooldown_hours", 72, where, name),
            ttl_ms=self._hours(table, "ttl_hours", 48, where, name),
            reason=self._template(table, f"action {name!r}", where),
            item=self._expr(table, "item", name, "action"),
        )

    def _one_of(
        self, table: dict[str, Any], key: str, default: str, allowed: frozenset[str], where: str, label: str
    ) -> str:
        value = table.get(key, default)
        if value not in allowed:
            raise RulebookError(f"{self._at(key, value, where)}: {label}: {key} must be one of {sorted(allowed)}")
        return str(value)

    def _at(self, key: str, value: Any, where: str) -> str:
        """``source:line`` of ``key = value`` in the table that starts at ``where`` (else ``where``)."""
        start = int(where.rsplit(":", 1)[1])
        lines = self.text.splitlines()
        for number in range(start, len(lines) + 1):
            line = lines[number - 1].strip()
            if number > start and line.startswith("[["):
                break
            if line.startswith(f"{key} ") or line.startswith(f"{key}="):
                return f"{self.source}:{number}"
        return where

    def _name(self, table: dict[str, Any], kind: str, index: int, keys: set[str]) -> tuple[str, str]:
        name = table.get("name")
        line = _line_of(self.text, _quoted(name)) if isinstance(name, str) else _nth_table_line(self.text, kind, index)
        where = f"{self.source}:{line}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise RulebookError(f"{where}: {kind} needs a name of lower-case letters, digits and _")
        if (kind, name) in self.seen:
            raise RulebookError(f"{where}: {kind} {name!r} is declared twice")
        self.seen.add((kind, name))
        extra = set(table) - keys
        if extra:
            raise RulebookError(f"{where}: {kind} {name!r}: unknown keys {sorted(extra)}")
        return name, where

    def _expr(self, table: dict[str, Any], key: str, name: str, kind: str, required: bool = False) -> Condition | None:
        expr = table.get(key)
        if expr is None:
            if required:
                raise RulebookError(f"{self.source}:{_line_of(self.text, _quoted(name))}: {kind} {name!r} needs {key}")
            return None
        where = f"{self.source}:{_line_of(self.text, str(expr))}"
        return self._guard(lambda: compile_condition(str(expr), ROOTS, FIELDS), where, f"{kind} {name!r}", key)

    def _template(self, table: dict[str, Any], label: str, where: str) -> Template:
        text = str(table.get("reason", table["name"].replace("_", " ")))
        where = f"{self.source}:{_line_of(self.text, text)}" if "reason" in table else where
        return self._guard(lambda: Template(text, ROOTS, FIELDS), where, label, "reason")

    @staticmethod
    def _hours(table: dict[str, Any], key: str, default: float, where: str, name: str) -> int:
        hours = table.get(key, default)
        if not isinstance(hours, int | float) or hours < 0:
            raise RulebookError(f"{where}: {name!r}: {key} must be a number of hours >= 0")
        return int(float(hours) * HOUR_MS)

    @staticmethod
    def _guard(build: Any, where: str, label: str, key: str) -> Any:
        try:
            return build()
        except ConditionError as exc:
            raise RulebookError(f"{where}: {label}: {key}: {exc}") from None


def _tables(doc: dict[str, Any], kind: str, source: str) -> list[dict[str, Any]]:
    tables = doc.get(kind, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise RulebookError(f"{source}: {kind} must be written as [[{kind}]] tables")
    return tables


def _quoted(value: Any) -> str:
    """How a string value appears in TOML (to find its line)."""
    return f'"{value}"'


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return 1


def _nth_table_line(text: str, kind: str, index: int) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if line.strip() == f"[[{kind}]]"]
    return lines[index] if index < len(lines) else 1


class RulebookSource:
    """The rules in force, reloaded when the file changes; a bad file keeps the old rules."""

    def __init__(self, path: str | None, check_every_s: float = 5.0) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self.rulebook = Rulebook.load(path) if path else Rulebook(())
        self.last_error: str | None = None
        self._mtime = os.stat(path).st_mtime if path else 0.0
        self._checked = time.monotonic()

    def current(self) -> Rulebook:
        """The rules in force (checking the file at most every ``check_every_s``)."""
        now = time.monotonic()
        if self.path and now - self._checked >= self.check_every_s:
            self._checked = now
            self.reload_if_changed()
        return self.rulebook

    def reload_if_changed(self) -> bool:
        """Reload now if the file changed; True when new rules took effect."""
        if not self.path:
            return False
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError as exc:
            self.last_error = f"{self.path}: {exc}"
            log.error("rules file unreadable, keeping the rules in force: %s", self.last_error)
            return False
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            self.rulebook = Rulebook.load(self.path)
        except RulebookError as exc:
            self.last_error = str(exc)
            log.error("rules file rejected, keeping the rules in force: %s", exc)
            return False
        self.last_error = None
        book = self.rulebook
        log.info("rules reloaded from %s: %d flags, %d actions", self.path, len(book.flags), len(book.actions))
        return True
