"""Seed sentiment lexicons: a cold start per language, before any label arrives.

Each language has a small word list with polarities in ``models/lexicons/``
(shipped with the package). A text's score is the mean polarity of its
lexicon words, a negator (not, never, نه, δεν ...) just before a word flipping
it, squashed into [-1, 1]. Persian text is normalised first
(:func:`models.text.normalize`), so ي/ی, ك/ک and ZWNJ variants all match.

>>> lex = Lexicon.load()
>>> lex.score("Thanks, the agent solved it quickly") > 0 > lex.score("This is not good, terrible service")
True
>>> lex.score("سفارشم هنوز نرسيده، افتضاح است") < 0
True
"""

from __future__ import annotations

import importlib.resources
import math
from dataclasses import dataclass, field

from models.text import tokens

LANGUAGES = ("en", "fa", "el")
NEGATORS = frozenset({"not", "no", "never", "dont", "don't", "isn't", "wasn't", "نه", "نیست", "نبود", "δεν", "μην"})


@dataclass
class Lexicon:
    """Word polarities, all languages in one table (scripts do not collide)."""

    polarity: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, languages: tuple[str, ...] = LANGUAGES) -> Lexicon:
        """The shipped lexicons for ``languages``."""
        table: dict[str, float] = {}
        root = importlib.resources.files("models").joinpath("lexicons")
        for lang in languages:
            for line in root.joinpath(f"{lang}.txt").read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.startswith("#"):
                    word, value = line.rsplit("\t", 1)
                    for tok in tokens(word):
                        table[tok] = float(value)
        return cls(table)

    def score(self, text: str) -> float:
        """Sentiment in [-1, 1]; 0 when no lexicon word is found."""
        return self.score_with_hits(text)[0]

    def score_with_hits(self, text: str) -> tuple[float, int]:
        """Sentiment in [-1, 1] and how many lexicon words it rests on."""
        total, hits, negate = 0.0, 0, False
        for tok in tokens(text):
            if tok in NEGATORS:
                negate = True
                continue
            value = self.polarity.get(tok)
            if value is not None:
                total += -value if negate else value
                hits += 1
            negate = False
        return (math.tanh(1.5 * total / hits) if hits else 0.0), hits
