"""Typed validation of settings: every value checked by its type hint and its declared range or format.

:class:`livesignals.settings.Settings` declares each field's type and, with
``Annotated``, a :class:`Range` or a :class:`Check`; :func:`check_settings` runs
them all whenever settings are built (``Settings.load``, ``Settings(...)``,
``replace``), so the CLI and the engine refuse a bad value at start with one
line that names the setting: ``batch_size: expected an integer, got 'x' (str)``.
A field someone adds later with a plain type hint is checked by its type at
once; ranges are opt-in.

Why not pydantic-settings: the dataclass is what every layer and every test
builds (``Settings(metrics_port=0)``, ``dataclasses.fields``, ``replace``), the
redaction rules must shape every message (a secret never appears in an error
either), and the whole check is ~200 lines with no new dependency.

>>> parse_env("LIVESIGNALS_BATCH_SIZE", "abc", int)
Traceback (most recent call last):
...
livesignals.settings_check.SettingsError: batch_size: LIVESIGNALS_BATCH_SIZE is not an integer: 'abc'
>>> HOUR_RANGE.test("banana")
False
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

MAX_SHOWN = 60
"""A value quoted in an error message is cut to this many characters."""


class SettingsError(ValueError):
    """A setting with a bad value, an unknown setting or an unreadable settings file: one line, naming
    the setting. A ``ValueError``, so callers that catch those keep working."""

    def __init__(self, message: str, setting: str = "") -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class Range:
    """Inclusive bounds of a number setting (``None``: unbounded on that side)."""

    lo: float | None = None
    hi: float | None = None

    def problem(self, value: float) -> str | None:
        """Why ``value`` is out of range, or ``None``.

        >>> Range(1, 10).problem(0)
        'must be at least 1'
        """
        if self.lo is not None and value < self.lo:
            return f"must be at least {self.lo:g}"
        if self.hi is not None and value > self.hi:
            return f"must be at most {self.hi:g}"
        return None


@dataclass(frozen=True)
class Check:
    """A format a string setting must have: ``test`` and what it expects, said to the user."""

    test: Callable[[Any], bool]
    expects: str
    quote: bool = True
    """False for a setting that may hold a password (a URL): its error names what was expected
    and never quotes the value, even redacted, since a malformed URL may hide its secret where
    redaction cannot find it."""


_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _hour_range(text: Any) -> bool:
    m = re.fullmatch(r"\s*(\d{1,2})\s*-\s*(\d{1,2})\s*", text) if isinstance(text, str) else None
    return bool(m) and all(0 <= int(h) <= 23 for h in m.groups()) if m else False


NOT_EMPTY = Check(lambda v: bool(v.strip()), "a non-empty string")
TOPIC = Check(lambda v: bool(_TOPIC_NAME.fullmatch(v)) and v not in (".", ".."),
              "a Kafka topic name (letters, digits, '.', '_', '-'; at most 249)")  # fmt: skip
TOPIC_OR_DERIVED = Check(lambda v: v == "" or TOPIC.test(v),
                         "a Kafka topic name, or empty for the default derived from key_prefix")  # fmt: skip
TOPICS = Check(lambda v: bool(v) and all(TOPIC.test(t) for t in v), "one or more Kafka topic names")
HOUR_RANGE = Check(_hour_range, "local hours 'start-end', each 0-23 (e.g. '21-8'; '0-0' for none)")


def _redis_url_ok(value: str) -> bool:
    """A ``redis://``, ``rediss://`` or ``unix://`` URL whose port, if any, is a number 0-65535."""
    if "://" not in value or value.split("://", 1)[0] not in ("redis", "rediss", "unix"):
        return False
    host = value.split("://", 1)[1].rsplit("@", 1)[-1].split("/", 1)[0].split("?", 1)[0]  # a password may hold / or @
    port = host.rsplit("]", 1)[-1].rpartition(":")[2] if ":" in host.rsplit("]", 1)[-1] else ""
    return not port or (port.isascii() and port.isdigit() and int(port) <= 65535)


def _addresses_ok(values: Any) -> bool:
    """Each an IP address or network (``10.0.0.0/8``, ``::1``), or ``*`` (every peer).

    >>> _addresses_ok(("10.0.0.0/8", "::1", "*")), _addresses_ok(("proxy.local",))
    (True, False)
    """
    for value in values:
        if value == "*":
            continue
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return False
    return True


PROXY_ADDRESSES = Check(_addresses_ok, "IP addresses or networks (e.g. 10.0.0.0/8), or * for every peer")
REDIS_URL = Check(_redis_url_ok, "a redis://, rediss:// or unix:// URL (with a numeric port)", quote=False)
LOG_LEVEL = Check(lambda v: v in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                  "DEBUG, INFO, WARNING, ERROR or CRITICAL")  # fmt: skip

_KAFKA_SCALARS = (str, int, float, bool)


def shown(value: Any, redact: Callable[[Any], Any] = lambda v: v) -> str:
    """``value`` as quoted in a message: redacted, cut to :data:`MAX_SHOWN` characters.

    >>> shown("x" * 100)[-5:]
    "x...'"
    """
    text = repr(redact(value))
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 4] + "...'"


def _type_name(hint: Any) -> str:
    return {int: "an integer", float: "a number", bool: "a boolean (true or false)", str: "a string"}.get(
        hint, str(hint)
    )


def parse_env(variable: str, raw: str, hint: Any) -> Any:
    """The value of environment variable ``variable`` (a string) converted to the type of its setting.

    >>> parse_env("LIVESIGNALS_INPUT_TOPICS", "a, b", tuple[str, ...])
    ('a', 'b')
    """
    name = variable.removeprefix("LIVESIGNALS_").lower()
    hint = _unwrap(hint)[0]
    origin = get_origin(hint)
    where = f"{name}: {variable}"
    if hint is bool:
        if raw.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.strip().lower() in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{where} is not a boolean: {shown(raw)} (true/false, 1/0, yes/no, on/off)", name)
    if hint in (int, float):
        try:
            if not raw.strip().isascii():  # Python would read '١٢' (Arabic-Indic digits) as 12
                raise ValueError(raw)
            return hint(raw.strip())
        except ValueError:
            raise SettingsError(f"{where} is not {_type_name(hint)}: {shown(raw)}", name) from None
    if origin is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if origin is Literal:
        if raw not in get_args(hint):
            raise SettingsError(f"{where}: {shown(raw)} is not one of {', '.join(get_args(hint))}", name)
        return raw
    if origin is dict:
        raise SettingsError(f"{where}: {name} is a table: it can only be set in the TOML file", name)
    return raw


def _unwrap(hint: Any) -> tuple[Any, list[Any]]:
    """``(type, [Range/Check...])`` from a possibly ``Annotated`` hint."""
    if get_origin(hint) is Annotated:
        base, *extras = get_args(hint)
        return base, [e for e in extras if isinstance(e, Range | Check)]
    return hint, []


def check_value(name: str, value: Any, hint: Any, redact: Callable[[Any], Any]) -> Any:
    """``value`` checked against ``hint`` (and its ``Annotated`` range or format), converted where that loses
    nothing (a TOML integer for a float setting, a list for a tuple); raises :class:`SettingsError`.

    >>> check_value("nba_epsilon", 2, Annotated[float, Range(0, 1)], lambda v: v)
    Traceback (most recent call last):
    ...
    livesignals.settings_check.SettingsError: nba_epsilon: must be at most 1, got 2.0
    """
    base, extras = _unwrap(hint)
    value = _check_type(name, value, base, redact)
    for extra in extras:
        if isinstance(extra, Range):
            problem = extra.problem(value)
            if problem:
                raise SettingsError(f"{name}: {problem}, got {shown(value, redact)}", name)
        elif not extra.test(value):
            got = shown(value, redact) if extra.quote else "something else (not shown: it may hold a password)"
            raise SettingsError(f"{name}: expected {extra.expects}, got {got}", name)
    return value


def _wrong(name: str, value: Any, expected: str, redact: Callable[[Any], Any]) -> SettingsError:
    return SettingsError(f"{name}: expected {expected}, got {shown(value, redact)} ({type(value).__name__})", name)


def _check_type(name: str, value: Any, hint: Any, redact: Callable[[Any], Any]) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        arms = get_args(hint)
        if value is None and type(None) in arms:
            return None
        errors = []
        for arm in (a for a in arms if a is not type(None)):
            try:
                return _check_type(name, value, arm, redact)
            except SettingsError as exc:
                errors.append(exc)
        raise errors[0] if errors else _wrong(name, value, str(hint), redact)
    if hint is bool:
        if not isinstance(value, bool):
            raise _wrong(name, value, _type_name(bool), redact)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(name, value, _type_name(int), redact)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong(name, value, _type_name(float), redact)
        if not math.isfinite(value):
            raise SettingsError(f"{name}: expected a finite number, got {value!r}", name)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _wrong(name, value, _type_name(str), redact)
        return value
    if origin is Literal:
        if value not in get_args(hint):
            allowed = ", ".join(map(str, get_args(hint)))
            raise SettingsError(f"{name}: {shown(value, redact)} is not one of {allowed}", name)
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise _wrong(name, value, "a list of strings", redact)
        return tuple(value)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _wrong(name, value, "a table", redact)
        if name == "kafka_config":
            return flatten_kafka_config(value, redact)
        if name == "models":
            check_models_table(value)
        return dict(value)
    return value


MODEL_KINDS = ("sentiment", "churn", "fraud", "offers", "flag_relevance")
"""The model kinds of ``models.registry.KINDS`` (the kernel may not import ``models``; a test keeps them equal)."""
MODEL_ROLES = ("champion", "challenger")


def check_models_table(table: Mapping[str, Any]) -> None:
    """``[models.<kind>.<role>]`` tables only: a misspelt kind or role is an error, not silently ignored.

    >>> check_models_table({"churn": {"chalenger": {}}})
    Traceback (most recent call last):
    ...
    livesignals.settings_check.SettingsError: models.churn: unknown role 'chalenger' (champion or challenger)
    """
    for kind, roles in table.items():
        if kind not in MODEL_KINDS:
            raise SettingsError(f"models: unknown model kind {kind!r} (one of {', '.join(MODEL_KINDS)})", "models")
        if not isinstance(roles, Mapping):
            raise SettingsError(f"models.{kind}: expected a table of roles, got {type(roles).__name__}", "models")
        for role, params in roles.items():
            if role not in MODEL_ROLES:
                raise SettingsError(f"models.{kind}: unknown role {role!r} (champion or challenger)", "models")
            if not isinstance(params, Mapping):
                raise SettingsError(f"models.{kind}.{role}: expected a table of parameters", "models")


def flatten_kafka_config(table: Mapping[str, Any], redact: Callable[[Any], Any], path: str = "") -> dict[str, Any]:
    """librdkafka options as ``{"dotted.name": scalar}``.

    TOML reads an unquoted ``ssl.key.pem = "..."`` under ``[kafka_config]`` as nested tables: that is
    the option ``ssl.key.pem``, so nested tables are joined back into dotted names. A list, a date, or
    an option given twice (quoted and as a table) is a :class:`SettingsError`, never handed to librdkafka.

    >>> flatten_kafka_config({"ssl": {"key": {"pem": "K"}}, "linger.ms": 5}, str)
    {'ssl.key.pem': 'K', 'linger.ms': 5}
    """
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{path}.{key}" if path else str(key)
        if isinstance(value, Mapping):
            items = flatten_kafka_config(value, redact, name).items()
        elif isinstance(value, _KAFKA_SCALARS) and not (isinstance(value, float) and not math.isfinite(value)):
            items = {name: value}.items()
        else:
            raise SettingsError(
                f"kafka_config: option {name!r} must be a string, number or boolean, not {type(value).__name__}",
                "kafka_config",
            )
        for option, scalar in items:
            if option in out:
                raise SettingsError(f"kafka_config: option {option!r} is given twice", "kafka_config")
            out[option] = scalar
    return out


def check_settings(
    values: Mapping[str, Any], hints: Mapping[str, Any], redact: Callable[[str, Any], Any]
) -> dict[str, Any]:
    """Every field of ``values`` checked by its hint; returns the converted values that changed."""
    changed = {}
    for name, value in values.items():
        checked = check_value(name, value, hints[name], functools.partial(redact, name))
        if checked is not value:
            changed[name] = checked
    return changed
