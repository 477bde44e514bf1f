"""Sentiment of a text interaction, in any of the supported languages, learning online.

Cold start: the seed lexicon (:mod:`models.lexicon`). As labels arrive
(survey answers joined to the interaction they rate, agent corrections), a
River pipeline -- bag of words on normalised tokens, then one-vs-rest
logistic regression -- learns online. The two are blended by how well each
predicted the recent labels (a logistic weight on the difference of their
accuracy over the last ``window`` labels, after ``warmup`` labels). Survey
answers are noisy proxies of a text's sentiment: accuracy, unlike log loss,
does not punish a confident lexicon for the labels' noise, and the blend
never lets noisy labels make the model worse than its lexicon.

>>> m = SentimentModel(warmup=10, window=20, seed=1)
>>> m.score("great, thanks!") > 0 > m.score("awful, I want a refund")
True
>>> for _ in range(30):
...     m.learn_one("the parcel is purple", "negative")
...     m.learn_one("the parcel is green", "positive")
>>> m.predict_one("purple parcel") == "negative"
True
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from river import compose, feature_extraction, linear_model, multiclass, optim

from models.lexicon import Lexicon
from models.text import tokens
from models.validation import MulticlassValidation

CLASSES = ("negative", "neutral", "positive")


def label_from_score(score: float, neutral_band: float = 0.2) -> str:
    """The class a sentiment score in [-1, 1] reads as.

    >>> label_from_score(-0.5), label_from_score(0.1), label_from_score(0.3)
    ('negative', 'neutral', 'positive')
    """
    return "negative" if score <= -neutral_band else "positive" if score >= neutral_band else "neutral"


def label_from_survey(kind: str, score: float) -> str:
    """The sentiment a survey answer gives to the interaction it rates.

    >>> label_from_survey("csat", 2), label_from_survey("nps", 8), label_from_survey("ces", 2)
    ('negative', 'neutral', 'positive')
    """
    if kind == "csat":
        return "negative" if score <= 2 else "neutral" if score == 3 else "positive"
    if kind == "nps":
        return "negative" if score <= 6 else "neutral" if score <= 8 else "positive"
    return "positive" if score <= 3 else "neutral" if score == 4 else "negative"  # ces, 7 = hard


class SentimentModel:
    """Lexicon cold start blended into an online text classifier.

    Parameters are kept as attributes (River style): ``learning_rate``,
    ``l2``, ``warmup`` (labels before the learned model gets any weight),
    ``window`` (labels over which the two are compared), ``eta`` (how sharply
    the more accurate one wins: 20 gives 73 % weight for a 5-point lead),
    ``neutral_band`` (|score| below which the lexicon says neutral), ``seed``.
    """

    def __init__(
        self, learning_rate: float = 0.5, l2: float = 0.0, warmup: int = 50, window: int = 500,
        eta: float = 20.0, neutral_band: float = 0.15, seed: int = 42,
    ) -> None:  # fmt: skip
        self.learning_rate = learning_rate
        self.l2 = l2
        self.warmup = warmup
        self.window = window
        self.eta = eta
        self.neutral_band = neutral_band
        self.seed = seed
        self.lexicon = Lexicon.load()
        self.classifier = compose.Pipeline(
            feature_extraction.BagOfWords(on=None, tokenizer=tokens, ngram_range=(1, 2)),
            multiclass.OneVsRestClassifier(linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=l2)),
        )
        self.labels = 0
        self.validation = MulticlassValidation()
        self._hits: deque[tuple[float, float]] = deque(maxlen=window)
        """(lexicon right, learned right) on the recent labels."""
        self._hit_sums = [0.0, 0.0]

    def _blend(self) -> float:
        """Weight of the learned model: 0 during warm-up, then by recent log loss."""
        if self.labels < self.warmup or not self._hits:
            return 0.0
        n = len(self._hits)
        lexicon, learned = self._hit_sums[0] / n, self._hit_sums[1] / n
        return 1.0 / (1.0 + math.exp(max(-50.0, min(50.0, self.eta * (lexicon - learned)))))

    def _lexical(self, text: str) -> dict[str, float]:
        lex, hits = self.lexicon.score_with_hits(text)
        if not hits:  # the lexicon knows nothing about this text
            return dict.fromkeys(CLASSES, 1 / 3)
        neutral = 1.0 - abs(lex) / self.neutral_band if abs(lex) < self.neutral_band else 0.0
        raw = {"negative": max(0.0, -lex), "neutral": neutral, "positive": max(0.0, lex)}
        total = sum(raw.values()) or 1.0
        return {c: v / total for c, v in raw.items()}

    def predict_proba_one(self, text: str) -> dict[str, float]:
        """Probability of each class."""
        lexical = self._lexical(text)
        w = self._blend()
        if w == 0.0:
            return lexical
        learned = self.classifier.predict_proba_one(text)  # type: ignore[arg-type]  # BagOfWords reads a str
        norm = sum(learned.values()) or 1.0
        return {c: (1 - w) * lexical[c] + w * learned.get(c, 0.0) / norm for c in CLASSES}

    def predict_one(self, text: str) -> str:
        """The most likely class."""
        proba = self.predict_proba_one(text)
        return max(CLASSES, key=lambda c: proba[c])

    def score(self, text: str) -> float:
        """Sentiment in [-1, 1]: P(positive) - P(negative)."""
        proba = self.predict_proba_one(text)
        return round(proba["positive"] - proba["negative"], 4)

    def learn_one(self, text: str, label: str) -> None:
        """Learn one labelled text (progressive validation first)."""
        if label not in CLASSES:
            raise ValueError(f"unknown sentiment label {label!r}")
        self.validation.update(label, self.predict_one(text))
        learned = self.classifier.predict_proba_one(text)  # type: ignore[arg-type]
        lexical = self._lexical(text)
        hit = (
            float(max(CLASSES, key=lambda c: lexical[c]) == label),
            float(max(CLASSES, key=lambda c: learned.get(c, 0.0)) == label),
        )
        if len(self._hits) == self._hits.maxlen:
            old = self._hits[0]
            self._hit_sums[0] -= old[0]
            self._hit_sums[1] -= old[1]
        self._hits.append(hit)
        self._hit_sums[0] += hit[0]
        self._hit_sums[1] += hit[1]
        self.classifier.learn_one(text, label)  # type: ignore[arg-type]
        self.labels += 1

    def summary(self) -> dict[str, Any]:
        """Labels learned and rolling validation figures."""
        return {"model": "sentiment", **self.validation.summary(), "blend": round(self._blend(), 3)}
