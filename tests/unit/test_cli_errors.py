"""Every failure the outside review met gives one line on stderr and a non-zero exit, never a traceback or a hang.

Kafka and Redis are "unreachable" here because nothing listens on the port: the commands must say so within
their short timeouts (the ``timeout`` of the subprocess runs is a hang guard, not a speed target).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from app.cli import main


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DEAD = _dead_port()
NO_KAFKA = {"LIVESIGNALS_KAFKA_BOOTSTRAP": f"127.0.0.1:{DEAD}"}
NO_REDIS = {"LIVESIGNALS_REDIS_URL": f"redis://:hunter2@127.0.0.1:{DEAD}/0"}


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, captured.err
    assert err[0].startswith("livesignals: error: ") and "Traceback" not in captured.err
    return err[0]


def _run(monkeypatch, capsys, env: dict[str, str], argv: list[str], code: int = 1) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == code
    return _one_line_error(capsys)


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--count", "5"],
        ["topics", "create"],
        ["models", "evaluate-policy", "--topic", "ls.decisions"],
        ["models", "evaluate", "--topic", "ls.interactions"],
        ["run", "--wait", "1"],
        ["erase", "c1", "--wait", "0"],
        ["export", "c1", "--kafka"],
    ],
)
def test_kafka_unreachable_is_one_line_and_exit_1(monkeypatch, capsys, argv, redis_url):
    line = _run(monkeypatch, capsys, {**NO_KAFKA, "LIVESIGNALS_REDIS_URL": redis_url}, argv)
    assert f"Kafka at 127.0.0.1:{DEAD} unreachable" in line


@pytest.mark.parametrize(
    "argv",
    [["kpis"], ["voc"], ["profile", "c1"], ["models", "status"], ["models", "promote", "churn"],
     ["models", "export", "--out", "x.pkl"], ["erase", "c1"], ["export", "c1"]],
)  # fmt: skip
def test_redis_unreachable_is_one_line_and_exit_1_with_the_password_hidden(monkeypatch, capsys, argv):
    line = _run(monkeypatch, capsys, NO_REDIS, argv)
    assert "Redis at redis://***@127.0.0.1" in line and "hunter2" not in line


def test_simulate_with_kafka_down_ends_with_an_error_in_a_real_process():
    """The review's ``simulate --count 5`` hung: now it ends, one line, exit 1."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LIVESIGNALS_")}, **NO_KAFKA}
    done = subprocess.run([sys.executable, "-m", "app.cli", "simulate", "--count", "5"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"livesignals: error: Kafka at 127.0.0.1:{DEAD} unreachable within 5 s: Local: Broker transport failure"
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["profile", "c1", "--channel", "carrier-pigeon"],
        ["simulate", "--count", "0"],
        ["simulate", "--rate", "-5"],
        ["topics", "create", "--replication-factor", "0"],
        ["topics", "create", "--partitions", "many"],
        ["topics", "delete"],
        ["models", "promote", "horoscope"],
        ["models", "evaluate-policy"],
        ["run", "--workers", "0"],
    ],
)
def test_bad_options_are_refused_with_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    _one_line_error(capsys)  # one line, not a usage block (outside review of #13)


@pytest.mark.parametrize("command", [["settings"], ["kpis"], ["simulate", "--count", "5"], ["topics", "create"],
                                     ["models", "status"], ["run"]])  # fmt: skip
def test_bad_settings_stop_every_command_with_exit_2(monkeypatch, capsys, command):
    monkeypatch.setattr("os.execv", lambda *a: pytest.fail("the engine must not start"))
    line = _run(monkeypatch, capsys, {"LIVESIGNALS_BATCH_SIZE": "abc"}, command, code=2)
    assert "batch_size" in line


def test_a_missing_input_file_is_one_line(capsys, tmp_path):
    assert main(["models", "evaluate-policy", "--input", str(tmp_path / "nope.jsonl")]) == 1
    assert "nope.jsonl" in _one_line_error(capsys)


DECISIONS = (
    b'{"kind": "decision", "decision_id": "d1", "outcome": "sent", "chosen": "a", "probability": 0.9, '
    b'"candidates": [{"action": "a", "score": 2.0, "propensity": 0.2, "value": 10, "weight": 1, "probability": 0.9}], '
    b'"features": {}}\n'
)


@pytest.mark.parametrize("junk", [b"not a pickle at all", b"\x80\x04K\x01.", b""])
def test_a_junk_model_file_is_one_line_not_an_unpickling_traceback(capsys, tmp_path, junk):
    log, model = tmp_path / "decisions.jsonl", tmp_path / "challenger.pkl"
    log.write_bytes(DECISIONS)
    model.write_bytes(junk)
    assert main(["models", "evaluate-policy", "--input", str(log), "--policy", f"model:{model}"]) == 1
    line = _one_line_error(capsys)
    assert f"model:{model}" in line and "UnpicklingError" not in line.split(":")[0]


def test_an_unknown_policy_is_one_line(capsys, tmp_path):
    log = tmp_path / "decisions.jsonl"
    log.write_bytes(DECISIONS)
    assert main(["models", "evaluate-policy", "--input", str(log), "--policy", "clairvoyant"]) == 1
    assert "clairvoyant" in _one_line_error(capsys)


def test_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("LIVESIGNALS_BATCH_SIZE", "abc")
    from livesignals.settings import SettingsError

    with pytest.raises(SettingsError):
        main(["--debug", "settings"])


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("app.commands.run_command", interrupted)
    assert main(["settings"]) == 130
    assert capsys.readouterr().err == "livesignals: interrupted\n"
