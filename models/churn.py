"""Churn risk: a calibrated probability per customer, with the features that drive it.

A River pipeline (standard scaling, then logistic regression) scores profile
features (:func:`operators.scoring.features.churn_features`). Labels are delayed:
the engine keeps the features and the probability it predicted at scoring
time; a cancellation within ``horizon`` makes them positive, the horizon
passing without one makes them negative. Each label is checked against the
probability predicted at the time (progressive validation) before learning.

>>> m = ChurnModel(learning_rate=0.1, seed=1)
>>> for i in range(300):
...     m.learn_one({"complaints_30d": i % 2 * 3.0, "orders_30d": (1 - i % 2) * 2.0}, bool(i % 2))
>>> m.predict_proba_one({"complaints_30d": 3.0, "orders_30d": 0.0}) > 0.5
True
>>> [name for name, _ in m.explain_one({"complaints_30d": 3.0, "orders_30d": 0.0})][:1]
['complaints_30d']
"""

from __future__ import annotations

from typing import Any

from river import compose, linear_model, optim, preprocessing

from models.validation import BinaryValidation


class ChurnModel:
    """Online logistic regression on scaled profile features.

    Defaults (learning rate 0.05, L2 0.001) were chosen on the subscription-app stream
    (:mod:`app.simulator.subscription`, see ``bench.models``): at 0.01 the model had
    learned little after thousands of labels.

    Parameters kept as attributes: ``learning_rate``, ``l2``, ``seed``,
    ``max_features`` -- the model learns at most this many feature names (the
    first it is taught; later new names are ignored), so its size is bounded
    whatever behaviours the events name.
    """

    def __init__(self, learning_rate: float = 0.05, l2: float = 0.001, seed: int = 42, max_features: int = 64) -> None:
        self.learning_rate = learning_rate
        self.l2 = l2
        self.seed = seed
        self.max_features = max_features
        self.known: dict[str, None] = {}
        self.scaler = preprocessing.StandardScaler()
        self.regression = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=l2)
        self.pipeline = compose.Pipeline(self.scaler, self.regression)
        self.validation = BinaryValidation()

    def predict_proba_one(self, x: dict[str, float]) -> float:
        """Probability that the customer cancels within the horizon."""
        return float(self.pipeline.predict_proba_one(self._known(x)).get(True, 0.0))

    def explain_one(self, x: dict[str, float], top: int = 3) -> list[tuple[str, float]]:
        """The features pushing the risk up most: (name, contribution to the log-odds)."""
        scaled = self.scaler.transform_one(self._known(x))
        weights = self.regression.weights
        contributions = [(name, round(weights.get(name, 0.0) * value, 4)) for name, value in scaled.items()]
        return sorted((c for c in contributions if c[1] > 0), key=lambda c: -c[1])[:top]

    def learn_one(self, x: dict[str, float], y: bool, predicted: float | None = None) -> None:
        """Learn one delayed label; ``predicted`` is what was said at scoring time."""
        self.validation.update(y, self.predict_proba_one(x) if predicted is None else predicted)
        for name in x:
            if name not in self.known and len(self.known) < self.max_features:
                self.known[name] = None
        self.pipeline.learn_one(self._known(x), y)

    def _known(self, x: dict[str, float]) -> dict[str, float]:
        """``x`` without the feature names beyond :attr:`max_features`."""
        return x if len(self.known) < self.max_features else {k: v for k, v in x.items() if k in self.known}

    def summary(self) -> dict[str, Any]:
        """Labels learned and rolling validation figures."""
        return {"model": "churn", **self.validation.summary()}
