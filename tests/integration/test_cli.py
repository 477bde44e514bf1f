"""The CLI against real Kafka and Redis: missing topics and customers, topic creation, promotion, export, progress."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient

from app.cli import main
from app.engine_process import engine_env
from app.topics import engine_topics
from operators.engine import Engine
from state.connection import connect
from state.keys import Keys
from state.store import ProfileStore
from tests.flows.test_live_flow import MemoryPublisher
from tests.helpers import T0, event, raw


def _use(monkeypatch, settings) -> None:
    """Hand ``settings`` to ``main`` the way an operator does: ``LIVESIGNALS_*`` variables."""
    for name, value in engine_env(settings).items():
        if name.startswith("LIVESIGNALS_"):
            monkeypatch.setenv(name, value)


def _wait_visible(bootstrap: str, topic: str, partitions: int | None = None) -> None:
    """Apache Kafka's metadata shows a just-created topic a moment later (as in test_routing)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = admin.list_topics(timeout=10).topics.get(topic)
        if found is not None and found.error is None and (partitions is None or len(found.partitions) == partitions):
            return
        time.sleep(0.5)
    raise AssertionError(f"{topic} not visible")


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("livesignals: error: "), err
    return err[0]


@pytest.mark.kafka
@pytest.mark.parametrize("command", ["evaluate-policy", "evaluate"])
def test_replaying_a_topic_that_does_not_exist_is_an_error_not_an_empty_table(
    monkeypatch, capsys, kafka_settings, command
):
    _use(monkeypatch, kafka_settings)
    assert main(["models", command, "--topic", "ls.nope"]) == 1
    assert "topic 'ls.nope' does not exist" in _error(capsys)


def test_an_unknown_customer_is_exit_1_unless_allowed(monkeypatch, capsys, settings):
    _use(monkeypatch, settings)
    assert main(["profile", "c-nobody"]) == 1
    assert "customer_id:c-nobody" in _error(capsys)
    assert main(["profile", "c-nobody", "--allow-missing", "--channel", "phone"]) == 0
    assert json.loads(capsys.readouterr().out)["known"] is False


@pytest.mark.kafka
def test_topics_create_takes_partitions_and_replication(monkeypatch, capsys, settings, kafka_bootstrap):
    s = settings.replace(kafka_bootstrap=kafka_bootstrap)
    _use(monkeypatch, s)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    brokers = len(admin.list_topics(timeout=10).brokers)
    assert main(["topics", "create", "--replication-factor", str(brokers + 1)]) == 1
    assert f"the cluster has {brokers} broker(s)" in _error(capsys)

    assert main(["topics", "create", "--partitions", "6", "--replication-factor", "1"]) == 0
    out = capsys.readouterr().out
    assert f"created {s.input_topics[0]}" in out and "replication factor 1, 6 partitions" in out
    for topic in engine_topics(s):
        _wait_visible(kafka_bootstrap, topic, 6)
    topics = admin.list_topics(timeout=10).topics
    assert len(topics[s.input_topics[0]].partitions) == 6
    assert all(len(p.replicas) == 1 for p in topics[s.input_topics[0]].partitions.values())

    assert main(["topics", "create"]) == 0
    assert "nothing to create" in capsys.readouterr().out


def _engine_with_models(settings, config):
    s = settings.replace(models=config, model_control_poll_s=0.0)
    engine = Engine(s, ProfileStore(connect(s), Keys(s.key_prefix), models_config=config), MemoryPublisher())
    engine.process(raw([event("call", "c1", T0)], "in"))
    return s


def test_promote_refuses_when_there_is_no_challenger(monkeypatch, capsys, settings):
    s = _engine_with_models(settings, {})
    _use(monkeypatch, s)
    assert main(["models", "promote", "churn"]) == 1
    assert "no challenger of churn" in _error(capsys)
    assert not connect(s).hgetall(Keys(s.key_prefix).model_control), "nothing recorded"


def test_promote_refuses_before_any_checkpoint_unless_the_settings_name_a_challenger(monkeypatch, capsys, settings):
    _use(monkeypatch, settings)
    assert main(["models", "promote", "fraud"]) == 1
    assert "no challenger of fraud" in _error(capsys)


def test_export_writes_the_challenger_that_evaluate_policy_scores(monkeypatch, capsys, settings, tmp_path):
    s = _engine_with_models(settings, {"offers": {"challenger": {}}})
    _use(monkeypatch, s)
    out = tmp_path / "challenger.pkl"
    assert main(["models", "export", "--out", str(out)]) == 0
    assert "offers challenger" in capsys.readouterr().out
    log = tmp_path / "decisions.jsonl"
    log.write_text(json.dumps({
        "kind": "decision", "decision_id": "d1", "outcome": "sent", "chosen": "a", "probability": 0.9, "features": {},
        "candidates": [{"action": "a", "score": 2.0, "propensity": 0.2, "value": 10, "weight": 1, "probability": 0.9},
                       {"action": "b", "score": 1.0, "propensity": 0.5, "value": 2, "weight": 1, "probability": 0.1}],
    }) + "\n")  # fmt: skip
    assert main(["models", "evaluate-policy", "--input", str(log), "--policy", f"model:{out}"]) == 0
    assert f"model:{out}" in capsys.readouterr().out

    assert main(["models", "export", "--kind", "churn", "--out", str(tmp_path / "c.pkl")]) == 1
    assert "no challenger of churn" in _error(capsys)


def test_export_before_any_checkpoint_is_one_line(monkeypatch, capsys, settings, tmp_path):
    _use(monkeypatch, settings.replace(key_prefix=f"none{uuid.uuid4().hex[:6]}"))
    assert main(["models", "export", "--out", str(tmp_path / "x.pkl")]) == 1
    assert "no models checkpoint" in _error(capsys)


@pytest.mark.kafka
def test_simulate_reports_progress_on_stderr(monkeypatch, capsys, kafka_settings):
    _use(monkeypatch, kafka_settings)
    _wait_visible(kafka_settings.kafka_bootstrap, kafka_settings.input_topics[0])
    monkeypatch.setattr("app.progress.EVERY_S", 0.0)
    assert main(["simulate", "--count", "300", "--rate", "0", "--customers", "50"]) == 0
    captured = capsys.readouterr()
    assert "produced 300 events" in captured.out
    assert "produced 100/300 events" in captured.err and "produced 300/300 events" in captured.err


@pytest.mark.kafka
def test_run_checks_kafka_redis_and_topics_then_hands_over_to_bytewax(monkeypatch, capsys, kafka_settings):
    _use(monkeypatch, kafka_settings)
    seen: list[list[str]] = []
    monkeypatch.setattr("os.execv", lambda exe, argv: seen.append(argv))
    monkeypatch.delenv("BYTEWAX_WORKERS_PER_PROCESS", raising=False)
    assert main(["run", "-i", "1", "-a", "h0:9999;h1:9999", "--wait", "5"]) == 0
    assert seen[0][-6:] == ["-w", "1", "-i", "1", "-a", "h0:9999;h1:9999"]
    monkeypatch.setenv("BYTEWAX_WORKERS_PER_PROCESS", "3")  # the Helm chart's way: bytewax.run reads it
    assert main(["run", "--wait", "5"]) == 0
    assert seen[1][-1] == "flows.live:build()"

    monkeypatch.setenv("LIVESIGNALS_INPUT_TOPICS", "ls.never-created")
    assert main(["run", "--wait", "1"]) == 1
    assert "ls.never-created" in _error(capsys)


def test_a_damaged_profile_is_exit_1_saying_so_not_a_missing_customer(monkeypatch, capsys, settings, redis_client):
    """Outside review of #16: ``profile`` printed an empty 360 marked ``known`` for a stored profile it could not
    read (with the reader's A4 fix it would have said "no profile in Redis"): it says the profile is damaged."""
    _use(monkeypatch, settings)
    key = Keys(settings.key_prefix).profile("customer_id:c1")
    for bad in (b"{broken", b"", b'{"events": "x"}'):
        redis_client.set(key, bad)
        for extra in ([], ["--allow-missing"]):
            assert main(["profile", "c1", *extra]) == 1
            line = _error(capsys)
            assert "its stored profile cannot be read" in line and "no profile in Redis" not in line, line
