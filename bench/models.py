"""Online models on the simulator's stream, where the truth is known (issue 4).

Reports, in one run:

* churn: online ROC AUC of the engine's churn scores against who truly
  cancels within the horizon (after warm-up), next to a batch logistic
  regression on the same features (scikit-learn, the ceiling: it sees the
  true labels and trains on the first half of the stream);
* sentiment: accuracy and macro-F1 on the texts' true sentiment, per
  language, for the lexicon cold start and after 1k / 5k / 20k labels;
* cost: microseconds per scored event for each model, and events/s of the
  engine on the reference mix with models on vs off.

    python -m bench.models [--customers 20000] [--events 400000]

scikit-learn is used here only (``pip install scikit-learn``).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Any

from app.simulator import Simulator, SimulatorConfig
from bench.common import write_result
from livesignals import serde
from livesignals.contract import RawMessage, primary_key
from livesignals.errors import Origin
from livesignals.settings import Settings
from models.sentiment import label_from_score
from operators.engine import Engine
from operators.scoring.features import CHURN_FEATURES
from state.memory import InMemoryStore

HOUR = 3_600_000
LABEL_MARKS = (0, 1_000, 5_000, 20_000)


class _Discard:
    def publish(self, records: Any) -> None:
        pass


def simulate(customers: int, events: int, seed: int, step: float) -> tuple[list[RawMessage], dict, dict, dict]:
    """The stream, the churn time per customer, and each text's true sentiment and language.

    ``step`` is simulated time between events: the stream must span several churn
    horizons, or label censoring (negatives only exist a horizon after scoring)
    makes anything that grows with stream time look like churn.
    """
    span = events * step
    sim = Simulator(SimulatorConfig(customers=customers, seed=seed, start_ms=1_767_225_600_000, step_ms=step,
                                    churn_horizon_ms=int(span), warning_ms=30 * 24 * HOUR,
                                    activity_skew=0.6))  # fmt: skip
    churn_at = {c.customer_id: c.churn_at_ms for c in sim.customers}
    texts, raw, docs = {}, [], {}
    for i, (e, truth) in enumerate(sim.stream(events)):
        raw.append(RawMessage(serde.dumps(e), None, Origin("sim", 0, i)))
        docs[e["event_id"]] = primary_key(e["customer"])
        for t in truth:
            if t["kind"] == "text":
                texts[t["event_id"]] = (t["lang"], t["sentiment"])
    return raw, churn_at, texts, docs


def run_engine(raw: list[RawMessage], settings: Settings, texts: dict, docs: dict, batch: int = 500) -> dict:
    store = InMemoryStore(settings.models)
    engine = Engine(settings.replace(policy_clock="stream"), store, _Discard(), clock=lambda: 4e12)
    churn_scores: list[tuple[str, int, float, dict | None]] = []
    sentiment: dict[int, dict[str, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
    started = time.perf_counter()
    for i in range(0, len(raw), batch):
        chunk = raw[i : i + batch]
        labels_before = sum(p.models.model("sentiment").labels for p in store.partitions.values())
        engine.process(chunk)
        if not settings.models_enabled:
            continue
        mark = max(m for m in LABEL_MARKS if labels_before >= m)
        for m in chunk:
            event_id = serde.loads(m.value or b"{}")["event_id"]
            state = store.states.get(docs[event_id])
            if state is None:
                continue
            if event_id in texts:
                entry = next((e for e in state.predictions.get("recent_texts", []) if e[0] == event_id), None)
                if entry:
                    lang, truth = texts[event_id]
                    sentiment[mark][lang].append((truth, label_from_score(entry[4])))
        chunk_start = serde.loads(chunk[0].value or b"{}")["event_time"]
        touched = {docs[serde.loads(m.value or b"{}")["event_id"]] for m in chunk}
        for key in touched:
            state = store.states.get(key)
            if state is None:
                continue
            churn = state.predictions.get("churn")
            if churn and not churn.get("cancelled") and churn["t"] >= chunk_start:
                pending = state.predictions.get("churn_pending") or []
                x = dict(zip(CHURN_FEATURES, pending[-1]["x"], strict=True)) if pending else None
                churn_scores.append((key, churn["t"], churn["p"], x))
    elapsed = time.perf_counter() - started
    return {"events_per_s": len(raw) / elapsed, "churn": churn_scores, "sentiment": sentiment, "store": store}


def churn_auc(scores: list, churn_at: dict, horizon_ms: int, warmup: float = 0.3) -> tuple[float, list, list]:
    from sklearn.metrics import roc_auc_score

    ys, ps, rows = [], [], []
    ordered = sorted(scores, key=lambda s: s[1])
    for key, t, p, x in ordered[int(len(ordered) * warmup) :]:
        cid = key.split(":", 1)[1]
        at = churn_at.get(cid)
        y = at is not None and t < at <= t + horizon_ms
        ys.append(y)
        ps.append(p)
        if x is not None:
            rows.append((x, y, t))
    return float(roc_auc_score(ys, ps)), ys, rows


def batch_ceiling(rows: list) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = sorted(rows, key=lambda r: r[2])
    names = sorted(rows[0][0])
    half = len(rows) // 2
    X = [[r[0][n] for n in names] for r in rows]
    y = [r[1] for r in rows]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X[:half], y[:half])
    return float(roc_auc_score(y[half:], model.predict_proba(X[half:])[:, 1]))


def accuracy_f1(pairs: list[tuple[str, str]]) -> dict[str, float | None]:
    from app.evaluate import _accuracy_f1

    acc, f1 = _accuracy_f1(pairs)
    return {"n": len(pairs), "accuracy": acc, "macro_f1": f1}


def model_costs() -> dict[str, float]:
    from models.churn import ChurnModel
    from models.fraud import FraudModel
    from models.sentiment import SentimentModel

    s, c, f = SentimentModel(warmup=10), ChurnModel(), FraudModel()
    text = "my parcel still has not arrived and nobody answers"
    x = {"complaints_30d": 2.0, "orders_30d": 1.0, "mood": -0.3, "contacts_7d": 3.0, "tenure_days": 40.0}
    for _ in range(300):
        s.learn_one(text, "negative")
        c.learn_one(x, True)
        f.learn_one({"amount": 30.0, "orders_1h": 1.0})

    def fraud_step() -> None:
        f.score_one({"amount": 31.0})
        f.learn_one({"amount": 31.0})

    out = {}
    for name, fn in (
        ("sentiment_score_us", lambda: s.score(text)),
        ("churn_predict_explain_us", lambda: (c.predict_proba_one(x), c.explain_one(x))),
        ("fraud_score_learn_us", fraud_step),
    ):  # fmt: skip
        t = time.perf_counter()
        for _ in range(2000):
            fn()
        out[name] = round((time.perf_counter() - t) / 2000 * 1e6, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--horizon-days", type=float, default=30.0)
    ap.add_argument("--step-ms", type=float, default=60_000.0, help="simulated time between events")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    raw, churn_at, texts, docs = simulate(args.customers, args.events, args.seed, args.step_ms)
    horizon_ms = int(args.horizon_days * 24 * HOUR)
    on = Settings.load(env={}).replace(churn_horizon_days=args.horizon_days)
    with_models = run_engine(raw, on, texts, docs)
    without = run_engine(raw, on.replace(models_enabled=False), texts, docs)

    auc, ys, rows = churn_auc(with_models["churn"], churn_at, horizon_ms)
    result: dict[str, Any] = {
        "events": len(raw),
        "customers": args.customers,
        "churn_online_roc_auc": round(auc, 4),
        "churn_batch_lr_roc_auc_ceiling": round(batch_ceiling(rows), 4) if rows else None,
        "churn_scores_evaluated": len(ys),
        "churn_positive_share": round(sum(ys) / max(1, len(ys)), 4),
        "sentiment": {
            f"after_{mark}_labels" if mark else "lexicon_cold_start": {
                lang: accuracy_f1(pairs) for lang, pairs in sorted(by_lang.items())
            }
            for mark, by_lang in sorted(with_models["sentiment"].items())
        },
        "model_cost": model_costs(),
        "events_per_s_models_on": round(with_models["events_per_s"]),
        "events_per_s_models_off": round(without["events_per_s"]),
    }
    result["models_on_off_ratio"] = round(result["events_per_s_models_on"] / result["events_per_s_models_off"], 2)
    summary = [r for p in with_models["store"].partitions.values() for r in p.models.summary()]
    result["progressive_validation"] = summary
    write_result("models", result)


if __name__ == "__main__":
    main()
