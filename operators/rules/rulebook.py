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
the error, and the rules in force stay in force
(:class:`operators.rules.rulebook_source.RulebookSource`).

Whatever the file holds, loading it either succeeds or raises
:class:`RulebookError` (``rules.toml:LINE: ...``; see
:mod:`operators.rules.rules_file` for the file itself and the limits in
:mod:`operators.rules.expressions` and :mod:`operators.rules.templates`). A
rule that raises while it runs is counted in
``livesignals_rule_errors_total``, logged once, and taken as false: it never
fails the batch.
"""

from __future__ import annotations

import ast
import itertools
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

from livesignals import metrics, serde
from livesignals.contract import CONTACT_CHANNELS, Event
from operators.profile360.profile import CustomerState
from operators.profile360.sizes import printable
from operators.profile360.update import MAX_FLAGS
from operators.profile360.windows import METRICS
from operators.rules import guards, plans, rules_file
from operators.rules.context import DERIVED_NAMES, kind_of
from operators.rules.dependencies import RuleMemo, inputs_of
from operators.rules.expressions import Condition, ConditionError, compile_condition
from operators.rules.failures import counted_errors, counting, failures_so_far, rule_failed
from operators.rules.rules_file import RulebookError
from operators.rules.signals import Flag, new_flag
from operators.rules.templates import MAX_EVIDENCE_ITEMS, MAX_REASON, Template, clip, compile_evidence, evidence_items

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
_RANK = {"info": 1, "warning": 2, "critical": 3}
MAX_STORED_REASON = 200
"""A raised flag's reason as the profile keeps it, in characters (the published flag has it whole)."""
MAX_RULES = 256
"""Most ``[[flag]]`` and most ``[[action]]`` tables in one file: every rule runs for every event."""
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

__all__ = ["ActionRule", "FlagRule", "Rulebook", "RulebookError"]

MAX_STORED_EVIDENCE = 100
"""An evidence item as the profile keeps it, in characters (the published flag has it whole): with
:data:`FLAG_EVIDENCE_KEPT` it bounds a profile's flags in bytes (``state/keys.py``)."""
FLAG_EVIDENCE_KEPT = 5
"""Evidence items (each <= 200 characters) a raised flag keeps in the profile, for the 360 and the agent
desktop: the raising event first. The published flag carries all of them."""


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


@dataclass(frozen=True)
class Rulebook:
    """The flags and actions of one rules file."""

    flags: tuple[FlagRule, ...]
    actions: tuple[ActionRule, ...] = ()
    source: str = ""
    token: int = field(default_factory=itertools.count().__next__, compare=False)
    """Unique per rulebook built: a customer's :class:`RuleMemo` holds for this one only."""
    _plans: dict[Any, plans.Plan] = field(default_factory=dict, init=False, compare=False, repr=False)
    """:meth:`_plan`'s memo."""
    _tracked: int = field(default=0, init=False, compare=False, repr=False)
    """How many flag rules are tracked (their inputs known)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tracked", sum(1 for rule in self.flags if rule.inputs is not None))

    @classmethod
    def parse(cls, text: str, source: str = "<rules>") -> Rulebook:
        """Validate and compile a rules file, or raise :class:`RulebookError` naming the line."""
        doc = rules_file.parse_toml(text, source)
        unknown = set(doc) - {"flag", "action"}
        if unknown:
            raise RulebookError(
                f"{source}:{rules_file.line_of(text, sorted(unknown)[0])}: unknown table {sorted(unknown)[0]!r}"
            )
        reader = _Reader(text, source)
        found = {kind: rules_file.tables(doc, kind, source, text) for kind in ("flag", "action")}
        for kind, tables in found.items():
            if len(tables) > MAX_RULES:
                line = reader.lines.table_line(kind, MAX_RULES)
                raise RulebookError(f"{source}:{line}: more than {MAX_RULES} [[{kind}]] tables (at most {MAX_RULES})")
        try:
            flags = tuple(reader.flag(t, i) for i, t in enumerate(found["flag"]))
            actions = tuple(reader.action(t, i) for i, t in enumerate(found["action"]))
        except (RecursionError, MemoryError) as exc:  # the limits should make this impossible; say where anyway
            raise RulebookError(f"{source}:1: rules too large to compile ({type(exc).__name__})") from None
        return cls(flags, actions, source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Rulebook:
        """Read and validate a rules file (:func:`operators.rules.rules_file.read_file` limits it)."""
        return cls.parse(rules_file.read_file(path), str(path))

    def evaluate(
        self, state: CustomerState, event: Event, ctx: dict[str, Any], changed: frozenset[str] | None = None
    ) -> list[Flag]:
        """Flags this event raises or clears, deduplicated against the state (which it updates).

        ``ctx`` is :func:`operators.rules.context.context` for this event. ``changed``: the tracked
        inputs the event changed (:func:`operators.rules.dependencies.changed_by`); a rule whose
        inputs it misses and that was stable is skipped, and, with a context built by
        :func:`~operators.rules.context.context`, a condition the event's kind makes false is not run
        (:mod:`operators.rules.guards`): the same flags either way. None: every rule runs (no memo kept).
        """
        now = event.event_time_ms
        out: list[Flag] = []
        memo = state.rules_memo if changed is not None and state.erased is None else None
        known = memo.stable if memo is not None and memo.rulebook == self.token else {}
        flags = state.flags
        bare = not flags
        plan = self._plan(changed, ctx, bare)
        stable: dict[str, str | None]
        if bare and known and memo is not None and memo.quiet:  # what the memo skips is known at once
            steps, stable = plan.quiet_steps, dict(plan.quiet_stable)
        else:
            steps, stable = plan.steps, {}
        for rule, skippable, raise_false, clear_false in steps:
            name = rule.name
            try:  # free unless it raises; state.flags changes only once all is computed
                active = flags.get(name)
                if active is not None and active["expires_at"] <= now:  # lazy expiry: say it is over
                    expired = new_flag(event, name, "info", clip(f"expired: {active.get('reason', name)}"),
                                       0, cleared=True)  # fmt: skip
                    del flags[name]
                    out.append(expired)
                    active = None
                elif skippable and name in known:  # tracked, reading nothing the event changed
                    was = known[name]
                    if was == (None if active is None else active.get("id")):
                        stable[name] = was  # nothing it reads changed since it last ran
                        continue
                if raise_false if active is None else clear_false:  # false for this kind of event
                    if rule.inputs is not None:  # as if it ran: nothing produced, nothing failed
                        stable[name] = None if active is None else active.get("id")
                    continue
                tracked = rule.inputs is not None
                produced, failed, held = len(out), failures_so_far() if tracked else 0, False
                if active is None:
                    if rule.raise_when(ctx):
                        if self._room_for(state, event, rule, out):
                            out.append(self._raise(state, event, rule, ctx))
                        else:
                            held = True
                elif rule.clear_when is not None and rule.clear_when(ctx):
                    cleared = new_flag(event, name, "info", clip(f"cleared: {active.get('reason', name)}"),
                                       0, cleared=True)  # fmt: skip
                    del flags[name]
                    out.append(cleared)
                if tracked and len(out) == produced and not held and failures_so_far() == failed:
                    active = flags.get(name)
                    stable[name] = None if active is None else active.get("id")
            except Exception as exc:  # a rule that fails is false for this event; the batch goes on
                rule_failed("flag", name, "evaluate", exc)
        if changed is not None:  # quiet: every tracked rule stable with no flag (none was raised at the start)
            state.rules_memo = RuleMemo(self.token, stable, now, bare and len(stable) == self._tracked)
        else:
            state.rules_memo = None
        return out

    def _plan(self, changed: frozenset[str] | None, ctx: dict[str, Any], bare: bool) -> plans.Plan:
        """:func:`operators.rules.plans.plan` for this event, memoised (an event changes one of a few
        sets of inputs, and kinds are few); a kind only on the dependency-aware path (``changed``)
        and for a context :func:`~operators.rules.context.context` built."""
        kind = None if changed is None else kind_of(ctx)  # None: every rule runs, as it reads
        key = (changed, kind, bare)
        found = self._plans.get(key)
        if found is None:
            found = plans.plan(self.flags, changed, kind, bare)
            if len(self._plans) < 1024:
                self._plans[key] = found
        return found

    @staticmethod
    def _raise(state: CustomerState, event: Event, rule: FlagRule, ctx: dict[str, Any]) -> Flag:
        """Raise ``rule``'s flag: published whole, kept in the profile clipped."""
        reason = rule.reason.render(ctx)
        evidence = (event.event_id, *evidence_items([read(ctx) for read in rule.evidence]))
        flag = new_flag(event, rule.name, rule.severity, reason, rule.ttl_ms, evidence=evidence)
        kept = flag.evidence[:FLAG_EVIDENCE_KEPT]  # without controls: 4 bytes a character at most
        state.flags[rule.name] = {
            "id": flag.flag_id, "severity": flag.severity,
            "reason": clip(printable(reason), MAX_STORED_REASON),
            "raised_at": flag.raised_at_ms, "expires_at": flag.expires_at_ms,
            "evidence": [clip(printable(e), MAX_STORED_EVIDENCE) for e in kept],
        }  # fmt: skip
        return flag

    @staticmethod
    def _room_for(state: CustomerState, event: Event, rule: FlagRule, out: list[Flag]) -> bool:
        """Whether ``rule`` may raise now: a profile holds at most :data:`MAX_FLAGS` raised flags.

        When full, the new flag takes the place of the weakest raised one (lowest
        severity, then the most recently raised) only if it is strictly more
        severe -- that one is published as cleared; otherwise it is held back and
        counted in ``livesignals_flags_held_back_total{flag}``. Raised flags stay
        raised while their conditions hold: no raise/clear churn however many
        rules hold (each displacement raises the total severity, so they end).
        """
        flags = state.flags
        if len(flags) < MAX_FLAGS:
            return True
        weakest = min(flags, key=lambda n: (_RANK.get(str(flags[n].get("severity")), 0), -flags[n].get("raised_at", 0)))
        if _RANK[rule.severity] <= _RANK.get(str(flags[weakest].get("severity")), 0):
            if counting():  # not again when an undo re-applies the event
                metrics.FLAGS_HELD_BACK.labels(rule.name).inc()
            return False
        shown = clip(f"displaced by {rule.name}: {flags[weakest].get('reason', weakest)}")
        out.append(new_flag(event, weakest, "info", shown, 0, cleared=True))
        del flags[weakest]
        return True


class _Reader:
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
