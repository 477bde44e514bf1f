"""Churn risk: a calibrated probability per customer, with the features that drive it.

Online logistic regression on profile and behaviour features
(:func:`operators.scoring.online.churn_inputs`): River's running standard
scaler, values clipped to +-``clip`` standard deviations (one extreme customer
must not swing the model), plain SGD steps, and **averaged weights** for
prediction (an exponential moving average over the last ~``average_window``
steps). Churn labels arrive in bursts -- every snapshot of a customer at their
cancellation -- and plain SGD chases each burst; the averaged weights do not
(``bench.models``: plain SGD stayed 0.05-0.15 ROC AUC below a batch logistic
regression on the same question). Step 0.1 averaged over ~5,000 steps was
chosen on a development stream (the subscription stream, seed 11: 0.78 against
0.67 for step 0.02 over 20,000, which learned too slowly from ~250 positives in
19k labels) and judged on another seed.

Labels are delayed: the engine keeps the features and the probability it
predicted at scoring time; a cancellation within ``horizon`` makes them
positive, the horizon passing without one makes them negative. Each label is
checked against the probability predicted at the time (progressive
validation) before learning.

>>> m = ChurnModel(learning_rate=0.1, seed=1)
>>> for i in range(300):
...     m.learn_one({"complaints_30d": i % 2 * 3.0, "orders_30d": (1 - i % 2) * 2.0}, bool(i % 2))
>>> m.predict_proba_one({"complaints_30d": 3.0, "orders_30d": 0.0}) > 0.5
True
>>> [name for name, _ in m.explain_one({"complaints_30d": 3.0, "orders_30d": 0.0})][:1]
['complaints_30d']
"""

from __future__ import annotations

import math
from typing import Any

from models.slots import count_in
from models.validation import BinaryValidation


class ChurnModel:
    """Online logistic regression with averaged weights on scaled, clipped features.

    Parameters kept as attributes: ``learning_rate``, ``l2``, ``clip``,
    ``average_window``, ``seed`` (no randomness is used: kept for the version
    name), ``max_features`` -- the model learns at most this many feature names,
    so its size is bounded whatever behaviours the events name; beyond it a new
    name takes the slot of the least taught one (space-saving, :mod:`models.slots`),
    so names sent first cannot lock the frequent ones out.
    """

    def __init__(
        self,
        learning_rate: float = 0.1,
        l2: float = 0.001,
        clip: float = 5.0,
        average_window: int = 5_000,
        seed: int = 42,
        max_features: int = 64,
    ) -> None:
        self.learning_rate = learning_rate
        self.l2 = l2
        self.clip = clip
        self.average_window = average_window
        self.seed = seed
        self.max_features = max_features
        self.known: dict[str, int] = {}
        """Feature names learned, with their space-saving counts."""
        from river import preprocessing  # at build: River's import pulls in scipy (seconds at start-up)

        self.scaler = preprocessing.StandardScaler()
        self.weights: dict[str, float] = {}
        self.intercept = 0.0
        self.averaged: dict[str, float] = {}
        self.averaged_intercept = 0.0
        self.steps = 0
        self.validation = BinaryValidation()

    def predict_proba_one(self, x: dict[str, float]) -> float:
        """Probability that the customer cancels within the horizon (averaged weights)."""
        return self.proba_of(self.transform_one(x))

    def explain_one(self, x: dict[str, float], top: int = 3) -> list[tuple[str, float]]:
        """The features pushing the risk up most: (name, contribution to the log-odds)."""
        return self.drivers_of(self.transform_one(x), top)

    def transform_one(self, x: dict[str, float]) -> dict[str, float]:
        """``x`` as the model reads it: known names only, standardised, clipped to +-``clip``.

        Compute it once and pass it to :meth:`proba_of` and :meth:`drivers_of` when both are
        wanted (scoring with an explanation): standardising is most of a prediction's cost.
        Reading never changes the scaler (River's ``transform_one`` adds a zero entry per unseen name).
        """
        c, means, variances = self.clip, self.scaler.means, self.scaler.vars
        out = {}
        for name, value in self._known(x).items():
            var = variances.get(name)
            z = (value - means.get(name, 0.0)) / var**0.5 if var else 0.0
            out[name] = c if not z <= c else -c if z < -c else z  # as max(-c, min(c, z)), NaN included
        return out

    def proba_of(self, z: dict[str, float]) -> float:
        """:meth:`predict_proba_one` of features already transformed (:meth:`transform_one`)."""
        return _sigmoid(self._logit(z, self.averaged, self.averaged_intercept))

    def drivers_of(self, z: dict[str, float], top: int = 3) -> list[tuple[str, float]]:
        """:meth:`explain_one` of features already transformed (:meth:`transform_one`)."""
        weights = self.averaged
        contributions = []
        for name, value in z.items():
            pushed = weights.get(name, 0.0) * value
            if pushed > 0:  # only a positive contribution can round to one (rounding the rest is waste)
                shown = round(pushed, 4)
                if shown > 0:
                    contributions.append((name, shown))
        return sorted(contributions, key=lambda c: -c[1])[:top]

    def learn_one(self, x: dict[str, float], y: bool, predicted: float | None = None) -> None:
        """Learn one delayed label; ``predicted`` is what was said at scoring time."""
        self.validation.update(y, self.predict_proba_one(x) if predicted is None else predicted)
        for name in count_in(self.known, x, self.max_features):  # space-saving: junk names cannot lock out
            self._forget(name)
        known = self._known(x)
        self.scaler.learn_one(known)
        z = self.transform_one(known)
        gradient = _sigmoid(self._logit(z, self.weights, self.intercept)) - float(y)
        rate, w = self.learning_rate, self.weights
        for name, value in z.items():
            current = w.get(name, 0.0)
            w[name] = current - rate * (gradient * value + self.l2 * current)
        self.intercept -= rate * gradient
        self.steps += 1
        share = max(1.0 / self.steps, 1.0 / self.average_window)
        avg = self.averaged
        for name, value in w.items():
            current = avg.get(name, 0.0)
            avg[name] = current + (value - current) * share
        self.averaged_intercept += (self.intercept - self.averaged_intercept) * share

    def summary(self) -> dict[str, Any]:
        """Labels learned and rolling validation figures."""
        return {"model": "churn", **self.validation.summary()}

    def _forget(self, name: str) -> None:
        """Drop an evicted feature name's weights and scaling (it starts afresh if it returns)."""
        for table in (self.weights, self.averaged, self.scaler.counts, self.scaler.means, self.scaler.vars):
            table.pop(name, None)

    def _known(self, x: dict[str, float]) -> dict[str, float]:
        """``x`` without the feature names beyond :attr:`max_features`."""
        return x if len(self.known) < self.max_features else {k: v for k, v in x.items() if k in self.known}

    @staticmethod
    def _logit(z: dict[str, float], weights: dict[str, float], intercept: float) -> float:
        return intercept + sum(weights.get(k, 0.0) * v for k, v in z.items())


def _sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, t))))
