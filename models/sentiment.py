"""Sentiment of a text interaction, in any of the supported languages, learning online.

Cold start: the lexicons and their rules (:mod:`models.lexicon`), whose graded
score becomes three class probabilities. As labels arrive (survey answers
joined to the interaction they rate, agent corrections), an online classifier
on hashed features (:mod:`models.hashed_text`: by default naive Bayes and
softmax regression mixed by their recent accuracy, which beat either alone on
held-out Persian; bounded size, no raw word kept) learns; its features
include the lexicon's verdict and the words read under negation. The two are
blended by how well each predicted the recent labels (a logistic weight on the
difference of their accuracy over the last ``window`` labels, after
``warmup`` labels). Survey answers are noisy proxies of a text's sentiment:
accuracy, unlike log loss, does not punish a confident lexicon for the labels'
noise. The learned model gets weight only while it is more accurate than the
lexicon on the recent labels, ``tanh(eta x lead)``, so noisy or unlearnable
labels leave the lexicon alone in charge (``tests/unit/test_sentiment.py``).

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

import functools
import math
from collections import deque
from typing import Any

from models.hashed_text import HashedEnsemble, HashedNB, HashedSoftmax, hashed_features, lexicon_band
from models.lexicon import Lexicon
from models.text import feature_tokens
from models.validation import MulticlassValidation

CLASSES = ("negative", "neutral", "positive")
LEARNERS = ("ensemble", "nb", "softmax")
"""The learned model's kinds (:mod:`models.hashed_text`); the ensemble is the default."""


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
    """Lexicon cold start blended into an online text classifier on hashed features.

    Parameters are kept as attributes (River style): ``learner``
    (``"ensemble"``, the two below mixed by their recent accuracy, ``"softmax"``,
    multinomial logistic regression, or ``"nb"``, naive Bayes), ``learning_rate``
    (softmax and ensemble), ``n_features`` (hash buckets: bounds the model's size),
    ``warmup`` (labels before the learned model gets any weight), ``window``
    (labels over which the two are compared), ``eta`` (how sharply the more
    the learned model gains weight with its lead in accuracy, ``tanh(eta x
    lead)``: 20 gives it 76 % for a 5-point lead, nothing without a lead),
    ``neutral_band`` (|lexicon score| below which the lexicon says neutral),
    ``seed`` (kept for the River interface: nothing here is random), ``l2``
    (accepted for older settings; unused).
    """

    def __init__(
        self, learner: str = "ensemble", learning_rate: float = 0.5, n_features: int = 2**16, warmup: int = 50,
        window: int = 500, eta: float = 20.0, neutral_band: float = 0.15, seed: int = 42, l2: float = 0.0,
    ) -> None:  # fmt: skip
        if learner not in LEARNERS:
            raise ValueError(f"unknown sentiment learner {learner!r} ({', '.join(LEARNERS)})")
        if n_features < 2 or n_features & (n_features - 1):
            raise ValueError(f"n_features must be a power of two, not {n_features}")
        self.learner = learner
        self.learning_rate = learning_rate
        self.n_features = n_features
        self.warmup = warmup
        self.window = window
        self.eta = eta
        self.neutral_band = neutral_band
        self.seed = seed
        self.l2 = l2
        self.lexicon = _shared_lexicon()
        self.classifier: HashedEnsemble | HashedNB | HashedSoftmax = (
            HashedNB(n_features)
            if learner == "nb"
            else HashedSoftmax(n_features, learning_rate)
            if learner == "softmax"
            else HashedEnsemble(n_features, learning_rate)
        )
        self.labels = 0
        self.validation = MulticlassValidation()
        self._hits: deque[tuple[float, float]] = deque(maxlen=window)
        """(lexicon right, learned right) on the recent labels."""
        self._hit_sums = [0.0, 0.0]

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the lexicon (shipped with the code, reloaded on unpickling)."""
        state = self.__dict__.copy()
        del state["lexicon"]
        state.pop("_read_memo", None)  # a cache: a checkpoint's bytes do not depend on what was read
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "n_features" not in state:  # a checkpoint of the earlier bag-of-words model: start afresh
            self.__init__(**{k: state[k] for k in ("warmup", "window", "eta", "neutral_band", "seed") if k in state})  # type: ignore[misc]
            return
        self.__dict__.update(state)
        self.lexicon = _shared_lexicon()

    def _blend(self) -> float:
        """Weight of the learned model: 0 during warm-up, then by recent accuracy."""
        if self.labels < self.warmup or not self._hits:
            return 0.0
        n = len(self._hits)
        lexicon, learned = self._hit_sums[0] / n, self._hit_sums[1] / n
        return math.tanh(self.eta * (learned - lexicon)) if learned > lexicon else 0.0

    def _read(self, text: str) -> tuple[dict[str, float], list[int] | None]:
        """Lexicon probabilities and, when the learned model has a say in the blend (:meth:`_blend` above 0),
        the hashed features; else None: the score is the lexicon's, and hashing the text was a third of it."""
        lex, hits, negated = self._analyse(text)
        lexical = lexical_proba(lex, self.neutral_band)
        if not self.labels or self._blend() == 0.0:
            return lexical, None
        return lexical, self._hashed(text, lex, hits, negated, self.n_features)

    def _analyse(self, text: str) -> tuple[float, int, list[str]]:
        """The lexicon's reading of ``text``, remembered for the last text read (a survey's comment is
        read for its lesson, then scored: :mod:`operators.scoring.online`)."""
        memo = self.__dict__.get("_read_memo")
        if memo is None or memo[0] != text:
            lex, hits, negated = self.lexicon.analyse(text)
            memo = self.__dict__["_read_memo"] = [text, lex, hits, tuple(negated), 0, ()]
        return memo[1], memo[2], list(memo[3])

    def _hashed(self, text: str, lex: float, hits: int, negated: list[str], n: int) -> list[int]:
        """:func:`hashed_features` of ``text`` in ``n`` buckets (its lexicon reading given), remembered
        with the last text's reading (:meth:`_analyse`)."""
        memo = self.__dict__.get("_read_memo")
        if memo is not None and memo[0] == text and memo[4] == n:
            return list(memo[5])
        x = hashed_features(feature_tokens(text), negated, [lexicon_band(lex, hits)], n)
        if memo is not None and memo[0] == text:
            memo[4], memo[5] = n, tuple(x)
        return x

    def predict_proba_one(self, text: str) -> dict[str, float]:
        """Probability of each class."""
        lexical, x = self._read(text)
        return self._proba(lexical, x)

    def _proba(
        self, lexical: dict[str, float], x: list[int] | None, learned: dict[str, float] | None = None
    ) -> dict[str, float]:
        """The blend of ``lexical`` and the learned model's probabilities for ``x`` (``learned``: those,
        when the caller has them already)."""
        w = self._blend()
        if w == 0.0 or x is None:
            return lexical
        if learned is None:
            learned = self.classifier.predict_proba_one(x)
        return {c: (1 - w) * lexical[c] + w * learned[c] for c in CLASSES}

    def lesson(self, text: str, buckets: int | None = None) -> dict[str, Any]:
        """What :meth:`learn_one` needs from ``text``, without the text: its hashed feature buckets
        (``buckets``, a power of two, default :attr:`n_features`) and the lexicon's score.

        The shared learner's lessons carry this instead of a customer's words (issue #14): a model
        with fewer buckets folds them (``bucket & (n_features - 1)``), so one lesson serves champion
        and challenger. Words are hashed, not encrypted: the buckets are a lossy, one-way digest.

        >>> m = SentimentModel()
        >>> lesson = m.lesson("the parcel never arrived")
        >>> sorted(lesson), "parcel" in str(lesson)
        (['h', 'lex'], False)
        """
        lex, hits, negated = self._analyse(text)
        return {"h": self._hashed(text, lex, hits, negated, buckets or self.n_features), "lex": lex}

    def predict_one(self, text: str) -> str:
        """The most likely class."""
        proba = self.predict_proba_one(text)
        return max(CLASSES, key=lambda c: proba[c])

    def score(self, text: str) -> float:
        """Sentiment in [-1, 1]: P(positive) - P(negative)."""
        proba = self.predict_proba_one(text)
        return round(proba["positive"] - proba["negative"], 4)

    def learn_one(self, text: str | dict[str, Any], label: str) -> None:
        """Learn one labelled text, or its :meth:`lesson` (progressive validation first)."""
        if label not in CLASSES:
            raise ValueError(f"unknown sentiment label {label!r}")
        if isinstance(text, str):
            text = self.lesson(text)
        mask = self.n_features - 1
        x = [int(j) & mask for j in text["h"]]
        lexical = lexical_proba(float(text["lex"]), self.neutral_band)
        learned = self.classifier.predict_proba_one(x) if self.labels else None  # once: the blend reads it too
        proba = self._proba(lexical, x if self.labels else None, learned)
        self.validation.update(label, max(CLASSES, key=lambda c: proba[c]))
        hit = (
            float(max(CLASSES, key=lambda c: lexical[c]) == label),
            float(learned is not None and max(CLASSES, key=lambda c: learned[c]) == label),
        )
        if len(self._hits) == self._hits.maxlen:
            old = self._hits[0]
            self._hit_sums[0] -= old[0]
            self._hit_sums[1] -= old[1]
        self._hits.append(hit)
        self._hit_sums[0] += hit[0]
        self._hit_sums[1] += hit[1]
        self.classifier.learn_one(x, label)
        self.labels += 1

    def summary(self) -> dict[str, Any]:
        """Labels learned and rolling validation figures."""
        return {"model": "sentiment", **self.validation.summary(), "blend": round(self._blend(), 3)}


def lexical_proba(score: float, neutral_band: float) -> dict[str, float]:
    """Three class probabilities from a graded lexicon score in (-1, 1).

    ``P(positive) - P(negative)`` keeps the sign and grows with ``|score|``;
    neutral is the most likely class exactly when ``|score| < neutral_band``.

    >>> p = lexical_proba(0.0, 0.15); max(p, key=p.get)
    'neutral'
    >>> p = lexical_proba(0.6, 0.15); max(p, key=p.get), round(p["positive"] - p["negative"], 2)
    ('positive', 0.55)
    """
    s = max(-1.0, min(1.0, score))
    a = abs(s)
    at_band = (1 + neutral_band) / (3 + neutral_band)
    neutral = min(0.98, at_band * ((1 - a) / (1 - neutral_band)) ** 2)
    rest = 1.0 - neutral
    return {"negative": rest * (1 - s) / 2, "neutral": neutral, "positive": rest * (1 + s) / 2}


@functools.lru_cache(maxsize=1)
def _shared_lexicon() -> Lexicon:
    """One lexicon per process for every unpickled model (it is read-only)."""
    return Lexicon.load()
