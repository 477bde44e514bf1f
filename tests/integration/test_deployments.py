"""Two deployments (different ``key_prefix``) on the same input topics are noticed (#10: they never fence
each other): through one consumer group the second waits until the first is gone, through another it warns."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.engine_process import start_engine, stop_process
from state import deployments
from tests.helpers import committed, produce, wait_committed


def test_a_deployment_registers_and_sees_another_prefix_on_its_topics(redis_client):
    tag = str(time.time_ns())
    a, b, c = f"a{tag}", f"b{tag}", f"c{tag}"
    try:
        assert deployments.register(redis_client, a, (f"in{tag}",), "g1") == []
        assert deployments.register(redis_client, a, (f"in{tag}",), "g1") == [], "itself is no other deployment"
        assert deployments.register(redis_client, c, (f"other{tag}",), "g1") == [], "other topics: no clash"
        deployments.leave(redis_client, c)
        warnings = deployments.register(redis_client, b, (f"in{tag}", "x"), "g2")
        assert len(warnings) == 1 and repr(a) in warnings[0] and "'g1'" in warnings[0]
        with pytest.raises(deployments.SharedGroup, match=repr(b)):
            deployments.register(redis_client, c, (f"in{tag}",), "g2")
        assert not redis_client.hexists(deployments.KEY, c), "refused: not registered"
        with pytest.raises(deployments.SharedGroup):  # a running engine keeps its entry fresh all the same
            deployments.register(redis_client, c, (f"in{tag}",), "g2", force=True)
        assert redis_client.hexists(deployments.KEY, c)
        deployments.leave(redis_client, c)
        deployments.leave(redis_client, a)
        stale = time.time() - deployments.LIVE_S - 1
        deployments.register(redis_client, b, (f"in{tag}",), "g2", now_s=stale)  # b killed long ago
        assert deployments.register(redis_client, c, (f"in{tag}",), "g2") == [], "b not seen for LIVE_S: stopped"
        deployments.leave(redis_client, c)
        deployments.register(redis_client, b, (f"in{tag}",), "g2")
        deployments.leave(redis_client, b)
        assert deployments.register(redis_client, c, (f"in{tag}",), "g2") == [], "b left"
    finally:
        for prefix in (a, b, c):
            deployments.leave(redis_client, prefix)


@pytest.mark.kafka
@pytest.mark.slow
def test_a_second_key_prefix_on_the_same_topics_waits_on_one_group_and_warns_with_another(
    kafka_settings, redis_client, tmp_path: Path
):
    s = kafka_settings.replace(models_enabled=False)
    produce(s.kafka_bootstrap, s.input_topics[0], [(b"k", b"{}")] * 10)  # dead letters: enough to commit
    first = start_engine(s)
    try:
        wait_committed(s, 10, first, timeout_s=120)
        same_group = s.replace(key_prefix=s.key_prefix + "other", metrics_port=0)
        with open(tmp_path / "same.log", "wb") as log:
            second = start_engine(same_group, log=log)
            try:
                deadline = time.monotonic() + 90
                while b"one consumer group" not in (tmp_path / "same.log").read_bytes():
                    assert time.monotonic() < deadline, "the second deployment says why it waits"
                    time.sleep(0.2)
                time.sleep(3)
                assert second.poll() is None and committed(same_group) == 0, "waits, neither exits nor runs"
                stop_process(first)  # SIGTERM: its entry goes, the second starts
                wait_committed(same_group, 10, second, timeout_s=120)
            finally:
                stop_process(second)
        first = start_engine(s)
        deadline = time.monotonic() + 90
        while not redis_client.hexists(deployments.KEY, s.key_prefix):  # registered again
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.2)
        own_group = same_group.replace(key_prefix=s.key_prefix + "third", consumer_group=s.consumer_group + "third")
        with open(tmp_path / "own.log", "wb") as log:
            third = start_engine(own_group, log=log)
            try:
                wait_committed(own_group, 10, third, timeout_s=120)
            finally:
                stop_process(third)
        assert b"TWO DEPLOYMENTS" in (tmp_path / "own.log").read_bytes()
        assert not redis_client.hexists(deployments.KEY, own_group.key_prefix), "a SIGTERM removed its entry"
        assert redis_client.hexists(deployments.KEY, s.key_prefix)
        assert first.poll() is None
    finally:
        stop_process(first)


def test_two_deployments_on_one_repartition_topic_are_reported_whatever_their_input_topics(redis_client):
    """Break-test F2 of #10: the clash was only looked for on input topics."""
    tag = str(time.time_ns())
    a, b, c = f"a{tag}", f"b{tag}", f"c{tag}"
    try:
        assert deployments.register(redis_client, a, (f"in{tag}",), "g1", repartition=f"rep{tag}") == []
        warnings = deployments.register(redis_client, b, (f"other{tag}",), "g2", repartition=f"rep{tag}")
        assert len(warnings) == 1 and repr(a) in warnings[0] and f"rep{tag}" in warnings[0]
        assert deployments.register(redis_client, c, (f"third{tag}",), "g3", repartition=f"{c}.repartition") == []
        assert deployments.register(redis_client, c, (f"third{tag}",), "g3") == [], "an engine that did not say"
        deployments.leave(redis_client, a)
        assert deployments.register(redis_client, b, (f"other{tag}",), "g2", repartition=f"rep{tag}") == [], "a left"
    finally:
        for prefix in (a, b, c):
            deployments.leave(redis_client, prefix)
