"""Progressive validation: score every prediction against its label *before* learning it.

Binary models report ROC AUC, log loss and accuracy; multi-class ones accuracy
and macro-F1. Log loss and accuracy run over a sliding window of the last
``window`` labels (River's ``utils.Rolling``), so a model that drifts shows it.

ROC AUC is exact (:class:`ClassWindowAUC`: every positive against every
negative, ties counting half) over the last ``window`` labels **of each
class**. River's ``metrics.ROCAUC`` discretises at ten thresholds over [0, 1]:
every churn probability below 0.11 fell in one bucket and a model that ranked
at 0.75 was measured at exactly 0.5, so the churn trust gate never opened.
One window per class, because delayed labels arrive class by class (churn
positives at a cancellation, in bursts; negatives when a horizon passes): the
last 1,000 labels may hold a handful of positives, or none.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque
from dataclasses import dataclass, field
from typing import Any


class ClassWindowAUC:
    """Exact ROC AUC over the last ``window`` scores of each class, kept up to date per label.

    Both classes' scores are held sorted; adding or dropping one score adjusts a
    count of concordant pairs (ties count half) by two binary searches, so
    :meth:`get` costs nothing and an update ``O(window)`` at worst (a list insert).

    >>> auc = ClassWindowAUC(window=2)
    >>> for y, p in [(True, 0.04), (False, 0.01), (True, 0.03), (False, 0.035)]:
    ...     auc.update(y, p)
    >>> auc.get()
    0.75
    >>> auc.update(False, 0.05)  # the oldest negative (0.01) leaves the window
    >>> auc.get()
    0.25
    """

    def __init__(self, window: int = 1000) -> None:
        self.window = window
        self._order: dict[bool, deque[float]] = {True: deque(), False: deque()}
        self._sorted: dict[bool, list[float]] = {True: [], False: []}
        self._twice_concordant = 0
        """Twice the number of (positive, negative) pairs ranked right, ties counting once (integer: exact)."""

    def update(self, y: bool, p: float) -> None:
        """Add one label's score (dropping its class's oldest beyond the window)."""
        y = bool(y)
        order = self._order[y]
        if len(order) >= self.window:
            self._remove(y, order.popleft())
        order.append(p)
        self._twice_concordant += self._pairs(y, p)
        insort(self._sorted[y], p)

    def get(self) -> float | None:
        """ROC AUC of the windows; None while either class has no score."""
        pairs = len(self._sorted[True]) * len(self._sorted[False])
        return self._twice_concordant / (2 * pairs) if pairs else None

    def counts(self) -> tuple[int, int]:
        """Scores held: ``(positives, negatives)``."""
        return len(self._sorted[True]), len(self._sorted[False])

    def _remove(self, y: bool, p: float) -> None:
        scores = self._sorted[y]
        del scores[bisect_left(scores, p)]
        self._twice_concordant -= self._pairs(y, p)

    def _pairs(self, y: bool, p: float) -> int:
        """Twice the pairs ``p`` ranks right against the other class (ties once)."""
        other = self._sorted[not y]
        below, upto = bisect_left(other, p), bisect_right(other, p)
        right = below if y else len(other) - upto
        return 2 * right + (upto - below)


@dataclass
class BinaryValidation:
    """Exact ROC AUC per class window, rolling log loss and accuracy of a probability model."""

    window: int = 1000
    labels: int = 0
    positives: int = 0
    _auc: ClassWindowAUC = field(init=False, repr=False)
    _logloss: Any = field(init=False, repr=False)
    _accuracy: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from river import metrics, utils  # at build: River's import pulls in scipy (seconds at start-up)

        self._auc = ClassWindowAUC(self.window)
        self._logloss = utils.Rolling(metrics.LogLoss, window_size=self.window)
        self._accuracy = utils.Rolling(metrics.Accuracy, window_size=self.window)

    def update(self, y: bool, p: float) -> None:
        """Record one label against the probability that was predicted for it."""
        self.labels += 1
        self.positives += int(y)
        self._auc.update(y, p)
        self._logloss.update(y, {True: p, False: 1 - p})
        self._accuracy.update(y, p >= 0.5)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickle; one written before the exact AUC starts its AUC windows empty (the old
        thresholded figure is not carried over: it read 0.5 for any model scoring below 0.11)."""
        if not isinstance(state.get("_auc"), ClassWindowAUC):
            state = {k: v for k, v in state.items() if k != "_recent"}
            state["_auc"] = ClassWindowAUC(state.get("window", 1000))
        self.__dict__.update(state)

    def recent_auc(self) -> float | None:
        """ROC AUC of the last ``window`` positives against the last ``window`` negatives; None until
        both classes have a label. Kept up to date per label, so callers may ask for every event.

        Exact, whatever the scale of the probabilities (a churn model that ranks well below 0.1):

        >>> v = BinaryValidation(window=10)
        >>> for y, p in [(True, 0.09), (False, 0.02), (True, 0.07), (False, 0.04)]:
        ...     v.update(y, p)
        >>> v.recent_auc()
        1.0
        """
        return self._auc.get()

    def summary(self) -> dict[str, float | int | None]:
        """The current figures (None until there are labels)."""
        if not self.labels:
            return {"labels": 0, "roc_auc": None, "log_loss": None, "accuracy": None}
        auc = self._auc.get()
        return {
            "labels": self.labels,
            "roc_auc": None if auc is None else round(auc, 4),
            "log_loss": round(float(self._logloss.get()), 4),
            "accuracy": round(float(self._accuracy.get()), 4),
        }


@dataclass
class MulticlassValidation:
    """Rolling accuracy and macro-F1 of a classifier."""

    window: int = 1000
    labels: int = 0
    _accuracy: Any = field(init=False, repr=False)
    _f1: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from river import metrics, utils  # at build: River's import pulls in scipy (seconds at start-up)

        self._accuracy = utils.Rolling(metrics.Accuracy, window_size=self.window)
        self._f1 = utils.Rolling(metrics.MacroF1, window_size=self.window)

    def update(self, y: str, y_pred: str) -> None:
        """Record one label against the class that was predicted for it."""
        self.labels += 1
        self._accuracy.update(y, y_pred)
        self._f1.update(y, y_pred)

    def summary(self) -> dict[str, float | int | None]:
        """The current figures (None until there are labels)."""
        if not self.labels:
            return {"labels": 0, "accuracy": None, "macro_f1": None}
        return {
            "labels": self.labels,
            "accuracy": round(float(self._accuracy.get()), 4),
            "macro_f1": round(float(self._f1.get()), 4),
        }
