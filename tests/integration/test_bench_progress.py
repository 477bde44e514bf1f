"""The benchmarks' progress counter reads offsets where each engine version keeps them."""

from __future__ import annotations

from bench.common import committed
from state.keys import Keys
from state.store import ProfileStore


def test_the_skeleton_layout_counts_what_the_walking_skeleton_committed(settings, redis_client):
    """Review note: ``bench.reference --compare-ref 4359b0b`` timed out at 0 of 20,000 events, because the
    progress counter read today's per-partition meta, which the skeleton (the issue's yardstick) never writes."""
    topic = settings.input_topics[0]
    redis_client.hset(f"{settings.key_prefix}:offsets:{topic}", mapping={"0": 700, "1": 300})
    assert committed(settings, "skeleton") == 1000
    assert committed(settings) == 0, "today's layout is another place"
    assert ProfileStore(redis_client, Keys(settings.key_prefix)).resume_offsets(topic) == {}
