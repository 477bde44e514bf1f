"""Settings: one typed place, env over file over defaults, secrets never shown."""

from __future__ import annotations

import pytest

from livesignals.settings import Settings


def test_env_overrides_file_overrides_defaults(tmp_path):
    cfg = tmp_path / "ls.toml"
    cfg.write_text(
        'batch_size = 10\ninput_topics = ["a", "b"]\nredis_mode = "per_event"\n'
        '[kafka_config]\n"sasl.password" = "s3cret"\n"security.protocol" = "SASL_SSL"\n'
    )
    s = Settings.load(cfg, env={"LIVESIGNALS_BATCH_SIZE": "20"})
    assert (s.batch_size, s.input_topics, s.redis_mode) == (20, ("a", "b"), "per_event")
    assert s.kafka_client_config()["sasl.password"] == "s3cret"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.redacted())


def test_typed_parsing_rejects_bad_values():
    with pytest.raises(ValueError, match="REDIS_MODE"):
        Settings.load(env={"LIVESIGNALS_REDIS_MODE": "sometimes"})
    with pytest.raises(ValueError, match="not a boolean"):
        Settings.load(env={"LIVESIGNALS_REDIS_CLUSTER": "perhaps"})


def test_unknown_settings_in_the_file_are_an_error(tmp_path):
    cfg = tmp_path / "ls.toml"
    cfg.write_text("batch_sise = 10\n")
    with pytest.raises(ValueError, match="batch_sise"):
        Settings.load(cfg, env={})


def test_redis_password_is_redacted():
    s = Settings.load(env={"LIVESIGNALS_REDIS_URL": "rediss://user:pw@host:6380/1"})
    assert s.redacted()["redis_url"] == "rediss://user:***@host:6380/1"


def test_a_threshold_that_moved_to_the_rules_file_is_named_not_silently_ignored():
    with pytest.raises(ValueError, match=r"rules file.*high_churn_risk"):
        Settings.load(env={"LIVESIGNALS_CHURN_FLAG_THRESHOLD": "0.6"})
