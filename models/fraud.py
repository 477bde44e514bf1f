"""Fraud / anomaly risk on purchases, returns and account changes, with its reason.

Unsupervised: River's Half-Space Trees (:func:`operators.scoring.features.fraud_features`);
each event is scored, then learned. Half-Space Trees split the unit cube, so
features are standardised and squashed into (0, 1) by a logistic curve
(:func:`squash`): ordinary values fill the middle and an outlier, however
large, lands in the sparse edge. (Min-max scaling, the usual choice, puts
the ordinary values across the whole cube and any outlier at its face next
to them: a 180x order then scored like an ordinary one.)

The trees' raw score has no fixed scale (it depends on the number of
features and the tree height), so the published score is its *rank* among
the last ``calibration_size`` events learned: 0.99 means stranger than 99 %
of recent events. A rule threshold is then an alert budget that holds
whatever the features. The reason is the feature furthest from its running
mean, in standard deviations.

>>> m = FraudModel(seed=3, window_size=50)
>>> for i in range(400):
...     m.learn_one({"amount": 20.0 + i % 7, "orders_1h": 1.0})
>>> normal = m.score_one({"amount": 23.0, "orders_1h": 1.0})
>>> odd = m.score_one({"amount": 900.0, "orders_1h": 9.0})
>>> odd > normal, m.reason({"amount": 900.0, "orders_1h": 1.0})[0]
(True, 'amount')
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Any


def squash(x: dict[str, float]) -> dict[str, float]:
    """Standardised values into (0, 1): 0 sd -> 0.5, +-4 sd -> 0.73 / 0.27, far out -> the edges."""
    return {k: 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, v)) / 4.0)) for k, v in x.items()}


class FraudModel:
    """Half-Space Trees anomaly score in [0, 1].

    Parameters kept as attributes: ``n_trees``, ``height``, ``window_size``,
    ``calibration_size``, ``seed``.
    """

    def __init__(
        self, n_trees: int = 10, height: int = 8, window_size: int = 250, calibration_size: int = 2000, seed: int = 42
    ) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.calibration_size = calibration_size
        self.seed = seed
        from river import anomaly, compose, preprocessing  # at build: River's import pulls in scipy (seconds)

        self.pipeline = compose.Pipeline(
            preprocessing.StandardScaler(),
            compose.FuncTransformer(squash),
            anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed),
        )
        self.moments: dict[str, Any] = {}
        self.seen = 0
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []
        self._last: tuple[dict[str, float] | None, float] = (None, 0.0)

    def score_one(self, x: dict[str, float]) -> float:
        """Anomaly score in [0, 1]: the share of recent events less strange than this one."""
        raw = float(self.pipeline.score_one(x))
        self._last = (x, raw)
        if not self._sorted:
            return 0.0
        return round(bisect.bisect_left(self._sorted, raw) / len(self._sorted), 4)

    def learn_one(self, x: dict[str, float]) -> None:
        """Learn what normal looks like from one event."""
        raw = self._last[1] if self._last[0] is x else float(self.pipeline.score_one(x))
        self._last = (None, 0.0)
        self._recent.append(raw)
        bisect.insort(self._sorted, raw)
        if len(self._recent) > self.calibration_size:
            del self._sorted[bisect.bisect_left(self._sorted, self._recent.popleft())]
        self.pipeline.learn_one(x)
        moments = self.moments
        for name, value in x.items():
            var = moments.get(name)
            if var is None:  # not setdefault: it would build a Var per feature on every event
                from river import stats  # imported by the build already: a lookup

                var = moments[name] = stats.Var()
            var.update(value)
        self.seen += 1

    def reason(self, x: dict[str, float]) -> tuple[str, float]:
        """The most unusual feature and how many standard deviations off it is."""
        best, best_z = "", 0.0
        for name, value in x.items():
            var = self.moments.get(name)
            if var is None or var.n < 2:
                continue
            z = abs(value - var.mean.get()) / math.sqrt(var.get() or 1e-9)
            if z > best_z:
                best, best_z = name, z
        return best, round(best_z, 1)

    def summary(self) -> dict[str, Any]:
        """Events learned (no labels: anomaly detection is unsupervised here)."""
        return {"model": "fraud", "events": self.seen}
