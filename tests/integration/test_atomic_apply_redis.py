"""Atomic apply and deduplication through the real Redis store, with a restart in between.

The same streams as ``tests/unit/test_atomic_apply.py`` (4 partitions, faults
injected after partial changes), on :class:`state.store.ProfileStore`: what
Redis holds at the end -- profiles, timelines, partition aggregates and model
checkpoints -- equals a run without the bad event (or without the redelivered
duplicate), whether the engine restarted right after the bad batch or not.
"""

from __future__ import annotations

from typing import Any

import pytest

from livesignals.settings import Settings
from operators.engine import Engine
from state.connection import connect
from state.keys import Keys
from state.store import ProfileStore
from tests import faults
from tests.faults import BAD_EVENTS, STAGES, VICTIM_BEFORE, Outputs, appended, bad_batch, batches, stream
from tests.helpers import aggregates, profiles, timelines

pytestmark = pytest.mark.slow


def run_on_redis(settings: Settings, messages, restart_after: int | None = None) -> Outputs:
    """The engine on the real store; after batch ``restart_after``, a new engine and store (empty cache)."""
    settings = settings.replace(quiet_hours="0-0")
    out = Outputs()

    def engine() -> Engine:
        return Engine(settings, ProfileStore(connect(settings), Keys(settings.key_prefix)), out, clock=faults.clock)

    current = engine()
    for i, batch in enumerate(batches(messages)):
        current.process(batch)
        if i == restart_after:
            current = engine()
    return out


def in_redis(settings: Settings, out: Outputs) -> dict[str, Any]:
    """What Redis holds (keys without the run's prefix) and the outputs, dead letters apart."""

    def strip(data: dict[bytes, Any]) -> dict[bytes, Any]:
        return {k[len(settings.key_prefix) :]: v for k, v in data.items()}

    aggs = strip(aggregates(settings))
    role = {settings.flags_topic: "flags", settings.triggers_topic: "triggers", settings.decisions_topic: "decisions"}
    return {
        "profiles": strip(profiles(settings)),
        "timelines": strip(timelines(settings)),
        "aggregates": aggs,
        "models": faults.Models(faults.learned(ProfileStore(connect(settings), Keys(settings.key_prefix)).models_log)),
        "outputs": [(role[r.topic], r.key, r.value) for r in out.records if r.topic in role],
    }


def prefixed(settings: Settings, name: str) -> Settings:
    return settings.replace(key_prefix=f"{settings.key_prefix}{name}")


@pytest.fixture(scope="module")
def reference(redis_url) -> dict[str, Any]:
    from tests.conftest import unique_settings

    settings = unique_settings(redis_url)
    return in_redis(settings, run_on_redis(settings, stream(None)))


@pytest.mark.parametrize("stage", ["after_kpi_and_labels", "after_learn_labels", "after_fraud", "inside_policy"])
def test_a_fault_after_partial_changes_leaves_redis_as_if_the_event_never_was(settings, stage, reference):
    messages = stream(BAD_EVENTS[STAGES[stage][0]])
    for name, restart in (("live", None), ("restart", bad_batch(messages))):
        run_settings = prefixed(settings, name)
        with faults.fault(stage):
            out = run_on_redis(run_settings, messages, restart_after=restart)
        got = in_redis(run_settings, out)
        for part in reference:
            assert got[part] == reference[part], f"{part} differ after a fault {stage} ({name})"


def test_a_duplicate_redelivered_after_a_restart_leaves_redis_as_if_it_never_came(settings):
    redelivered = {**VICTIM_BEFORE[0], "event_time": VICTIM_BEFORE[0]["event_time"] + 1}
    base = stream(None)
    with_duplicate = appended(base, [redelivered])
    without = appended(base, [b"{junk"], like=redelivered)
    restart = len(base) // 50 - 1  # the duplicate comes after a restart, in the last batch
    got = in_redis(prefixed(settings, "dup"), run_on_redis(prefixed(settings, "dup"), with_duplicate, restart))
    ref = in_redis(prefixed(settings, "ref"), run_on_redis(prefixed(settings, "ref"), without))
    for part in ref:
        assert got[part] == ref[part], part
