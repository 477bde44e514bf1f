"""Start-up cost of an engine process (issue #10: kill -9 recovery is a new process's start).

River's import pulls in scipy (seconds of CPU under load): an engine with models off never imports it, and
one with models on imports it in the background warm-up (:func:`flows.live.warm_up`), as it compiles the
event validators, while start-up waits on Redis and Kafka. Run in a fresh interpreter: other tests import River.
"""

from __future__ import annotations

import subprocess
import sys

from livesignals.settings import Settings

_ENGINE_MODELS_OFF = """
import sys
from flows.live import build
from operators.engine import Engine
from livesignals.settings import Settings
from state.store import ProfileStore
from state.keys import Keys

class NoRedis:
    def register_script(self, script):
        return None

s = Settings.load(env={}).replace(models_enabled=False)
Engine(s, ProfileStore(NoRedis(), Keys("x")), publisher=None)
print(sorted(m for m in ("river", "scipy", "numpy") if m in sys.modules))
"""

_WARM_UP = """
import sys
from flows.live import warm_up
from livesignals import contract
from livesignals.settings import Settings

warm_up(Settings.load(env={}).replace(models_enabled={models})).join()
print(contract._validators.cache_info().currsize, "river.preprocessing" in sys.modules)
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return done.stdout.strip()


def test_an_engine_with_models_off_never_imports_river_scipy_or_numpy():
    assert _run(_ENGINE_MODELS_OFF) == "[]"


def test_the_warm_up_compiles_the_validators_and_imports_river_only_with_models_on():
    assert Settings.load(env={}).models_enabled, "models are on by default"
    assert _run(_WARM_UP.replace("{models}", "False")) == "1 False"
    assert _run(_WARM_UP.replace("{models}", "True")) == "1 True"
