"""Models resume from their checkpoint: a restarted engine predicts exactly as an uninterrupted one."""

from __future__ import annotations

import time

from app.simulator import Simulator, SimulatorConfig
from livesignals import documents, serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from operators.engine import Engine
from operators.profile360.profile import CustomerState
from state.connection import connect
from state.keys import Keys
from state.store import ProfileStore
from tests.flows.test_live_flow import MemoryPublisher


def stream(n: int) -> list[RawMessage]:
    sim = Simulator(
        SimulatorConfig(customers=400, seed=5, start_ms=int(time.time() * 1000) - 4 * 3_600_000, step_ms=1000)
    )
    return [RawMessage(serde.dumps(e), None, Origin("in", i % 2, i // 2, 0)) for i, (e, _) in enumerate(sim.stream(n))]


def engine(settings) -> Engine:
    keys = Keys(settings.key_prefix)
    return Engine(settings, ProfileStore(connect(settings), keys), MemoryPublisher())


def predictions(settings) -> dict[str, dict]:
    r, out = connect(settings), {}
    for key in r.scan_iter(f"{settings.key_prefix}:{{*}}:profile", count=1000):
        customer = key.decode().split("{", 1)[1].rsplit("}", 1)[0]
        state = CustomerState.from_bytes(customer, documents.read(r.get(key)))
        out[customer] = {k: state.predictions.get(k) for k in ("churn", "fraud", "mood")}
    return out


def test_a_restarted_engine_predicts_like_an_uninterrupted_one(settings):
    messages = stream(12_000)
    first, second = messages[:6_000], messages[6_000:]
    straight = settings.replace(key_prefix=settings.key_prefix + "a", churn_horizon_days=0.02)
    restarted = settings.replace(key_prefix=settings.key_prefix + "b", churn_horizon_days=0.02)

    one = engine(straight)
    for i in range(0, len(messages), 1000):
        one.process(messages[i : i + 1000])

    before = engine(restarted)
    for i in range(0, len(first), 1000):
        before.process(first[i : i + 1000])
    after = engine(restarted)  # a new process: models come from the checkpoints in Redis
    for i in range(0, len(second), 1000):
        after.process(second[i : i + 1000])

    a, b = predictions(straight), predictions(restarted)
    assert a == b
    assert sum(1 for p in a.values() if p["churn"]) > 100 and sum(1 for p in a.values() if p["mood"]) > 50
    summary = {(r["kind"], r["role"]): r for r in after.learner.models.summary()}
    assert summary[("sentiment", "champion")]["labels"] > 0 and summary[("churn", "champion")]["labels"] > 0
