"""Text normalisation and tokenisation for English, Persian, Greek and mixed text.

Persian is typed in many ways: Arabic letter forms (ي for ی, ك for ک), with or
without zero-width non-joiners (ZWNJ), Persian (۰-۹) or Arabic-Indic (٠-٩)
digits, Arabic diacritics. :func:`normalize` folds all of these to one form so
that a lexicon or a model sees one token where a person sees one word.
Invisible characters (zero-width space U+200B, joiners, BOM, direction marks)
are removed. Greek accents are removed and everything is lower-cased (Greek
final sigma folds to σ). Typographic apostrophes fold to ``'`` so that a
contraction stays one token.

>>> normalize("خیلي ممنون، مشكلم حل شد ۱۲۳")
'خیلی ممنون، مشکلم حل شد 123'
>>> normalize("قائل") == normalize("قایل")  # yeh with hamza
True
>>> tokens("Πολύ ΚΑΚΗ εξυπηρέτηση!!")
['πολυ', 'κακη', 'εξυπηρετηση']
>>> tokens("می‌خواستم")  # the ZWNJ keeps the prefix attached
['میخواستم']
>>> tokens("I can’t log in, it isn't working 😡")
['i', "can't", 'log', 'in', 'it', "isn't", 'working', '😡']
>>> tokens("gr\u200beat")  # a zero-width space inside a word is not a word break
['great']
>>> clauses("Good food, but the delivery was late!")
[('good', 'food'), ('but', 'the', 'delivery', 'was', 'late')]
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_INVISIBLE = "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad\u061c"
_FOLD = str.maketrans({
    "ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه", "ۀ": "ه", "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا",
    "ـ": "", **dict.fromkeys(_INVISIBLE, ""),
    **{chr(0x06F0 + i): str(i) for i in range(10)},
    **{chr(0x0660 + i): str(i) for i in range(10)},
    "ς": "σ", "’": "'", "‘": "'", "`": "'", "´": "'", "ʼ": "'",
})  # fmt: skip
_FOLD_CHARS = re.compile("[" + re.escape("".join(map(chr, _FOLD))) + "]")
"""The characters :data:`_FOLD` changes: substituting only those is ~5x faster than ``str.translate``
with a dict (which looks up, and misses, every character of a Persian or Greek text)."""
_EMOJI = "\U0001f300-\U0001faff\u2600-\u27bf\u2b50\u2764"
_TOKEN = re.compile(rf"[^\W_]+(?:'[^\W_]+)*|[{_EMOJI}]", re.UNICODE)
_CLAUSE = re.compile(r"[.,;:!?،؛؟\n()\[\]\"«»]+|\s[-–—]\s")
_COMBINING = re.compile(
    "[" + "".join(re.escape(chr(c)) for c in range(0x300, 0x10000) if unicodedata.combining(chr(c))) + "]"
)
_REPEAT = re.compile("([a-z\u0600-\u06ff\u0370-\u03ff])\\1\\1+")
_URL = re.compile(r"https?://\S+|www\.\S+")
URL_MARK = "\x00url"
"""What :func:`feature_tokens` puts for a text's web addresses (once, at the end; no word has it)."""


def normalize(text: str) -> str:
    """One canonical form: NFKC, folded Arabic/Persian letters and digits, no
    invisible characters or tatweel, no diacritics or Greek accents, lower case,
    a letter repeated three times or more cut to two ("sooo" -> "soo")."""
    if text.isascii():  # the common case: no folding, accents or combining marks to remove
        text = text.lower().replace("`", "'")
    else:
        text = _FOLD_CHARS.sub(_fold_one, unicodedata.normalize("NFKC", text)).lower()
        text = unicodedata.normalize("NFC", _COMBINING.sub("", unicodedata.normalize("NFD", text)))
        if "ي" in text:  # ئ (yeh with hamza) decomposes to Arabic yeh and a hamza mark: fold it too
            text = text.replace("ي", "ی")
    return _REPEAT.sub(r"\1\1", text) if _REPEAT.search(text) else text


def _fold_one(match: re.Match[str]) -> str:
    return str(_FOLD[ord(match.group())])  # maketrans made every value a str


def tokens(text: str) -> list[str]:
    """Word tokens of the normalised text: letters and digits of any script,
    contractions kept whole (``can't``), each emoji a token of its own.

    Cached: scoring and learning one text tokenise it several times (lexicon,
    hashed features, validation), and normalisation is the costly part.
    """
    return [tok for clause in _cached_clauses(text) for tok in clause]


def feature_tokens(text: str) -> list[str]:
    """The learned model's tokens: :func:`tokens` with every web address (``http://``, ``https://``,
    ``www.``) cut out and, when there was any, one :data:`URL_MARK` at the end.

    A shortened link (``https://t.co/m8Q49wZ6YJ``) otherwise becomes ``https``, ``t``, ``co`` and a
    random token, all noise: the words either side of it join in a bigram instead. Measured on the
    dev half of the English MPs' tweets (README, "Sentiment on real text"); the lexicon still reads
    the whole text. Texts without an address cost one substring test.

    >>> feature_tokens("Proud of our team https://t.co/AbC123 today")
    ['proud', 'of', 'our', 'team', 'today', '\\x00url']
    >>> feature_tokens("no link here") == tokens("no link here")
    True
    """
    if "http" not in text and "www." not in text:
        return tokens(text)
    cut = _URL.sub(" ", text)
    return [*tokens(cut), URL_MARK] if cut != text else tokens(text)


def clauses(text: str) -> list[tuple[str, ...]]:
    """The tokens of each clause (split at punctuation): negation and
    intensifiers reach no further than their clause."""
    return list(_cached_clauses(text))


CACHED_TEXT_CHARS = 512
"""Texts up to this long share a cache of :data:`CACHE_TEXTS` entries; longer ones a cache of
:data:`CACHE_LONG_TEXTS` (one event's text is tokenised several times; a cache of 4,096 texts of
20,000 characters each held about 1.2 GB). Worst case: about 20 MB and 10 MB."""
CACHE_TEXTS = 1024
CACHE_LONG_TEXTS = 4


class _Clauses:
    """The clauses of a text, from one of two caches by the text's length."""

    def __call__(self, text: str) -> tuple[tuple[str, ...], ...]:
        return _short_clauses(text) if len(text) <= CACHED_TEXT_CHARS else _long_clauses(text)

    @staticmethod
    def cache_clear() -> None:
        """Empty both caches (benchmarks time the cold start)."""
        _short_clauses.cache_clear()
        _long_clauses.cache_clear()


_cached_clauses = _Clauses()


def _clauses_of(text: str) -> tuple[tuple[str, ...], ...]:
    parts = _CLAUSE.split(normalize(text))
    if len(parts) == 1:  # one clause (short texts): no generator
        toks = tuple(_TOKEN.findall(parts[0]))
        return (toks,) if toks else ()
    return tuple(p for p in map(tuple, map(_TOKEN.findall, parts)) if p)


_short_clauses = lru_cache(maxsize=CACHE_TEXTS)(_clauses_of)
_long_clauses = lru_cache(maxsize=CACHE_LONG_TEXTS)(_clauses_of)
