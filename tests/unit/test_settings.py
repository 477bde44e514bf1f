"""Settings: one typed place, env over file over defaults, secrets never shown."""

from __future__ import annotations

import contextlib

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


URL_CASES = [
    # (redis_url, secrets that must not show, what must stay readable)
    ("rediss://user:pw@host:6380/1", ["user", "pw"], "rediss://***@host:6380/1"),
    ("redis://user:pa/ss@db", ["user", "pa/ss", "ss@"], "redis://***@db"),
    ("redis://:hunter2@db:6379/0", ["hunter2"], "redis://***@db:6379/0"),
    ("redis://u:p@ss@db:6379/0", ["p@ss", "ss@db"], "redis://***@db:6379/0"),
    ("redis://u:p@s/s@w@db:6379/0", ["p@s", "s/s", "s@w", "w@db"], "redis://***@db:6379/0"),
    ("redis://db:6379/0?password=hunter2", ["hunter2"], "redis://db:6379/0?password=***"),
    ("redis://db:6379/0?ssl=1&token=abc123&db=2", ["abc123"], "redis://db:6379/0?ssl=1&token=***&db=2"),
    ("redis://admin@db:6379/0", ["admin"], "redis://***@db:6379/0"),
    ("redis://db:6379/0", [], "redis://db:6379/0"),
    # issue #9: whitespace in the password or in a secret parameter
    ("redis://u:SPACE PW@h:1/0", ["SPACE", "PW@"], "redis://***@h:1/0"),
    ("redis://u:TAB\tPW@h:1/0", ["TAB", "PW@"], "redis://***@h:1/0"),
    ("redis://u:NL\nPW@h:1/0", ["NL", "PW@"], "redis://***@h:1/0"),
    ("redis://db:6379/0?password=two words&db=1", ["two", "words"], "redis://db:6379/0?password=***&db=1"),
]


@pytest.mark.parametrize(("url", "secrets", "shown"), URL_CASES)
def test_url_user_info_and_secret_parameters_are_redacted(url, secrets, shown):
    s = Settings.load(env={"LIVESIGNALS_REDIS_URL": url})
    assert s.redacted()["redis_url"] == shown
    for secret in secrets:
        assert secret not in repr(s)
        assert secret not in str(s.redacted())


KAFKA_CASES = [
    ("sasl.password", "s3cret-sasl"),
    ("sasl.username", "alice-user"),
    ("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule password=jaaspw"),
    ("sasl.oauthbearer.client.secret", "oauth-secret"),
    ("sasl.oauthbearer.config", "principal=x token=tok"),
    ("ssl.key.password", "keypw"),
    ("ssl.key.pem", "-----BEGIN PRIVATE KEY-----MIIEvQIBADANBg-----END PRIVATE KEY-----"),
    ("ssl.certificate.pem", "-----BEGIN CERTIFICATE-----MIIC-----END CERTIFICATE-----"),
    ("ssl.keystore.password", "storepw"),
    ("ssl.key", "raw-key-material"),
    ("schema.registry.basic.auth.user.info", "reg-user:reg-pass"),
    ("my.api.token", "tok-123"),
    ("client.secret", "shh"),
    ("api_key", "ak-999"),
]


@pytest.mark.parametrize(("option", "secret"), KAFKA_CASES)
def test_kafka_secret_options_are_redacted(tmp_path, option, secret):
    cfg = tmp_path / "ls.toml"
    cfg.write_text(f'[kafka_config]\n"{option}" = "{secret}"\n"security.protocol" = "SASL_SSL"\n')
    s = Settings.load(cfg, env={})
    assert s.kafka_client_config()[option] == secret, "the client still gets the real value"
    assert secret not in repr(s) and secret not in str(s.redacted())
    assert s.redacted()["kafka_config"]["security.protocol"] == "SASL_SSL", "harmless options stay readable"


def test_urls_in_any_setting_and_in_kafka_options_are_redacted(tmp_path):
    cfg = tmp_path / "ls.toml"
    cfg.write_text(
        'kafka_bootstrap = "SASL_SSL://u:bootpw@broker:9092"\n'
        '[kafka_config]\n"sasl.oauthbearer.token.endpoint.url" = "https://id:urlpw@idp/token"\n'
        '"schema.registry.url" = "https://sr:srpw@registry:8081"\n'
    )
    s = Settings.load(cfg, env={})
    for secret in ("bootpw", "urlpw", "srpw"):
        assert secret not in repr(s)
    assert s.redacted()["key_prefix"] == "ls", "names like key_prefix are not secrets"


@pytest.mark.parametrize(
    ("bootstrap", "shown"),
    [
        ("user:BOOTPW9@broker:9092", "***@broker:9092"),
        ("b1:9092,user:BOOTPW9@b2:9092", "***@b2:9092"),
        ("user:BOOT PW9@broker:9092", "***@broker:9092"),
        ("broker:9092,b2:9092", "broker:9092,b2:9092"),
    ],
)
def test_user_info_without_a_scheme_is_redacted(bootstrap, shown):
    """Issue #9: ``kafka_bootstrap = 'user:pw@broker:9092'`` was printed as is."""
    s = Settings.load(env={"LIVESIGNALS_KAFKA_BOOTSTRAP": bootstrap})
    assert s.redacted()["kafka_bootstrap"] == shown
    assert "BOOTPW9" not in repr(s) and "PW9" not in str(s.redacted())


def test_the_settings_command_and_the_start_up_log_show_only_redacted_values(tmp_path, capsys, caplog, monkeypatch):
    from app.cli import main

    cfg = tmp_path / "ls.toml"
    cfg.write_text(
        'redis_url = "redis://user:pa/ss@127.0.0.1:1/0?password=qp"\n'
        '[kafka_config]\n"ssl.key.pem" = "PRIVATEKEYPEM"\n"sasl.password" = "saslpw"\n'
    )
    assert main(["--config", str(cfg), "settings"]) == 0
    printed = capsys.readouterr().out
    assert "redis_url = 'redis://***@127.0.0.1:1/0?password=***'" in printed
    for secret in ("pa/ss", "qp", "PRIVATEKEYPEM", "saslpw", "user"):
        assert secret not in printed

    import flows.live

    monkeypatch.setenv("LIVESIGNALS_CONFIG", str(cfg))
    with caplog.at_level("INFO", logger="flows.live"), contextlib.suppress(ValueError):
        flows.live.build(serve_metrics=False)  # redis-py itself cannot parse "pa/ss": it raises after the log line
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "flows.live")
    assert "settings:" in logged and "redis://***@127.0.0.1:1/0" in logged
    for secret in ("pa/ss", "qp", "PRIVATEKEYPEM", "saslpw"):
        assert secret not in logged


def test_a_threshold_that_moved_to_the_rules_file_is_named_not_silently_ignored():
    with pytest.raises(ValueError, match=r"rules file.*high_churn_risk"):
        Settings.load(env={"LIVESIGNALS_CHURN_FLAG_THRESHOLD": "0.6"})


def test_secrets_in_nested_toml_tables_are_never_printed(tmp_path):
    """Unquoted dotted keys under [kafka_config] become nested tables: their leaves are still secret."""
    from livesignals.settings import Settings

    path = tmp_path / "k.toml"
    path.write_text(
        '[kafka_config]\nssl.key.pem = """-----BEGIN PRIVATE KEY-----\nPEMSECRET\n-----END PRIVATE KEY-----"""\n'
        'sasl.oauthbearer.config = "clientSecret=OAUTHSECRET"\n"security.protocol" = "SASL_SSL"\n'
    )
    s = Settings.load(path, env={})
    shown = repr(s) + repr(s.redacted())
    assert "PEMSECRET" not in shown and "OAUTHSECRET" not in shown
    assert "SASL_SSL" in shown, "what is not secret is still shown"
