"""A churn score is trusted only with enough labels of both classes AND a ranking better than chance.

An outside review saw ``high_churn_risk`` raise for 386 of 400 customers while the
model, trained on early positives only, ranked no better than chance.
"""

from __future__ import annotations

import pickle
import random

import pytest
from river import metrics

from models.validation import BinaryValidation, ClassWindowAUC
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


def exact_auc(ys: list[bool], ps: list[float]) -> float:
    pos = [p for y, p in zip(ys, ps, strict=True) if y]
    neg = [p for y, p in zip(ys, ps, strict=True) if not y]
    return sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))


def test_a_churn_model_ranking_at_075_with_small_probabilities_is_measured_so_and_trusted():
    """What production sees: churn probabilities of a few percent. River's thresholded ROCAUC read
    every such model as exactly 0.5, so the trust gate never opened (issue #11)."""
    rng = random.Random(5)
    v, ys, ps = BinaryValidation(), [], []
    for _ in range(3000):
        y = rng.random() < 0.05
        p = min(0.2, max(0.001, rng.gauss(0.05 if y else 0.035, 0.015)))  # binormal, AUC about 0.75
        v.update(y, p)
        ys.append(y)
        ps.append(p)
    held = [(y, p) for y, p in zip(ys, ps, strict=True) if not y][-1000:] + [
        (y, p) for y, p in zip(ys, ps, strict=True) if y
    ][-1000:]
    truth = exact_auc([y for y, _ in held], [p for _, p in held])
    assert 0.7 < truth < 0.8
    assert v.recent_auc() == pytest.approx(truth, abs=1e-12)
    assert _warm(v)
    river_auc = metrics.ROCAUC()  # what the gate used before: ten thresholds over [0, 1]
    for y, p in zip(ys, ps, strict=True):
        river_auc.update(y, p)
    assert river_auc.get() == 0.5


def test_auc_is_exact_against_pairs_with_ties_and_windows_per_class():
    rng = random.Random(11)
    auc, ys, ps = ClassWindowAUC(window=50), [], []
    for i in range(700):
        y = rng.random() < (0.1 if i < 400 else 0.6)  # the class mix changes: each class keeps its own window
        p = round(rng.random() * (0.3 if y else 0.25), 2)  # coarse: many ties
        auc.update(y, p)
        ys.append(y)
        ps.append(p)
        if i % 37 == 0 and 0 < sum(ys) < len(ys):
            pos = [q for t, q in zip(ys, ps, strict=True) if t][-50:]
            neg = [q for t, q in zip(ys, ps, strict=True) if not t][-50:]
            assert auc.get() == pytest.approx(exact_auc([True] * len(pos) + [False] * len(neg), pos + neg), abs=1e-12)
    assert auc.counts() == (50, 50)


def test_a_burst_of_positives_does_not_empty_the_negative_window():
    """Churn positives arrive in bursts at cancellations: 1,000 of them must not push every negative out."""
    v = validation(auc_like=True)
    for _ in range(1500):
        v.update(True, 0.8)
    auc = v.recent_auc()
    assert auc is not None and auc >= CHURN_TRUST_AUC and _warm(v)


def test_validation_pickles_and_an_old_checkpoint_restarts_its_auc_windows():
    v = validation(auc_like=True)
    copy = pickle.loads(pickle.dumps(v))
    assert copy.recent_auc() == v.recent_auc() and copy.summary() == v.summary()
    old = BinaryValidation()
    old.__dict__["_auc"] = "River's thresholded ROCAUC"  # what a checkpoint from before held
    old.__dict__["_recent"] = []
    restored = pickle.loads(pickle.dumps(old))
    assert isinstance(restored._auc, ClassWindowAUC) and restored.recent_auc() is None
    restored.update(True, 0.06)
    restored.update(False, 0.02)
    assert restored.recent_auc() == 1.0
