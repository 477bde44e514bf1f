"""Every model: learns, pickles, and gives the same result for the same seed and data."""

from __future__ import annotations

import pickle
import random

import pytest

from models.churn import ChurnModel
from models.fraud import FraudModel
from models.propensity import ResponseModel
from models.registry import ModelSet, version_of
from models.sentiment import SentimentModel, label_from_survey
from models.text import normalize

TEXTS = [
    ("great service, thank you", "positive"),
    ("terrible, my parcel never arrived", "negative"),
    ("where is my order", "neutral"),
    ("خیلی ممنون، عالی بود", "positive"),
    ("افتضاح است، خراب شد", "negative"),
    ("Ευχαριστώ πολύ", "positive"),
]


def feed(model, n=300, seed=0):
    rng = random.Random(seed)
    for i in range(n):
        if isinstance(model, SentimentModel):
            text, label = TEXTS[i % len(TEXTS)]
            model.learn_one(text, label)
        elif isinstance(model, ChurnModel):
            y = rng.random() < 0.3
            model.learn_one(
                {"complaints_30d": rng.gauss(3 if y else 0.5, 1), "orders_30d": rng.gauss(0.5 if y else 2, 1)}, y
            )
        elif isinstance(model, ResponseModel):
            spend = rng.gauss(300, 200)
            arm = rng.choice(["upsell", "cross_sell"])
            model.learn_one(
                arm, {"spend_30d": spend}, rng.random() < (0.6 if (arm == "upsell") == (spend > 300) else 0.1)
            )
        else:
            model.learn_one({"amount": rng.gauss(50, 10), "orders_1h": float(rng.randrange(3))})
    return model


def outputs(model):
    if isinstance(model, SentimentModel):
        return [model.predict_proba_one(t) for t, _ in TEXTS]
    if isinstance(model, ChurnModel):
        return [model.predict_proba_one({"complaints_30d": c, "orders_30d": 1.0}) for c in (0.0, 2.0, 5.0)]
    if isinstance(model, ResponseModel):
        return [model.predict_one(a, {"spend_30d": s}) for a in ("upsell", "cross_sell", "new") for s in (50.0, 900.0)]
    return [model.score_one({"amount": a, "orders_1h": 1.0}) for a in (40.0, 55.0, 500.0)]


@pytest.mark.parametrize("cls", [SentimentModel, ChurnModel, FraudModel, ResponseModel])
def test_pickle_round_trip_keeps_behaviour(cls):
    model = feed(cls(seed=7))
    copy = pickle.loads(pickle.dumps(model))
    assert outputs(copy) == outputs(model)
    feed(model, 50, seed=1)
    feed(copy, 50, seed=1)
    assert outputs(copy) == outputs(model)


@pytest.mark.parametrize("cls", [SentimentModel, ChurnModel, FraudModel, ResponseModel])
def test_same_seed_same_result(cls):
    assert outputs(feed(cls(seed=3))) == outputs(feed(cls(seed=3)))


def test_response_model_learns_who_accepts_what_and_starts_at_its_prior():
    model = feed(ResponseModel(seed=1, prior=0.1), n=3000)
    upsell_poor, upsell_rich, cross_poor, cross_rich, _, new_rich = outputs(model)
    assert upsell_rich > 0.4 > upsell_poor and cross_poor > 0.4 > cross_rich
    assert new_rich == 0.1, "an action never answered keeps the prior"
    assert model.summary()["roc_auc"] > 0.7


def test_fraud_scores_an_outlier_far_above_ordinary_orders():
    model = feed(FraudModel(seed=2), n=1500)
    ordinary = [model.score_one({"amount": a, "orders_1h": 1.0}) for a in (45.0, 50.0, 55.0)]
    outlier = model.score_one({"amount": 5000.0, "orders_1h": 2.0})
    assert outlier >= 0.8 > max(ordinary) + 0.2


def test_fraud_seed_matters():
    assert outputs(feed(FraudModel(seed=1))) != outputs(feed(FraudModel(seed=2)))


def test_sentiment_learns_beyond_its_lexicon():
    m = SentimentModel(warmup=50, seed=1)
    before = m.predict_one("the courier was a no-show")
    for _ in range(40):
        m.learn_one("the courier was a no-show", "negative")
        m.learn_one("the courier came early", "positive")
    assert before != "negative" or m.labels  # the lexicon does not know "no-show"
    assert m.predict_one("courier no-show") == "negative"
    assert m.summary()["labels"] == 80 and m.summary()["accuracy"] is not None


def test_persian_normalisation_makes_variants_one_word():
    assert normalize("مشكل") == normalize("مشکل") and normalize("می‌خواهم") == normalize("میخواهم")
    assert normalize("۱۲۳ ٤٥٦") == "123 456"
    m = SentimentModel()
    assert m.score("مشكل دارم، افتضاح") < 0 and m.score("ممنون، عالي بود") > 0


def test_text_in_other_scripts_does_not_break_scoring():
    m = SentimentModel()
    for text in ("Πολύ κακή εξυπηρέτηση", "日本語のテキスト", "mixed متن και κείμενο 123", "", "!!!"):
        assert -1.0 <= m.score(text) <= 1.0


def test_survey_answers_map_to_sentiment():
    assert [label_from_survey("csat", s) for s in (1, 3, 5)] == ["negative", "neutral", "positive"]
    assert [label_from_survey("nps", s) for s in (0, 7, 10)] == ["negative", "neutral", "positive"]
    assert [label_from_survey("ces", s) for s in (1, 4, 7)] == ["positive", "neutral", "negative"]


def test_model_set_from_settings_with_challenger_and_promotion():
    ms = ModelSet.from_config({"churn": {"challenger": {"learning_rate": 0.2}}})
    champion, challenger = ms.champions["churn"], ms.challengers["churn"]
    assert challenger.version == version_of("churn", {"learning_rate": 0.2}) != champion.version
    assert ms.promote("churn", "p1") and ms.champions["churn"] is challenger
    assert not ms.promote("churn", "p1"), "a promotion applies once"
    assert not ms.promote("sentiment", "p2"), "no challenger, nothing to promote"
    with pytest.raises(ValueError, match="unknown model kinds"):
        ModelSet.from_config({"magic": {}})
    restored = ModelSet.from_bytes(ms.to_bytes())
    assert [r["version"] for r in restored.summary()] == [r["version"] for r in ms.summary()]


def test_checkpoint_bytes_are_bounded_whatever_words_and_behaviours_arrive():
    """The README's bound: new words and behaviour names do not grow the shared models' checkpoint."""
    import pickle as _pickle
    import random as _random

    from models.registry import ModelSet

    rng, models = _random.Random(3), ModelSet.from_config()

    def teach(n: int) -> int:
        for i in range(n):
            text = f"parcel w{rng.getrandbits(40):x} w{rng.getrandbits(40):x} late"
            models.teach("sentiment", [models.model("sentiment").lesson(text), rng.choice(("negative", "positive"))])
            models.teach("churn", [{"events_30d": rng.random(), f"b{rng.getrandbits(32)}_7d": 1.0}, i % 9 == 0])
        return len(_pickle.dumps(models))

    first, later = teach(1100), teach(1100)  # once the rolling windows (1,000 labels) are full
    assert later < 1_600_000 and later - first < 0.01 * first
