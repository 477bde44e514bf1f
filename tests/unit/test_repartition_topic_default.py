"""The default repartition topic is one per deployment (issue 10, break-test F2): two key prefixes never
read each other's reroutes unless given one topic on purpose."""

from __future__ import annotations

import pytest

from livesignals.settings import Settings, SettingsError, derived_repartition_topic


def test_the_default_follows_the_key_prefix_and_keeps_ls_repartition_for_the_default_prefix():
    assert Settings().repartition_topic == "ls.repartition", "existing deployments keep their topic"
    blue = Settings(key_prefix="blue")
    assert blue.repartition_topic == "blue.repartition"
    assert blue.replace(key_prefix="green").repartition_topic == "green.repartition"
    assert Settings.load(
        env={"LIVESIGNALS_KEY_PREFIX": "b", "LIVESIGNALS_REPARTITION_TOPIC": ""}
    ).repartition_topic == ("b.repartition")


def test_a_configured_topic_is_kept_whatever_the_prefix():
    s = Settings(key_prefix="blue", repartition_topic="shared.rep")
    assert s.replace(key_prefix="green").repartition_topic == "shared.rep"
    assert Settings(key_prefix="blue").replace(repartition_topic="x").replace(key_prefix="y").repartition_topic == "x"


def test_a_prefix_with_characters_kafka_refuses_still_gives_a_valid_topic():
    assert derived_repartition_topic("tenant:a/b") == "tenant_a_b.repartition"
    assert len(derived_repartition_topic("p" * 400)) == 249
    Settings(key_prefix="tenant:a")  # valid
    with pytest.raises(SettingsError, match="repartition_topic"):
        Settings(repartition_topic="no spaces")
