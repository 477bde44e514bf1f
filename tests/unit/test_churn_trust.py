"""A churn score is trusted only with enough labels of both classes AND a ranking better than chance.

An outside review saw ``high_churn_risk`` raise for 386 of 400 customers while the
model, trained on early positives only, ranked no better than chance.
"""

from __future__ import annotations

import random

from models.validation import BinaryValidation
from operators.scoring.online import CHURN_TRUST_AUC, _warm


def validation(auc_like: bool, n: int = 600, seed: int = 3) -> BinaryValidation:
    rng = random.Random(seed)
    v = BinaryValidation()
    for _ in range(n):
        y = rng.random() < 0.2
        p = (0.6 + 0.3 * rng.random() if y else 0.1 + 0.5 * rng.random()) if auc_like else rng.random()
        v.update(y, p)
    return v


def test_a_model_that_ranks_at_chance_is_not_trusted_however_many_labels():
    v = validation(auc_like=False)
    assert v.labels >= 200 and v.positives >= 20
    assert (v.recent_auc() or 0) < CHURN_TRUST_AUC
    assert not _warm(v)


def test_a_model_that_ranks_well_is_trusted():
    v = validation(auc_like=True)
    assert (v.recent_auc() or 0) >= CHURN_TRUST_AUC
    assert _warm(v)


def test_one_class_in_the_window_is_never_trusted():
    v = BinaryValidation()
    for _ in range(300):
        v.update(True, 0.9)
    assert v.recent_auc() is None and not _warm(v)
