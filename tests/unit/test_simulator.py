"""The simulator: deterministic, valid, realistic mix, truth kept beside the stream."""

from __future__ import annotations

import pickle
from collections import Counter

from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import decode
from livesignals.errors import Origin


def test_same_seed_same_stream_and_other_seed_other_stream():
    def run(seed):
        return [serde.dumps(e) for e, _ in Simulator(SimulatorConfig(customers=200, seed=seed)).stream(500)]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_pickled_simulator_continues_identically():
    sim = Simulator(SimulatorConfig(customers=100, seed=3))
    list(sim.stream(100))
    copy = pickle.loads(pickle.dumps(sim))
    assert [e for e, _ in sim.stream(50)] == [e for e, _ in copy.stream(50)]


def test_every_event_honours_the_contract_and_the_mix_is_the_reference_one():
    sim = Simulator(SimulatorConfig(customers=500, seed=4))
    kinds: Counter[str] = Counter()
    for i, (e, _) in enumerate(sim.stream(20_000)):
        decode(serde.dumps(e), Origin("in", 0, i), now_ms=e["event_time"])
        t = e["type"]
        kinds[
            "digital"
            if t in ("web_event", "app_event")
            else "order"
            if t == "order"
            else "text"
            if t in ("call", "chat", "email", "sms", "social")
            else "survey"
            if t == "survey"
            else "rest"
        ] += 1
    share = {k: v / 20_000 for k, v in kinds.items()}
    assert abs(share["digital"] - 0.70) < 0.02 and abs(share["order"] - 0.10) < 0.01
    assert abs(share["text"] - 0.10) < 0.01 and abs(share["survey"] - 0.05) < 0.01


def test_truth_is_beside_the_stream_never_inside_events():
    sim = Simulator(SimulatorConfig(customers=300, seed=5, step_ms=2000, churn_horizon_ms=3_600_000))
    truth_kinds: Counter[str] = Counter()
    languages = set()
    for e, truth in sim.stream(5000):
        assert "sentiment" not in serde.dumps(e["payload"]).decode()
        assert "churn" not in e["customer"]
        for t in truth:
            truth_kinds[t["kind"]] += 1
            if t["kind"] == "text":
                languages.add(t["lang"])
    assert truth_kinds["text"] > 0 and truth_kinds["churn"] > 0 and truth_kinds["offer"] > 0
    assert {"en", "fa"} <= languages
    assert len(list(sim.customer_truth())) == 300


def test_churners_cancel_and_then_go_quiet():
    sim = Simulator(SimulatorConfig(customers=200, seed=6, step_ms=2000, churn_horizon_ms=3_600_000))
    cancelled_at: dict[str, int] = {}
    for e, _ in sim.stream(5000):
        cid = e["customer"].get("customer_id")
        assert cid not in cancelled_at, "a churned customer must not act again"
        if e["type"] == "cancellation":
            cancelled_at[cid] = e["event_time"]
    assert cancelled_at
