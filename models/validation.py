"""Progressive validation: score every prediction against its label *before* learning it.

Metrics run over a sliding window of the last ``window`` labels (River's
``utils.Rolling``), so a model that drifts shows it. Binary models report
ROC AUC, log loss and accuracy; multi-class ones accuracy and macro-F1.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from river import metrics, utils


@dataclass
class BinaryValidation:
    """Rolling ROC AUC, log loss and accuracy of a probability model."""

    window: int = 1000
    labels: int = 0
    positives: int = 0
    _auc: Any = field(init=False, repr=False)
    _logloss: Any = field(init=False, repr=False)
    _accuracy: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._auc = utils.Rolling(metrics.ROCAUC, window_size=self.window)
        self._logloss = utils.Rolling(metrics.LogLoss, window_size=self.window)
        self._accuracy = utils.Rolling(metrics.Accuracy, window_size=self.window)
        self._recent: deque[bool] = deque(maxlen=self.window)

    def update(self, y: bool, p: float) -> None:
        """Record one label against the probability that was predicted for it."""
        self.labels += 1
        self.positives += int(y)
        self._recent.append(y)
        self._auc.update(y, {True: p, False: 1 - p})
        self._logloss.update(y, {True: p, False: 1 - p})
        self._accuracy.update(y, p >= 0.5)

    def recent_auc(self) -> float | None:
        """Rolling ROC AUC over the window; None while the window holds one class only.

        Recomputed only when a label arrived since the last call (labels are rare
        next to the events that ask), so callers may ask for every event.

        >>> v = BinaryValidation(window=10)
        >>> for y, p in [(True, 0.9), (False, 0.2), (True, 0.7), (False, 0.4)]:
        ...     v.update(y, p)
        >>> v.recent_auc()
        1.0
        """
        if getattr(self, "_auc_at", -1) != self.labels:
            both = 0 < sum(self._recent) < len(self._recent)
            self._auc_value: float | None = float(self._auc.get()) if both else None
            self._auc_at = self.labels
        return self._auc_value

    def summary(self) -> dict[str, float | int | None]:
        """The current figures (None until there are labels)."""
        if not self.labels:
            return {"labels": 0, "roc_auc": None, "log_loss": None, "accuracy": None}
        return {
            "labels": self.labels,
            "roc_auc": round(float(self._auc.get()), 4) if 0 < sum(self._recent) < len(self._recent) else None,
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
