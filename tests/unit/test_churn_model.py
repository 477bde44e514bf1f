"""The churn model's one-pass scoring (issue 16): standardising once for the risk and its drivers
gives what River's scaler and the two separate calls give, reading never changes the model, and a
model slot's version (asked on every event) is named once while its parameters stay the same."""

from __future__ import annotations

import math
import pickle
import random

from models.churn import ChurnModel
from models.registry import Slot, version_of


def _trained(seed: int = 3) -> tuple[ChurnModel, random.Random]:
    rng = random.Random(seed)
    m = ChurnModel(learning_rate=0.1, clip=2.0, max_features=6, seed=seed)
    for i in range(400):
        x = {f"f{k}": rng.gauss(k, 1 + k) for k in range(rng.randint(1, 8))}  # more names than it keeps
        x["spike"] = 1e9 if i % 97 == 0 else 0.0  # far beyond the clip
        m.learn_one(x, rng.random() < 0.2 + 0.1 * x.get("f1", 0.0))
    return m, rng


def test_transform_one_is_rivers_standardisation_clipped():
    m, rng = _trained()
    for _ in range(200):
        x = {f"f{k}": rng.gauss(k, 3 * (1 + k)) for k in range(rng.randint(0, 9))} | {"spike": rng.choice((0.0, 1e12))}
        expected = {k: max(-m.clip, min(m.clip, v)) for k, v in m.scaler.transform_one(m._known(x)).items()}
        assert m.transform_one(x) == expected
    assert m.transform_one({"f1": math.nan}) == {"f1": m.clip}  # as max(-c, min(c, nan)) said


def test_one_transform_gives_the_risk_and_drivers_of_the_separate_calls():
    m, rng = _trained()
    for _ in range(200):
        x = {f"f{k}": rng.gauss(k, 2 * (1 + k)) for k in range(rng.randint(0, 9))}
        z = m.transform_one(x)
        assert m.proba_of(z) == m.predict_proba_one(x)
        assert m.drivers_of(z) == m.explain_one(x) and m.drivers_of(z, 1) == m.explain_one(x, 1)


def test_scoring_and_explaining_never_change_the_model():
    m, rng = _trained()
    before = pickle.dumps(m)
    for _ in range(50):
        x = {f"new{k}": rng.random() for k in range(3)} | {"f2": rng.random()}  # unseen names included
        m.explain_one(x)
        m.drivers_of(m.transform_one(x))
        m.predict_proba_one(x)
    assert pickle.dumps(m) == before


def test_a_slots_version_is_remembered_follows_its_parameters_and_stays_out_of_pickles():
    slot = Slot.build("churn", {"learning_rate": 0.05})
    before = pickle.dumps(slot)
    assert slot.version == version_of("churn", {"learning_rate": 0.05}) == slot.version  # asked on every event
    assert pickle.dumps(slot) == before  # a checkpoint's bytes do not depend on who asked
    slot.params["learning_rate"] = 0.2
    assert slot.version == version_of("churn", {"learning_rate": 0.2})
    assert pickle.loads(pickle.dumps(slot)).version == slot.version
