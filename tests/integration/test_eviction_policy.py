"""Redis must not evict the engine's keys (outside review of #10: with ``maxmemory`` and ``allkeys-lru`` the
engine rebuilt 806 times in 3 minutes, and evicted profiles would go unnoticed). Real servers of their own:
each test changes the server's memory settings."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from app import embedded
from app.engine_process import start_engine, stop_process
from app.topics import ensure_topics
from flows import claims
from flows.claims import EXIT_BAD_CONFIG, KafkaClaimer, StateNotRebuildable
from state.connection import connect
from state.eviction import EvictingRedis, check_no_eviction

pytestmark = pytest.mark.kafka


@pytest.fixture
def own_redis():
    with embedded.start_redis(prefer_system=True) as server:
        yield server


def test_any_evicting_policy_with_a_memory_limit_is_refused(own_redis):
    client = redis.Redis(host="127.0.0.1", port=own_redis.port)
    assert check_no_eviction(client, cluster=False)[0].policy == "noeviction"
    client.config_set("maxmemory-policy", "allkeys-lru")
    check_no_eviction(client, cluster=False)  # no limit (maxmemory 0): nothing is ever evicted
    client.config_set("maxmemory", "500mb")
    for policy in ("allkeys-lru", "volatile-lru", "allkeys-lfu", "volatile-ttl", "allkeys-random"):
        client.config_set("maxmemory-policy", policy)
        with pytest.raises(EvictingRedis, match=f"maxmemory-policy {policy}"):
            check_no_eviction(client, cluster=False)
    client.config_set("maxmemory-policy", "noeviction")
    check_no_eviction(client, cluster=False)


def test_with_config_renamed_the_policy_is_read_from_info():
    args = ("--maxmemory", "500mb", "--maxmemory-policy", "allkeys-lru", "--rename-command", "CONFIG", "")
    with embedded.start_redis(prefer_system=True, args=args) as server:
        client = redis.Redis(host="127.0.0.1", port=server.port)
        with pytest.raises(redis.ResponseError):
            client.config_get("maxmemory")
        with pytest.raises(EvictingRedis, match="allkeys-lru"):
            check_no_eviction(client, cluster=False)


def test_an_engine_on_an_evicting_redis_stops_at_start_up_with_the_bad_config_code(
    own_redis, settings, kafka_bootstrap, tmp_path: Path
):
    redis.Redis(host="127.0.0.1", port=own_redis.port).config_set("maxmemory", "500mb")
    redis.Redis(host="127.0.0.1", port=own_redis.port).config_set("maxmemory-policy", "allkeys-lru")
    s = settings.replace(
        kafka_bootstrap=kafka_bootstrap, redis_url=f"redis://{own_redis.address}/0", topic_partitions=4
    )
    ensure_topics(s)
    with open(tmp_path / "engine.log", "wb") as log:
        engine = start_engine(s, log=log)
        try:
            code = engine.wait(60)
        finally:
            stop_process(engine)
    out = (tmp_path / "engine.log").read_text()
    assert code == EXIT_BAD_CONFIG == 2
    assert "CONFIGURATION ERROR" in out and "maxmemory-policy allkeys-lru" in out and "noeviction" in out
    assert "Traceback" not in out


class Exited(Exception):
    """In place of the process exit, so that the test can see it."""


def test_a_running_engine_whose_redis_turns_evicting_stops_at_the_next_check(own_redis, settings, monkeypatch):
    monkeypatch.setattr(claims, "exit_now", lambda code, message: (_ for _ in ()).throw(Exited(code, message)))
    monkeypatch.setattr(claims, "MEMORY_CHECK_EVERY_S", 0.0)
    s = settings.replace(redis_url=f"redis://{own_redis.address}/0")
    claimer = KafkaClaimer(s, s.input_topics)  # start-up check passes: noeviction
    claimer.watch_redis_memory()
    client = connect(s)
    client.config_set("maxmemory", "500mb")
    client.config_set("maxmemory-policy", "volatile-lru")
    with pytest.raises(Exited) as stopped:
        claimer.watch_redis_memory()
    assert stopped.value.args[0] == EXIT_BAD_CONFIG
    claimer.close()


def test_more_state_loss_rebuilds_of_a_partition_than_allowed_stop_instead_of_looping(kafka_settings):
    s = kafka_settings.replace(state_loss_max_rebuilds=3, state_loss_window_s=600)
    claimer = KafkaClaimer(s, s.input_topics)
    try:
        for _ in range(3):
            assert claimer.resolve_loss(0, {s.input_topics[0]: None}, "test: Redis emptied") == {s.input_topics[0]: 0}
        assert claimer.resolve_loss(1, {s.input_topics[0]: None}, "test") == {s.input_topics[0]: 0}, "per partition"
        started = time.monotonic()
        with pytest.raises(StateNotRebuildable, match="lost its state more than 3 times in 600s"):
            claimer.resolve_loss(0, {s.input_topics[0]: None}, "test: Redis emptied")
        assert time.monotonic() - started < 10
    finally:
        claimer.close()
