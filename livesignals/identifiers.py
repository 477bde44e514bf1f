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
  private-use and unassigned code points -- an id that is blank, a character that
  prints as nothing or stands for no character (see ``_INVISIBLE``: combining
  grapheme joiner, Khmer inherent vowels, Mongolian variation selectors, Hangul
  fillers, U+FFFC/U+FFFD) anywhere, and an id that starts with a combining mark
  (any of categories Mn/Mc/Me; a mark after a base character is kept);
* **normalised**: surrounding ASCII spaces are stripped and the id is put in
  Unicode NFC, so ``"é"`` composed or decomposed keys one customer; the
  normalised id must still fit the schema's ``maxLength`` (NFC lengthens a few
  characters), else it is rejected too;
* **case-folded by kind**: an ``email`` is lower-cased (:func:`canonical_identifier`),
  as every mail system treats addresses, so ``Ann@Example.com`` typed by an agent
  finds the customer the engine keyed from ``ann@example.com``.

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


_INVISIBLE = frozenset(
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, *range(0x180B, 0x1810), 0x3164, 0xFFA0, 0x2800, 0xFFFC, 0xFFFD,
     *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]
)  # fmt: skip
"""Printable by Python's rules yet invisible on screen, or standing for no character: Unicode's
default-ignorable code points that are not format characters (combining grapheme joiner U+034F,
Khmer inherent vowels U+17B4/U+17B5, Mongolian free variation selectors U+180B-U+180F, Hangul
fillers, variation selectors), the braille blank, and the object/replacement characters
U+FFFC/U+FFFD (a decoder's stand-in for bytes it could not read): ``"c1\u3164"`` would look
like ``c1`` and be another customer. Rejected anywhere in an id, trailing included."""

_MARK_CATEGORIES = frozenset(["Mn", "Mc", "Me"])
"""Combining marks (nonspacing, spacing, enclosing): one cannot start an id, whatever its
combining class (U+034F and the Khmer vowels have class 0, so ``unicodedata.combining`` misses
them). A mark *after* a base character is part of how many scripts are written (Devanagari
vowel signs, Thai tone marks, a decomposed accent) and is kept unless it is invisible."""


def normalise_identifier(value: str, max_chars: int | None = None) -> str:
    """The id in its one spelling, or ``ValueError`` saying which character is not allowed.

    ``max_chars`` is the schema's ``maxLength``, checked again *after*
    normalisation: NFC can make a string longer (U+FB2C, one character,
    becomes three), so the schema's check alone does not bound what is stored.

    >>> normalise_identifier(" c42 ")
    'c42'
    >>> normalise_identifier("c1\u3164")
    Traceback (most recent call last):
    ...
    ValueError: holds U+3164 (invisible)
    >>> normalise_identifier("\ufb2c" * 50, max_chars=128)
    Traceback (most recent call last):
    ...
    ValueError: is 150 characters once NFC-normalised, more than 128
    """
    if value.isprintable():
        stripped = (value if value.isascii() else unicodedata.normalize("NFC", value)).strip(" ")
        if not stripped:
            raise ValueError("is blank")
        if max_chars is not None and len(stripped) > max_chars:
            raise ValueError(f"is {len(stripped)} characters once NFC-normalised, more than {max_chars}")
        if stripped.isascii():
            return stripped
        hidden = next((c for c in stripped if ord(c) in _INVISIBLE), None)
        if hidden is not None:
            raise ValueError(f"holds U+{ord(hidden):04X} (invisible)")
        if unicodedata.category(stripped[0]) in _MARK_CATEGORIES:
            raise ValueError(f"starts with the combining mark U+{ord(stripped[0]):04X}")
        return stripped
    bad = next(c for c in value if not c.isprintable())
    category = unicodedata.category(bad)
    raise ValueError(f"holds U+{ord(bad):04X} ({_CATEGORY_NAMES.get(category, category)})")


FOLDED_KINDS = frozenset(["email"])
"""Identifier kinds compared without case: an e-mail address (its local part is case-sensitive by
RFC 5321, but no mail system in use treats it so, and customers type it every way)."""


def canonical_identifier(kind: str, value: str, max_chars: int | None = None) -> str:
    """The one spelling of an id of ``kind``: :func:`normalise_identifier`, then lower case for an e-mail.

    Used wherever a customer is keyed or looked up (the event contract, the agent desktop service,
    ``livesignals erase/export``), so every door spells an id the same way.

    >>> canonical_identifier("email", " Ann.Smith@Example.COM ")
    'ann.smith@example.com'
    >>> canonical_identifier("customer_id", "C42")
    'C42'
    """
    spelled = normalise_identifier(value, max_chars)
    return spelled.lower() if kind in FOLDED_KINDS else spelled
