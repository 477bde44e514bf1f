"""Online text classifiers on hashed features: bounded size, no raw token kept.

A text becomes bucket indices (:func:`hashed_features`): its unigrams and
bigrams, the words read under negation (marked, so "not good" is not "good"),
and the lexicon's verdict in five bands -- all hashed with CRC-32 (stable
across processes, unlike Python's ``hash``) into ``n_features`` buckets. A
checkpoint holds counts or weights per bucket, never a word (issue #14), and
its size is bounded by ``n_features`` whatever the traffic.

Three learners, River style (``learn_one`` / ``predict_proba_one``):

* :class:`HashedNB` -- multinomial naive Bayes with Laplace smoothing over the
  buckets seen; strong after a few hundred labels;
* :class:`HashedSoftmax` -- multinomial logistic regression, sparse SGD with a
  per-bucket AdaGrad step;
* :class:`HashedEnsemble` -- the two mixed by their recent accuracy: naive
  Bayes on the words present (all ``n_features`` buckets, 16-bit counts), the
  softmax on the buckets folded to ``n_features / 2``; smaller than the
  softmax alone at full size, and better than either on held-out Persian.

``bench/sentiment.py`` compares them on outside data (progressive
predict-then-learn); :class:`models.sentiment.SentimentModel` uses the winner,
the ensemble (``learner = "nb"`` or ``"softmax"`` stay selectable).

>>> nb = HashedNB(n_features=2**10)
>>> for _ in range(20):
...     nb.learn_one([1, 2], "positive")
...     nb.learn_one([3, 4], "negative")
>>> nb.predict_proba_one([1])["positive"] > 0.9
True
"""

from __future__ import annotations

import itertools
import math
import zlib
from array import array
from typing import Any

CLASSES = ("negative", "neutral", "positive")
COUNT_CEILING = 65535
"""Largest count a 16-bit naive Bayes bucket holds (:class:`HashedNB` halves the bucket there)."""
_INDEX = {c: i for i, c in enumerate(CLASSES)}
NB_SCALE = 16
"""The ensemble's naive Bayes counts a text's bucket as ``round(16 * sqrt(mean length / length))``
(at least 1): a text of the mean length counts 16."""
NB_ALPHA = 28.0
"""The ensemble's naive Bayes smoothing: 1.75 texts of the mean length (chosen on dev splits)."""


def lexicon_band(score: float, hits: int) -> str:
    """The lexicon's verdict as a coarse feature: none, -2, -1, 0, +1, +2."""
    if not hits:
        return "\x00lex:none"
    band = 2 if score >= 0.5 else 1 if score >= 0.1 else -2 if score <= -0.5 else -1 if score <= -0.1 else 0
    return f"\x00lex:{band}"


def hashed_features(toks: list[str], negated: list[str], extra: list[str], n_features: int) -> list[int]:
    """Bucket indices (with repeats) of unigrams, bigrams, negated words and ``extra``."""
    mask = n_features - 1
    crc = zlib.crc32
    out = [crc(t.encode()) & mask for t in toks]
    out += [crc(f"{a} {b}".encode()) & mask for a, b in itertools.pairwise(toks)]
    out += [crc(f"\x00not {t}".encode()) & mask for t in negated]
    out += [crc(e.encode()) & mask for e in extra]
    return out


class HashedNB:
    """Multinomial naive Bayes on hashed buckets (counts in one array per class).

    ``n_features`` (a power of two) bounds the model: 3 x 4 bytes per bucket
    (float32) or 3 x 2 (``typecode="H"``). ``alpha`` is the Laplace smoothing.
    ``length_power`` and ``scale`` weigh each text's buckets instead of 1, so a
    long review does not outvote many short ones (0 and 1, the defaults: plain
    counts; integer weights keep 16-bit counts exact): by
    ``max(1, round(scale / len(x) ** length_power))``, or, with ``relative``,
    by ``max(1, round(scale * (mean / len(x)) ** length_power))``, ``mean``
    being the mean length of the texts learned so far. Relative weights count
    a text of the usual length ``scale`` whatever the data's usual length, so
    ``alpha`` keeps one meaning: on a set of long texts of similar length (MPs'
    tweets) absolute weights shrink every count to ~2 and act as 2.4 times the
    smoothing. The ensemble uses relative weights, power 0.5, scale 16 and
    ``alpha`` 28 (:data:`NB_SCALE`, :data:`NB_ALPHA`; README, "Sentiment on
    real text", for the figures on held-out data).
    """

    length_power = 0.0
    """Class defaults, so a checkpoint pickled before these existed keeps counting 1 per bucket."""
    scale = 1
    relative = False
    """Class default: a checkpoint pickled with absolute weights keeps them (its counts were made so)."""
    lengths = 0
    """Sum of the lengths of the texts learned (their mean sets relative weights)."""

    def __init__(
        self, n_features: int = 2**16, alpha: float = 1.0, typecode: str = "f", length_power: float = 0.0,
        scale: int = 1, relative: bool = False,
    ) -> None:  # fmt: skip
        self.n_features = n_features
        self.alpha = alpha
        self.length_power = length_power
        self.scale = scale
        self.relative = relative
        self.lengths = 0
        self.counts = [array(typecode, bytes(array(typecode).itemsize * n_features)) for _ in CLASSES]
        """Counts per bucket and class: float32 (``"f"``) or 16-bit (``"H"``: a bucket whose count would
        overflow has its three counts halved, which keeps their ratio)."""
        self.totals = [0.0] * len(CLASSES)
        self.docs = [0] * len(CLASSES)
        self.seen = 0
        """Buckets with any count: the vocabulary size for smoothing."""

    def learn_one(self, x: list[int], label: str) -> None:
        """Count the buckets of one labelled text."""
        c = _INDEX[label]
        counts = self.counts[c]
        self.lengths += len(x)
        self.docs[c] += 1
        weight = self.text_weight(len(x))
        for j in x:
            if not (self.counts[0][j] or self.counts[1][j] or self.counts[2][j]):
                self.seen += 1
            if counts[j] + weight > COUNT_CEILING:
                for other in self.counts:
                    other[j] = other[j] // 2
            counts[j] += weight
        self.totals[c] += weight * len(x)

    def text_weight(self, length: int) -> int:
        """What one bucket of a text of ``length`` buckets adds to its count (relative weights: to the
        mean length of the texts learned, the one being learned included).

        >>> HashedNB(2**4, length_power=0.5, scale=16).text_weight(4), HashedNB(2**4).text_weight(4)
        (8, 1)
        >>> nb = HashedNB(2**4, length_power=0.5, scale=16, relative=True)
        >>> nb.learn_one([1, 2, 3, 4, 5, 6, 7, 8], "positive"); nb.learn_one([9, 10], "negative")
        >>> nb.text_weight(5), nb.text_weight(20)  # the mean length is 5
        (16, 8)
        """
        if not self.length_power or not length:
            return self.scale
        if self.relative:
            docs = sum(self.docs)
            mean = self.lengths / docs if docs else length
            return max(1, round(self.scale * (mean / length) ** self.length_power))
        return max(1, round(self.scale / length**self.length_power))

    def predict_proba_one(self, x: list[int]) -> dict[str, float]:
        """Class probabilities; uniform over the classes seen before any label."""
        n = sum(self.docs)
        if not n:
            return dict.fromkeys(CLASSES, 1 / 3)
        vocab = self.alpha * max(self.seen, 1)
        logs = []
        for c, counts in enumerate(self.counts):
            if not self.docs[c]:
                logs.append(-math.inf)
                continue
            denom = math.log(self.totals[c] + vocab)
            log = math.log(self.docs[c] / n)
            for j in x:
                log += math.log(counts[j] + self.alpha) - denom
            logs.append(log)
        top = max(logs)
        exp = [math.exp(v - top) for v in logs]
        total = sum(exp)
        return {c: e / total for c, e in zip(CLASSES, exp, strict=True)}


class HashedSoftmax:
    """Multinomial logistic regression on hashed buckets, sparse AdaGrad steps.

    ``n_features`` (a power of two) bounds the model: 3 x 4 bytes of weights
    and 4 bytes of squared-gradient sum per bucket. ``learning_rate`` is the
    AdaGrad base step.
    """

    def __init__(self, n_features: int = 2**16, learning_rate: float = 0.5) -> None:
        self.n_features = n_features
        self.learning_rate = learning_rate
        self.weights = [array("f", bytes(4 * n_features)) for _ in CLASSES]
        self.grad2 = array("f", bytes(4 * n_features))
        self.bias = [0.0] * len(CLASSES)
        self.labels = 0

    def _logits(self, x: list[int]) -> list[float]:
        scale = 1.0 / math.sqrt(len(x)) if x else 1.0
        return [self.bias[c] + scale * sum(w[j] for j in x) for c, w in enumerate(self.weights)]

    def predict_proba_one(self, x: list[int]) -> dict[str, float]:
        """Class probabilities (softmax of the logits)."""
        logits = self._logits(x)
        top = max(logits)
        exp = [math.exp(v - top) for v in logits]
        total = sum(exp)
        return {c: e / total for c, e in zip(CLASSES, exp, strict=True)}

    def learn_one(self, x: list[int], label: str, proba: dict[str, float] | None = None) -> None:
        """One AdaGrad step on the cross-entropy of one labelled text (``proba``: :meth:`predict_proba_one`
        of ``x`` when the caller has it already)."""
        if proba is None:
            proba = self.predict_proba_one(x)
        target = _INDEX[label]
        grads = [proba[c] - (1.0 if i == target else 0.0) for i, c in enumerate(CLASSES)]
        scale = 1.0 / math.sqrt(len(x)) if x else 1.0
        g2 = sum(g * g for g in grads) * scale * scale
        for j in set(x):
            self.grad2[j] += g2
            step = self.learning_rate * scale / math.sqrt(self.grad2[j] + 1e-6)
            for c, w in enumerate(self.weights):
                w[j] -= step * grads[c]
        for c in range(len(CLASSES)):
            self.bias[c] -= 0.05 * grads[c]
        self.labels += 1


class HashedEnsemble:
    """Naive Bayes and softmax regression on the same hashed buckets, mixed by recent accuracy.

    Naive Bayes reads which buckets are present (a word said twice in a short
    review is no stronger), each text's weighing ``sqrt(mean number / their number)``
    (:meth:`HashedNB.text_weight`), on all ``n_features`` buckets with 16-bit counts;
    the softmax reads the buckets with their repeats, folded to
    ``n_features / 2`` (``bucket & (n_features / 2 - 1)``). The two err
    differently -- naive Bayes is sure early, the softmax weighs words against
    each other -- and which is better depends on the data: their mix gives
    naive Bayes ``0.5 + 0.5 tanh(eta x lead)`` of the weight, ``lead`` being
    its accuracy minus the softmax's, each a moving average over about
    ``1 / decay`` labels (an even mix while they tie, the better one's as it
    leads). Per bucket: 3 x 2 bytes of counts and half of the softmax's 16
    bytes, about 0.92 MB pickled at 2^16 buckets (the softmax alone at 2^16:
    1.05 MB).

    >>> m = HashedEnsemble(n_features=2**10)
    >>> for _ in range(20):
    ...     m.learn_one([1, 2, 2], "positive")
    ...     m.learn_one([3, 4], "negative")
    >>> m.predict_proba_one([2])["positive"] > 0.8
    True
    """

    def __init__(
        self, n_features: int = 2**16, learning_rate: float = 0.5, eta: float = 40.0, decay: float = 0.002
    ) -> None:
        self.n_features = n_features
        self.learning_rate = learning_rate
        self.eta = eta
        self.decay = decay
        self.nb = HashedNB(n_features, alpha=NB_ALPHA, typecode="H", length_power=0.5, scale=NB_SCALE, relative=True)
        self.softmax = HashedSoftmax(max(2, n_features // 2), learning_rate)
        self.accuracy = [0.0, 0.0]
        """Moving accuracy of naive Bayes and of the softmax on the labels before each was learned."""

    def nb_weight(self) -> float:
        """Naive Bayes' share of the mix: 0.5 while the two tie, more as it leads."""
        return 0.5 + 0.5 * math.tanh(self.eta * (self.accuracy[0] - self.accuracy[1]))

    def _both(self, x: list[int]) -> tuple[dict[str, float], dict[str, float], list[int], list[int]]:
        memo = self.__dict__.get("_both_memo")
        if memo is not None and memo[0] == x:  # the text just read, the model unchanged since (learn_one clears it)
            return memo[1]
        fold = self.softmax.n_features - 1
        present, folded = list(dict.fromkeys(x)), [j & fold for j in x]
        both = self.nb.predict_proba_one(present), self.softmax.predict_proba_one(folded), present, folded
        self.__dict__["_both_memo"] = (list(x), both)
        return both

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the last reading (a cache: a checkpoint does not depend on what was read)."""
        state = self.__dict__.copy()
        state.pop("_both_memo", None)
        return state

    def predict_proba_one(self, x: list[int]) -> dict[str, float]:
        """Class probabilities: the mix of the two learners'."""
        nb, softmax, _, _ = self._both(x)
        w = self.nb_weight()
        return {c: w * nb[c] + (1 - w) * softmax[c] for c in CLASSES}

    def learn_one(self, x: list[int], label: str) -> None:
        """Score each learner on the label (its moving accuracy), then both learn the buckets.
        A text read just before (the sentiment model's validation) is not read again."""
        nb, softmax, present, folded = self._both(x)
        self.__dict__.pop("_both_memo", None)  # the learners change now
        for i, proba in enumerate((nb, softmax)):
            self.accuracy[i] += self.decay * (float(max(CLASSES, key=proba.__getitem__) == label) - self.accuracy[i])
        self.nb.learn_one(present, label)
        self.softmax.learn_one(folded, label, softmax)
