"""Bounded name slots keep the frequent names: junk sent first cannot lock the real ones out.

The last outside review of issue 9: offer arms (64 per model), churn feature
names (64 per model) and behaviour names (12 per customer) were first come,
first kept, so a producer sending junk action names first locked the real
ones out forever. Now a new name takes the slot of the least seen one
(space-saving, :mod:`models.slots`): bounded, deterministic, pickle-safe.
"""

from __future__ import annotations

import pickle

from livesignals import serde
from livesignals.contract import decode
from livesignals.errors import Origin
from models.churn import ChurnModel
from models.propensity import MAX_ARMS, ResponseModel
from operators.profile360.profile import CustomerState
from operators.scoring import behaviour
from operators.scoring.features import CHURN_FEATURES
from tests.helpers import T0, event

X = {"spend_30d": 10.0, "orders_30d": 1.0}


def _flooded_then_real(model: ResponseModel) -> ResponseModel:
    for i in range(MAX_ARMS):
        model.learn_one(f"junk{i}", X, False)
    for i in range(20):
        model.learn_one("retention_offer", {"spend_30d": 900.0 if i % 2 else 10.0}, bool(i % 2))
        model.learn_one(f"more-junk{i}", X, False)  # the flood goes on, one sighting per name
    return model


def test_offer_arms_named_first_by_junk_do_not_lock_out_a_real_action():
    model = _flooded_then_real(ResponseModel(learning_rate=0.3))
    assert len(model.arms) == MAX_ARMS == len(model.slots) == len(model.labels)
    assert "retention_offer" in model.arms and model.labels["retention_offer"] == [10, 20]
    assert model.predict_one("retention_offer", {"spend_30d": 900.0}) > model.prior, "it learned"


def test_arm_eviction_is_deterministic_and_pickle_safe():
    a, b = _flooded_then_real(ResponseModel()), _flooded_then_real(ResponseModel())
    assert sorted(a.arms) == sorted(b.arms) and a.slots == b.slots
    again = pickle.loads(pickle.dumps(a))
    assert again.slots == a.slots and again.predict_one("retention_offer", X) == a.predict_one("retention_offer", X)


def test_a_response_model_pickled_before_eviction_existed_still_loads_and_learns():
    old = ResponseModel()
    old.learn_one("retention_offer", X, True)
    del old.__dict__["slots"]
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.slots == {"retention_offer": 1}
    assert loaded.learn_one("retention_offer", X, False) and loaded.labels["retention_offer"] == [1, 2]


def test_churn_feature_names_sent_first_do_not_lock_out_real_features():
    model = ChurnModel(learning_rate=0.1, max_features=64)
    for i in range(64):
        model.learn_one({f"junk{i}_30d": 1.0}, False)
    for i in range(200):
        model.learn_one({"complaints_30d": 3.0 * (i % 2), f"junk-late{i}_30d": 1.0}, bool(i % 2))
    assert len(model.known) <= 64 and len(model.weights) <= 64 and len(model.scaler.means) <= 64
    assert "complaints_30d" in model.known and model.averaged["complaints_30d"] > 0
    assert model.predict_proba_one({"complaints_30d": 3.0}) > model.predict_proba_one({"complaints_30d": 0.0})
    twin = pickle.loads(pickle.dumps(model))
    assert twin.known == model.known and twin.predict_proba_one({"complaints_30d": 3.0}) == model.predict_proba_one(
        {"complaints_30d": 3.0}
    )


def _record(state: CustomerState, action: str, i: int) -> None:
    doc = event("app_event", "c1", T0 + i * 60_000, event_id=f"e{i}", action=action)
    behaviour.record(state, decode(serde.dumps(doc), Origin("in", 0, i), now_ms=T0 + 10**9))


def test_a_customers_behaviours_named_first_by_junk_do_not_lock_out_real_ones():
    state = CustomerState("customer_id:c1")
    for i in range(behaviour.MAX_BEHAVIOURS):
        _record(state, f"junk{i}", i)
    i = behaviour.MAX_BEHAVIOURS
    for j in range(10):  # real use, with more junk in between
        _record(state, "login", i)
        _record(state, f"late-junk{j}", i + 1)
        i += 2
    act = state.predictions["churn_activity"]
    assert len(act["names"]) == len(act["hits"]) == behaviour.MAX_BEHAVIOURS
    assert "login" in act["names"]
    f = behaviour.features(state, T0 + i * 60_000)
    assert f["login_30d"] > 0 and f["login_7d"] > 0


def test_a_reused_slot_starts_from_zero_and_pending_snapshots_forget_the_old_name():
    state = CustomerState("customer_id:c1")
    for i in range(behaviour.MAX_BEHAVIOURS):
        _record(state, f"b{i}", i)
    width = len(CHURN_FEATURES) + len(behaviour.FIXED) + 2 * behaviour.MAX_BEHAVIOURS
    state.predictions["churn_pending"] = [{"t": T0, "x": [1.0] * width, "k": behaviour.MAX_BEHAVIOURS, "p": {}}]
    _record(state, "b1", 100)  # b1 seen twice: b0 is now the first least seen
    _record(state, "new", 101)
    act = state.predictions["churn_activity"]
    assert act["names"][0] == "new" and act["names"][1] == "b1"
    assert behaviour.features(state, T0 + 101 * 60_000)["new_30d"] == serde.loads(b"0.6931471805599453")
    x = state.predictions["churn_pending"][0]["x"]
    at = len(CHURN_FEATURES) + len(behaviour.FIXED)
    assert x[at : at + 2] == [None, None] and None not in x[at + 2 :], "only the reused slot's values"
