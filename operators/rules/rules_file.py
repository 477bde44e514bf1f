"""Reading a rules file safely: every problem is a :class:`RulebookError` naming the line.

Whatever the bytes -- too large, not UTF-8, not TOML, nested thousands of
levels deep, numbers with more digits than Python converts -- the reader
raises a :class:`RulebookError` whose message starts ``path:LINE:``, never
``UnicodeDecodeError``, ``RecursionError`` or ``ValueError``.

>>> parse_toml('name = "x"\\n[[flag\\n', "rules.toml")
Traceback (most recent call last):
...
operators.rules.rules_file.RulebookError: rules.toml:2: Expected ']]' at the end of an array declaration (column 7)
>>> decode(b'a = 1\\nb = "\\xff"\\n', "rules.toml")
Traceback (most recent call last):
...
operators.rules.rules_file.RulebookError: rules.toml:2: not UTF-8 (byte 0xff at offset 11)
"""

from __future__ import annotations

import bisect
import math
import os
import re
import tomllib
from typing import Any

MAX_FILE_BYTES = 262_144
"""Largest rules file read (the shipped catalogue is about 10 kB; 256 flags and 256 actions fit
several times over). Python's TOML parser slows more than linearly with the number of keys
(100k one-line keys took seconds), so the cap also bounds a reload's pause."""

MAX_DOTS_PER_LINE = 8
"""Most dots on one line outside quoted strings: a dotted key's cost in Python's TOML parser grows
with the square of its depth (a 100 kB key of 50k parts took 140 s), so deeper keys are refused
before parsing; a rules file nests two or three levels."""

_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_QUOTED = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'')


class RulebookError(ValueError):
    """A rules file that cannot be used; the message names the file and line."""


def read_file(path: str | os.PathLike[str]) -> str:
    """The text of a rules file: at most :data:`MAX_FILE_BYTES`, valid UTF-8."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RulebookError(f"{path}:1: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise RulebookError(f"{path}:1: larger than {MAX_FILE_BYTES:,} bytes")
    return decode(data, str(path))


def decode(data: bytes, source: str) -> str:
    """``data`` as UTF-8 text, else an error naming the line of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RulebookError(
            f"{source}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """The TOML document, else an error naming the line (keys nested deeper than
    :data:`MAX_DOTS_PER_LINE` are refused before parsing, in time linear in the text).

    >>> parse_toml("a" + ".a" * 100 + " = 1", "rules.toml")
    Traceback (most recent call last):
    ...
    operators.rules.rules_file.RulebookError: rules.toml:1: more than 8 dots outside quotes: keys nest too deeply
    """
    for number, line in enumerate(text.split("\n"), 1):
        if line.count(".") > MAX_DOTS_PER_LINE and _QUOTED.sub("", line).count(".") > MAX_DOTS_PER_LINE:
            raise RulebookError(
                f"{source}:{number}: more than {MAX_DOTS_PER_LINE} dots outside quotes: keys nest too deeply"
            )
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _TOML_WHERE.search(message)
        if m is not None:
            raise RulebookError(f"{source}:{m.group(1)}: {message[: m.start()]} (column {m.group(2)})") from None
        raise RulebookError(f"{source}:{max(1, text.count(chr(10)))}: {message}") from None
    except (RecursionError, MemoryError):
        raise RulebookError(f"{source}:{_deepest_line(text)}: arrays or tables nested too deeply") from None
    except ValueError as exc:  # tomllib converts digits with int(): Python's 4,300-digit limit
        raise RulebookError(f"{source}:{_longest_number_line(text)}: a number too long ({exc})") from None


def line_of(text: str, needle: str) -> int:
    """The first line holding ``needle`` (1 if none)."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return 1


class LineIndex:
    """Where things are in a rules file, found in one pass over its lines (errors name lines).

    Looking a key up rescanned the text per rule, which made a file of 8,000
    flags take a minute to load; the index makes loading linear in the file.

    >>> ix = LineIndex('[[flag]]\\nname = "a"\\nraise_when = "x"\\n\\n[[flag]]\\nname = "b"\\n')
    >>> ix.table_line("flag", 1), ix.name_line("b"), ix.key_line("raise_when", 2), ix.key_line("reason", 6)
    (5, 6, 3, None)
    """

    def __init__(self, text: str) -> None:
        self.headers: list[int] = []
        """Line numbers of every line that opens a table (``[...]``), in order."""
        self.tables: dict[str, list[int]] = {}
        """Per ``[[kind]]``: the lines of its headers, in order."""
        self.names: dict[str, int] = {}
        """First line of ``name = "<value>"`` per value."""
        self._keys: dict[int, dict[str, int]] = {}
        """Per table (its header line; 1 before any header): key -> first line of ``key = ...``."""
        current = 1
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if line.startswith("["):
                current = number
                self.headers.append(number)
                if line.startswith("[[") and line.endswith("]]"):
                    self.tables.setdefault(line[2:-2].strip(), []).append(number)
                continue
            key = _KEY.match(line)
            if key is None:
                continue
            self._keys.setdefault(current, {}).setdefault(key.group(1), number)
            if key.group(1) == "name":
                value = _QUOTED.match(line, key.end())
                if value is not None:
                    self.names.setdefault(value.group(1) or value.group(2), number)

    def table_line(self, kind: str, index: int) -> int:
        """The line of the ``index``-th ``[[kind]]`` header (1 if none)."""
        lines = self.tables.get(kind, [])
        return lines[index] if index < len(lines) else 1

    def name_line(self, name: str) -> int | None:
        """The line of ``name = "<name>"`` (None if not written so)."""
        return self.names.get(name)

    def key_line(self, key: str, near: int) -> int | None:
        """The line of ``key = ...`` in the table around line ``near`` (None if not found)."""
        at = bisect.bisect_right(self.headers, near)
        table = self.headers[at - 1] if at else 1
        return self._keys.get(table, {}).get(key)


_KEY = re.compile(r"([A-Za-z0-9_-]+)\s*=")
_QUOTED = re.compile(r"\s*(?:\"([^\"]*)\"|'([^']*)')")


def tables(doc: dict[str, Any], kind: str, source: str, text: str) -> list[dict[str, Any]]:
    """The ``[[kind]]`` tables of the document (none if absent), else an error naming the line."""
    found = doc.get(kind, [])
    if not isinstance(found, list) or not all(isinstance(t, dict) for t in found):
        raise RulebookError(f"{source}:{line_of(text, kind)}: {kind} must be written as [[{kind}]] tables")
    return found


def number_within(value: Any, low: float, high: float) -> bool:
    """A TOML number (not a boolean), finite (no ``inf``/``nan``), within ``[low, high]``."""
    return type(value) in (int, float) and math.isfinite(value) and low <= value <= high


def toml_type(value: Any) -> str:
    """What a TOML value is, for an error message (``a number``, ``an array`` ...)."""
    return {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "a table"}.get(
        type(value), type(value).__name__
    )


def shown(value: Any) -> str:
    """A value for an error message, never long."""
    return repr(value)[:40] if isinstance(value, str) else toml_type(value)


def _deepest_line(text: str) -> int:
    """The line where bracket nesting (strings ignored, roughly) is deepest: where the nesting error is."""
    depth, deepest, where = 0, 0, 1
    for number, line in enumerate(text.splitlines(), 1):
        for ch in re.sub(r'"[^"]*"|\'[^\']*\'', "", line):
            if ch in "[{":
                depth += 1
                if depth > deepest:
                    deepest, where = depth, number
            elif ch in "]}":
                depth -= 1
    return where


def _longest_number_line(text: str) -> int:
    best, where = 0, 1
    for number, line in enumerate(text.splitlines(), 1):
        longest = max((len(run) for run in re.findall(r"[0-9a-fA-F_]+", line)), default=0)
        if longest > best:
            best, where = longest, number
    return where
