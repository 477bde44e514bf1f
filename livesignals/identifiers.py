"""What an identifier may look like: one spelling per id, nothing invisible.

Ids key customers' state and link events together (a survey rates an event id,
feedback judges a flag id), so two spellings that look alike must not become two
customers, and an id must never smuggle characters that change how it prints or
is parsed downstream (a NUL, a newline in a log line, an RTL mark that reverses
what an agent reads, a zero-width space). The rule, decided for the contract:

* **rejected** (``bad_identifier``): any character :meth:`str.isprintable` refuses --
  control (NUL, tab, newline, DEL, C1), format (zero-width space/joiners, RTL/LTR
  marks and overrides, BOM, soft hyphen), line/paragraph separators, separators
  other than the ASCII space (no-break space, ideographic space), surrogates,
  private-use and unassigned code points -- and an id that is blank;
* **normalised**: surrounding ASCII spaces are stripped and the id is put in
  Unicode NFC, so ``"é"`` composed or decomposed keys one customer.

The ASCII fast path costs two C calls per id.

>>> normalise_identifier(" c42 ")
'c42'
>>> normalise_identifier("cafe\\u0301") == "caf\\u00e9"
True
>>> try:
...     normalise_identifier("c4\\u200b2")
... except ValueError as exc:
...     print(exc)
holds U+200B (format character)
"""

from __future__ import annotations

import unicodedata

_CATEGORY_NAMES = {
    "Cc": "control character", "Cf": "format character", "Cs": "surrogate", "Co": "private-use character",
    "Cn": "unassigned code point", "Zl": "line separator", "Zp": "paragraph separator", "Zs": "space other than U+0020",
}  # fmt: skip


def normalise_identifier(value: str) -> str:
    """The id in its one spelling, or ``ValueError`` saying which character is not allowed."""
    if value.isprintable():
        stripped = (value if value.isascii() else unicodedata.normalize("NFC", value)).strip(" ")
        if stripped:
            return stripped
        raise ValueError("is blank")
    bad = next(c for c in value if not c.isprintable())
    category = unicodedata.category(bad)
    raise ValueError(f"holds U+{ord(bad):04X} ({_CATEGORY_NAMES.get(category, category)})")
