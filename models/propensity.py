"""Response propensity per arm: how likely a customer is to say yes.

One :class:`ResponseModel` holds an online logistic regression per *arm*: an
action (will this customer accept a retention offer? a callback?) or a flag
(will the agent find this flag relevant?). Each starts at ``prior`` (its
intercept is the prior's log-odds) and moves as responses arrive, so a new
action is neither ignored nor over-trusted before it has labels.

Features are the customer's profile features (:func:`operators.scoring.features.churn_features`),
standard-scaled per arm. Labels are checked against the probability the
model gave before learning (progressive validation, pooled over arms).

>>> m = ResponseModel(learning_rate=0.2, prior=0.1)
>>> round(m.predict_one("upsell", {"spend_30d": 10.0}), 2)
0.1
>>> for i in range(400):
...     big = i % 2 == 0
...     _ = m.learn_one("upsell", {"spend_30d": 900.0 if big else 10.0}, big)
>>> m.predict_one("upsell", {"spend_30d": 900.0}) > 0.8 > 0.2 > m.predict_one("upsell", {"spend_30d": 10.0})
True
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where an arm is built: River's import pulls in scipy (seconds at start-up)
    from river import compose

from models.slots import count_in
from models.validation import BinaryValidation

MAX_ARMS = 64
"""Arms kept per model. Beyond it the arm with the fewest responses gives its slot to the new one
(space-saving, :mod:`models.slots`): junk action names sent first cannot lock real ones out."""


class ResponseModel:
    """Online logistic regression per arm, starting at a prior.

    Parameters kept as attributes: ``learning_rate``, ``l2``, ``prior``, ``seed``.
    """

    def __init__(self, learning_rate: float = 0.05, l2: float = 0.001, prior: float = 0.1, seed: int = 42) -> None:
        if not 0.0 < prior < 1.0:
            raise ValueError("prior must be strictly between 0 and 1")
        self.learning_rate = learning_rate
        self.l2 = l2
        self.prior = prior
        self.seed = seed  # the model is deterministic; kept for the registry's version names
        self.arms: dict[str, compose.Pipeline] = {}
        self.labels: dict[str, list[int]] = {}
        """Per arm: ``[positives, labels]``."""
        self.slots: dict[str, int] = {}
        """Per arm kept: its space-saving count (responses, plus what an evicted arm left)."""
        self.validation = BinaryValidation()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle, also a model pickled before arms were evicted (its slots: its label counts)."""
        state.setdefault("slots", {arm: counts[1] for arm, counts in state.get("labels", {}).items()})
        self.__dict__.update(state)

    def predict_one(self, arm: str, x: dict[str, float]) -> float:
        """Probability of a positive response to ``arm`` (the prior for an arm never seen)."""
        pipeline = self.arms.get(arm)
        if pipeline is None:
            return self.prior
        return float(pipeline.predict_proba_one(x).get(True, self.prior))

    def learn_one(self, arm: str, x: dict[str, float], y: bool, predicted: float | None = None) -> bool:
        """Learn one response; ``predicted`` is what was said at decision time (always learned: a new
        arm beyond :data:`MAX_ARMS` takes the slot of the arm with the fewest responses)."""
        for evicted in count_in(self.slots, [arm], MAX_ARMS):
            del self.arms[evicted], self.labels[evicted]  # back to the prior if it returns
        pipeline = self.arms.get(arm)
        if pipeline is None:
            pipeline = self.arms[arm] = self._new_arm()
            self.labels[arm] = [0, 0]
        self.validation.update(y, self.predict_one(arm, x) if predicted is None else predicted)
        pipeline.learn_one(x, y)
        counts = self.labels[arm]
        counts[0] += int(y)
        counts[1] += 1
        return True

    def rate(self, arm: str) -> float | None:
        """The observed positive rate of ``arm`` (None before its first label)."""
        counts = self.labels.get(arm)
        return counts[0] / counts[1] if counts and counts[1] else None

    def summary(self) -> dict[str, Any]:
        """Labels learned, validation figures, and the positive rate per arm."""
        rates = {arm: round(c[0] / c[1], 4) for arm, c in sorted(self.labels.items()) if c[1]}
        return {"model": "propensity", **self.validation.summary(), "rates": rates}

    def _new_arm(self) -> compose.Pipeline:
        from river import compose, linear_model, optim, preprocessing

        regression = linear_model.LogisticRegression(
            optimizer=optim.SGD(self.learning_rate),
            l2=self.l2,
            intercept_init=math.log(self.prior / (1 - self.prior)),
        )
        return compose.Pipeline(preprocessing.StandardScaler(), regression)
