"""Online models where the truth is known: churn at month ends against a batch ceiling, and their cost.

Two streams, generated independently of each other:

* ``simulator`` -- the main simulator (:mod:`app.simulator.journeys`), whose
  truth says when each customer churns; month ends are calendar months;
* ``subscription`` -- the subscription-app stream (:mod:`app.simulator.subscription`),
  whose truth lists every renewal and whether it was cancelled; a month end
  is each customer's renewal.

Each stream is replayed through the real engine in memory (``--partitions``
input partitions, one shared learner). At every month end, before the events
of that moment, the bench reads each live customer's features
(``operators.scoring.online.churn_inputs``) and the champion's churn
probability. The label is "cancels within the horizon after the read".
Reads in the first half of the stream's month ends train a batch logistic
regression (scikit-learn, the ceiling: it sees the true labels of the same
features); both are scored by ROC AUC on the second half. The bench also
shows "fewer events in the last 30 days" as a baseline, the shared models'
checkpoint size and time, and the engine's events/s with models on and off.

    python -m bench.models [--stream subscription|simulator|both] [--scale 1.0] [--partitions 1]

scikit-learn is used here only (``pip install scikit-learn``).
"""

from __future__ import annotations

import argparse
import bisect
import pickle
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.evaluate import layout
from app.simulator import Simulator, SimulatorConfig
from app.simulator.subscription import SubscriptionConfig, SubscriptionSimulator
from bench.common import write_result
from livesignals import serde
from livesignals.contract import primary_key
from livesignals.settings import Settings
from operators.engine import Engine
from operators.scoring.online import churn_inputs
from state.memory import InMemoryStore

DAY = 86_400_000


class _Discard:
    def publish(self, records: Any) -> None:
        pass


@dataclass
class Workload:
    """A stream in time order, and the month-end reads to make: ``(time, customer_key, label)``."""

    name: str
    events: list[bytes]
    reads: list[tuple[int, str, bool]]
    times: list[int] = field(default_factory=list)


def subscription_workload(scale: float, seed: int, customers: int = 1500) -> Workload:
    """The subscription app: reads at every renewal, labelled by whether it was cancelled."""
    sim = SubscriptionSimulator(SubscriptionConfig(customers=customers, seed=seed, events_per_day=10.0 * scale))
    events, times, reads = [], [], []
    for e, truth in sim.stream():
        events.append(serde.dumps(e))
        times.append(e["event_time"])
        for t in truth:
            if t["kind"] == "renewal":
                reads.append((t["at"], primary_key({"customer_id": t["customer_id"]}), bool(t["cancelled"])))
    return Workload("subscription", events, reads, times)


def simulator_workload(customers: int, count: int, seed: int, horizon_ms: int) -> Workload:
    """The main simulator over ~9 months: reads on the 1st of each month for customers not yet churned."""
    step = 270 * DAY / count
    sim = Simulator(SimulatorConfig(customers=customers, seed=seed, start_ms=1_767_225_600_000, step_ms=step,
                                    churn_horizon_ms=270 * DAY, warning_ms=30 * DAY, activity_skew=0.6))  # fmt: skip
    churn_at = {primary_key({"customer_id": c.customer_id}): c.churn_at_ms for c in sim.customers}
    events, times = [], []
    for e, _ in sim.stream(count):
        events.append(serde.dumps(e))
        times.append(e["event_time"])
    reads = []
    for month_start in _month_starts(times[0], times[-1]):
        for key, at in churn_at.items():
            if at is None or at > month_start:
                reads.append((month_start, key, at is not None and at <= month_start + horizon_ms))
    return Workload("simulator", events, reads, times)


def _month_starts(first: int, last: int) -> list[int]:
    out: list[int] = []
    d = datetime.fromtimestamp(first / 1000, UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while True:
        d = d.replace(year=d.year + (d.month == 12), month=d.month % 12 + 1)
        t = int(d.timestamp() * 1000)
        if t > last:
            return out
        out.append(t)


def replay(w: Workload, settings: Settings, partitions: int, batch: int = 1000) -> dict[str, Any]:
    """Replay ``w`` through the engine, reading features and the champion's probability at each read."""
    store = InMemoryStore(settings.models)
    engine = Engine(settings.replace(policy_clock="stream"), store, _Discard(), clock=lambda: 4e12)
    messages, _ = layout(w.events, partitions)
    reads = sorted(w.reads)
    read_times = [r[0] for r in reads]
    rows: list[tuple[int, dict[str, float], float, bool]] = []
    next_read, i, started = 0, 0, time.perf_counter()
    while i < len(messages):
        limit = read_times[next_read] if next_read < len(reads) else None
        end = i
        while end < len(messages) and end - i < batch and (limit is None or w.times[end] < limit):
            end += 1
        if end > i:
            engine.process(messages[i:end])
            i = end
        while next_read < len(reads) and (i >= len(messages) or w.times[i] >= read_times[next_read]):
            rows += _read(engine, store, reads[next_read])
            next_read += 1
    elapsed = time.perf_counter() - started
    return {"rows": rows, "events_per_s": len(messages) / elapsed, "engine": engine}


def _read(engine: Engine, store: InMemoryStore, read: tuple[int, str, bool]) -> list[tuple[int, dict, float, bool]]:
    at, key, y = read
    state = store.states.get(key)
    if state is None or (state.predictions.get("churn") or {}).get("cancelled") or not engine.models_enabled:
        return []
    x = churn_inputs(state, at)
    shown = state.predictions.get("churn") or {}
    x["__fresh"] = engine.learner.models.model("churn").predict_proba_one(x)
    x["__warm"] = float(bool(shown.get("warm")))
    return [(at, x, float(shown.get("p", 0.0)), y)]


def compare(rows: list[tuple[int, dict, float, bool]]) -> dict[str, Any]:
    """Online vs batch ROC AUC on the second half of the month ends (batch trained on the first half)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    months = sorted({r[0] for r in rows})
    cut = months[len(months) // 2]
    train = [r for r in rows if r[0] < cut]
    test = [r for r in rows if r[0] >= cut]
    names = sorted({k for r in rows for k in r[1] if not k.startswith("__")})
    matrix = [[r[1].get(n, 0.0) for n in names] for r in rows]
    x_train, x_test = matrix[: len(train)], matrix[len(train) :]
    y_train, y_test = [r[3] for r in train], [r[3] for r in test]
    batch = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0)).fit(x_train, y_train)
    online = roc_auc_score(y_test, [r[2] for r in test])
    ceiling = roc_auc_score(y_test, batch.predict_proba(x_test)[:, 1])
    fresh = roc_auc_score(y_test, [r[1]["__fresh"] for r in test])
    warm = sum(r[1]["__warm"] for r in test) / max(1, len(test))
    fewer = roc_auc_score(y_test, [-r[1].get("events_30d", 0.0) for r in test])
    return {
        "month_ends": len(months), "test_month_ends": len(months) - bisect.bisect_left(months, cut),
        "reads_test": len(test), "positives_test": sum(y_test), "positives_train": sum(y_train),
        "online_roc_auc": round(float(online), 4), "online_fresh_roc_auc": round(float(fresh), 4),
        "trusted_share_test": round(warm, 3), "batch_lr_roc_auc": round(float(ceiling), 4),
        "gap": round(float(ceiling - online), 4), "fewer_events_30d_roc_auc": round(float(fewer), 4),
    }  # fmt: skip


def checkpoint_cost(engine: Engine) -> dict[str, Any]:
    """Bytes and seconds of one checkpoint of the shared models, and each model's pickled size."""
    engine.learner.checkpoint()
    sizes = {kind: len(pickle.dumps(slot.model)) for kind, slot in engine.learner.models.champions.items()}
    return {
        "checkpoint_bytes": engine.learner.last_checkpoint_bytes,
        "checkpoint_ms": round(engine.learner.last_checkpoint_s * 1000, 1),
        "checkpoints_written": engine.learner.checkpoints_written,
        "lessons_learned": engine.learner.state.applied,
        "model_bytes": sizes,
    }


def run(w: Workload, settings: Settings, partitions: int, models_off: bool) -> dict[str, Any]:
    """Every figure for one workload."""
    result = replay(w, settings, partitions)
    out: dict[str, Any] = {"events": len(w.events), "partitions": partitions, **compare(result["rows"])}
    out["churn_labels"] = result["engine"].learner.models.model("churn").summary()
    out["trust_gate_auc"] = out["churn_labels"]["roc_auc"]
    out |= checkpoint_cost(result["engine"])
    out["events_per_s_models_on"] = round(result["events_per_s"])
    if models_off:
        off = replay(w, settings.replace(models_enabled=False), partitions)
        out["events_per_s_models_off"] = round(off["events_per_s"])
    return out


def across(w: Workload, settings: Settings, partitions: list[int], models_off: bool) -> dict[str, Any]:
    """:func:`run` at each partition count, and the spread of the production-visible online AUC."""
    out: dict[str, Any] = {}
    for i, n in enumerate(partitions):
        out[str(n)] = run(w, settings, n, models_off and i == 0)
    aucs = [r["online_roc_auc"] for r in out.values()]
    out["online_roc_auc_spread"] = round(max(aucs) - min(aucs), 4)
    out["worst_gap_to_batch"] = max(r["gap"] for k, r in out.items() if isinstance(r, dict))
    for count, r in out.items():
        if isinstance(r, dict):
            print(f"{w.name} partitions={count}: shown {r['online_roc_auc']} / batch LR {r['batch_lr_roc_auc']}"
                  f" (gap {r['gap']}); online fresh {r['online_fresh_roc_auc']}; trusted {r['trusted_share_test']}"
                  f" (gate AUC {r['trust_gate_auc']}, labels {r['churn_labels']['labels']})",
                  flush=True)  # fmt: skip
    return out


def checkpoint_growth(events: int, seed: int = 7) -> dict[str, Any]:
    """Checkpoint bytes of the shared models as lessons of ``events`` events arrive (no engine: the
    lessons a reference mix would teach -- 5 % labelled texts with ever new words, 10 % churn
    snapshots naming ever new behaviours, 10 % orders for fraud -- so the run is minutes, not hours)."""
    import random

    from models.registry import ModelSet

    rng = random.Random(seed)
    models = ModelSet.from_config()
    marks, out = {events // 100, events // 10, events}, {}
    words = ["great", "late", "refund", "thanks", "broken", "parcel", "خوب", "بد", "καλό", "κακό"]
    for i in range(1, events + 1):
        r = i % 20
        if r == 0:  # a labelled text: never seen words every time (a vocabulary would grow without end)
            text = " ".join([*rng.sample(words, 3), f"w{rng.getrandbits(40):x}", f"w{rng.getrandbits(40):x}"])
            models.teach("sentiment", [models.model("sentiment").lesson(text), rng.choice(("negative", "positive"))])
        elif r in (1, 2):  # a churn snapshot, with a behaviour name never seen before
            x = {"events_30d": rng.random() * 5, "orders_30d": rng.random() * 2, f"b{i}_7d": rng.random()}
            models.teach("churn", [x, rng.random() < 0.05], {"champion": 0.05})
        elif r in (3, 4):  # an order
            models.teach("fraud", [{"amount": rng.lognormvariate(3, 1), "amount_ratio": rng.random() * 2,
                                    "orders_1h": float(rng.randrange(3)), "return_ratio": rng.random(),
                                    "new_identity_1h": 0.0}])  # fmt: skip
        if i in marks:
            out[str(i)] = {"bytes": len(pickle.dumps(models)),
                           **{k: len(pickle.dumps(slot.model)) for k, slot in models.champions.items()}}  # fmt: skip
            print(f"after {i} events: checkpoint {out[str(i)]['bytes']} bytes", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stream", choices=("subscription", "simulator", "both"), default="both")
    ap.add_argument("--scale", type=float, default=1.0, help="subscription events per customer-day x 10")
    ap.add_argument("--customers", type=int, default=5_000, help="simulator customers")
    ap.add_argument("--sub-customers", type=int, default=1_500, help="subscription customers")
    ap.add_argument("--events", type=int, default=300_000, help="simulator events")
    ap.add_argument("--horizon-days", type=float, default=30.0)
    ap.add_argument("--partitions", default="1,12,48", help="comma-separated input partition counts")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--models-off", action="store_true", help="also time the engine with models off")
    ap.add_argument(
        "--checkpoint-growth",
        type=int,
        default=0,
        metavar="EVENTS",
        help="only measure checkpoint bytes as lessons of EVENTS events arrive (e.g. 1000000)",
    )
    args = ap.parse_args()
    if args.checkpoint_growth:
        write_result("models_checkpoint_growth", checkpoint_growth(args.checkpoint_growth, args.seed))
        return
    settings = Settings.load(env={}).replace(churn_horizon_days=args.horizon_days, rules_path="none")
    counts = [int(n) for n in args.partitions.split(",")]
    result: dict[str, Any] = {}
    if args.stream in ("subscription", "both"):
        w = subscription_workload(args.scale, args.seed, args.sub_customers)
        result["subscription"] = across(w, settings, counts, args.models_off)
    if args.stream in ("simulator", "both"):
        w = simulator_workload(args.customers, args.events, args.seed, int(args.horizon_days * DAY))
        result["simulator"] = across(w, settings, counts, args.models_off)
    write_result(f"models_{args.stream}", result)


if __name__ == "__main__":
    main()
