"""``livesignals models promote``: running engines swap champion and challenger."""

from __future__ import annotations

from app.cli import main
from livesignals import documents, serde
from operators.engine import Engine
from state.connection import connect
from state.keys import Keys
from state.reader import read_models
from state.store import ProfileStore
from tests.flows.test_live_flow import MemoryPublisher
from tests.helpers import T0, event, raw


def test_promotion_by_command_reaches_running_engines(settings, monkeypatch):
    config = {"churn": {"challenger": {"learning_rate": 0.3}}}
    s = settings.replace(models=config, model_control_poll_s=0.0)
    engine = Engine(s, ProfileStore(connect(s), Keys(s.key_prefix), models_config=config), MemoryPublisher())
    engine.process(raw([event("call", "c1", T0)], "in"))
    before = {(r["kind"], r["role"]): r["version"] for r in read_models(connect(s), Keys(s.key_prefix))}

    monkeypatch.setenv("LIVESIGNALS_REDIS_URL", s.redis_url)
    monkeypatch.setenv("LIVESIGNALS_KEY_PREFIX", s.key_prefix)
    assert main(["models", "promote", "churn"]) == 0
    engine.process(raw([event("call", "c1", T0 + 1)], "in", start=1))

    after = {(r["kind"], r["role"]): r["version"] for r in read_models(connect(s), Keys(s.key_prefix))}
    assert after[("churn", "champion")] == before[("churn", "challenger")]
    assert after[("churn", "challenger")] == before[("churn", "champion")]
    assert after[("sentiment", "champion")] == before[("sentiment", "champion")]
    state = serde.loads(documents.decode(connect(s).get(Keys(s.key_prefix).profile("customer_id:c1"))))
    assert state["predictions"]["churn"]["version"] == after[("churn", "champion")]
