"""Text normalisation and tokenisation for English, Persian, Greek and mixed text.

Persian is typed in many ways: Arabic letter forms (ي for ی, ك for ک), with or
without zero-width non-joiners (ZWNJ), Persian (۰-۹) or Arabic-Indic (٠-٩)
digits, Arabic diacritics. :func:`normalize` folds all of these to one form so
that a lexicon or a model sees one token where a person sees one word. Greek
accents are removed and everything is lower-cased (Greek final sigma folds
to σ).

>>> normalize("خیلي ممنون، مشكلم حل شد ۱۲۳")
'خیلی ممنون، مشکلم حل شد 123'
>>> tokens("Πολύ ΚΑΚΗ εξυπηρέτηση!!")
['πολυ', 'κακη', 'εξυπηρετηση']
>>> tokens("می‌خواستم")  # the ZWNJ keeps the prefix attached
['میخواستم']
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_FOLD = str.maketrans({
    "ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه", "ۀ": "ه", "أ": "ا", "إ": "ا", "آ": "ا",
    "\u200c": "", "\u200d": "", "\u200f": "", "\u200e": "", "ـ": "",
    **{chr(0x06F0 + i): str(i) for i in range(10)},
    **{chr(0x0660 + i): str(i) for i in range(10)},
    "ς": "σ",
})  # fmt: skip
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def normalize(text: str) -> str:
    """One canonical form: NFKC, folded Arabic/Persian letters and digits, no
    ZWNJ or tatweel, no diacritics or Greek accents, lower case."""
    text = unicodedata.normalize("NFKC", text).translate(_FOLD).lower()
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def tokens(text: str) -> list[str]:
    """Word tokens of the normalised text (letters and digits, any script).

    Cached: scoring and learning one text tokenise it several times (lexicon,
    bag of words, validation), and normalisation is the costly part.
    """
    return list(_cached_tokens(text))


@lru_cache(maxsize=4096)
def _cached_tokens(text: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(normalize(text)))
