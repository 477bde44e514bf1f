"""The engine process's collector settings (:mod:`flows.heap`): applied by the live flow's start-up once a
worker's engine is built. Each check runs in a fresh interpreter: the collector's state is process-global."""

from __future__ import annotations

import subprocess
import sys

from flows.heap import YOUNG_THRESHOLD

_SETTLE = """
import gc, weakref
from flows.heap import settle_heap

class Node:
    pass

before = gc.get_threshold()
garbage = Node(); garbage.me = garbage; gone = weakref.ref(garbage); del garbage  # a cycle: only gc frees it
frozen = settle_heap()
left = len(gc.get_objects())  # tracked objects a collection would still scan
kept = [Node() for _ in range(1000)]
again = settle_heap()
print(before, gc.get_threshold(), frozen > 1000 and left < 100, again >= frozen + 1000, gone() is None, sep="|")
"""

_LIVE_START = """
import gc, logging, sys, threading
logging.basicConfig(level="INFO", stream=sys.stdout, format="%(message)s")
import flows.live as live
from bench.apply import _Drop
from livesignals.settings import Settings
from operators.engine import Engine
from state.memory import InMemoryStore
from state.ownership import Ownership

live.default_engine = lambda s, ownership=None: Engine(s, InMemoryStore(), _Drop())  # no Redis, no Kafka here
warm = threading.Thread(target=lambda: None)
warm.start()
checks = {"rules_loaded": None}
before = (gc.get_threshold()[0], gc.get_freeze_count())
engine = live.build_engine(Settings.load(env={}).replace(models_enabled=False), warm, Ownership(), checks)
print(before, gc.get_threshold()[0], gc.get_freeze_count() > 10_000, checks["rules_loaded"])
"""

_BENCH = """
import gc
from bench import apply
msgs = apply.messages(50, 10)
apply.run(msgs, 25, models=False, tune_gc=False)
print(gc.get_threshold()[0], gc.get_freeze_count(), end=" ")
apply.run(msgs, 25, models=False)
print(gc.get_threshold()[0], gc.get_freeze_count() > 0)
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return done.stdout.strip()


def test_settling_the_heap_frees_start_up_garbage_freezes_the_rest_and_raises_the_young_threshold():
    before, after, frozen, again, freed = _run(_SETTLE).split("|")
    assert before == "(700, 10, 10)"
    assert after == f"({YOUNG_THRESHOLD}, 10, 10)", "older generations keep Python's ratios"
    assert (frozen, again, freed) == ("True", "True", "True"), (
        "frozen; a second call freezes newer objects; cycles freed"
    )


def test_the_live_flows_start_up_settles_the_heap_once_the_engine_is_built_and_logs_it():
    logged, printed = _run(_LIVE_START).splitlines()[-2:]
    assert printed == f"(700, 0) {YOUNG_THRESHOLD} True True"
    assert logged.startswith("heap settled: ") and " objects frozen, gc thresholds (10000, 10, 10)" in logged


def test_bench_apply_settles_the_heap_as_the_live_flow_does_unless_told_to_keep_pythons_defaults():
    assert _run(_BENCH) == f"700 0 {YOUNG_THRESHOLD} True"
