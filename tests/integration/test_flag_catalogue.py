"""Every flag of the shipped catalogue raised and cleared through real Kafka and Redis.

One engine process reads the scripted journeys (:mod:`tests.flag_journeys`,
one customer per flag) from Kafka, with models that already learned planted
in Redis as their checkpoint; each flag must come out on the flags topic
raised, with its evidence, then cleared, and be gone from the customer's
profile in Redis.
"""

from __future__ import annotations

import time

import pytest

from livesignals import documents, serde
from operators.profile360.profile import CustomerState
from operators.scoring.learner import seed_checkpoint
from state.connection import connect
from state.keys import Keys
from state.models_store import RedisModelLog
from tests.flag_journeys import DAY, extra_evidence, journeys, trained_models
from tests.helpers import consume_all, run_through_kafka

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def outcome(kafka_settings_module):
    """Run every journey once; flag records by customer, and the stored profiles."""
    s = kafka_settings_module
    t0 = int(time.time() * 1000) - 12 * DAY
    scripted = journeys(t0)
    redis, keys = connect(s), Keys(s.key_prefix)
    seed_checkpoint(RedisModelLog(redis, s.key_prefix), trained_models())
    steps = [e for raise_events, clear_events in scripted.values() for e in (*raise_events, *clear_events)]
    run_through_kafka(s, steps)
    records = [serde.loads(m.value()) for m in consume_all(s.kafka_bootstrap, s.flags_topic, 10_000, timeout_s=10)]
    profiles = {
        flag: CustomerState.from_bytes(
            f"customer_id:c-{flag}", documents.read(redis.get(keys.profile(f"customer_id:c-{flag}")))
        )
        for flag in scripted
    }
    return scripted, records, profiles


@pytest.mark.parametrize("flag", sorted(journeys(0)))
def test_each_flag_is_raised_with_evidence_and_cleared_through_kafka_and_redis(outcome, flag):
    scripted, records, profiles = outcome
    mine = [r for r in records if r["customer"] == f"customer_id:c-{flag}" and r["flag"] == flag]
    assert [r["state"] for r in mine] == ["raised", "cleared"], mine
    raise_events, clear_events = scripted[flag]
    raised, cleared = mine
    assert raised["evidence"][0] in {e["event_id"] for e in raise_events}
    if extra_evidence(flag):
        assert any(extra_evidence(flag) in item for item in raised["evidence"][1:]), raised
    assert cleared["raised_at"] >= clear_events[0]["event_time"]
    assert flag not in profiles[flag].flags, "cleared in the profile agents read"
