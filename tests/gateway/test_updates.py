"""The engine's updates stream (``{ls:flags}:updates``, state/store.py): a customer's mood change and each new
next-best-action decision are written once, in the commit of the batch that made them, through the real
engine and Redis; nothing is written again by a batch that changed neither, nor after a restart; an
erase scrubs them like the flags stream."""

from __future__ import annotations

from typing import Any

import redis

from livesignals import serde
from livesignals.settings import Settings
from operators.engine import Engine
from state.erasure import export
from state.keys import Keys
from state.store import ProfileStore
from tests.fuzzing import ListPublisher
from tests.helpers import event, raw

T = 1_767_225_600_000
MIN = 60_000


def updates(client: redis.Redis, keys: Keys) -> list[dict]:
    rows: Any = client.xrange(keys.updates_stream)
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in rows]


def engine_for(settings: Settings, client: redis.Redis) -> Engine:
    keys = Keys(settings.key_prefix)
    return Engine(
        settings, ProfileStore(client, keys, cache_size=0), ListPublisher(), clock=lambda: (T + 60 * MIN) / 1000
    )


def test_a_mood_change_and_a_new_decision_are_written_once_and_not_again_after_a_restart(
    settings: Settings, redis_client: redis.Redis
) -> None:
    s = settings.replace(models_enabled=True, quiet_hours="0-0", policy_clock="stream")
    keys = Keys(s.key_prefix)
    engine = engine_for(s, redis_client)
    # three angry chats about billing in one batch: the mood changes, flags are raised, an action decided
    engine.process(raw([event("chat", "c1", T + i * 1000, topic="billing", text="still broken, terrible")
                        for i in range(3)]))  # fmt: skip
    first = updates(redis_client, keys)
    assert sorted(u["kind"] for u in first) == ["mood", "next_best_actions"]  # one of each per batch, the last
    assert all(u["customer"] == "customer_id:c1" for u in first)
    mood = next(serde.loads(u["doc"]) for u in first if u["kind"] == "mood")
    assert mood["mood"]["n"] == 3 and mood["customer"] == "customer_id:c1"

    # a batch without a text and without a decision: nothing new, also from a restarted engine (no cache)
    engine_for(s, redis_client).process(raw([event("web_event", "c1", T + MIN, action="page_view", url="/x")], start=3))
    assert updates(redis_client, keys) == first

    engine_for(s, redis_client).process(raw([event("chat", "c1", T + 2 * MIN, text="thanks, all good now")], start=4))
    after = updates(redis_client, keys)[len(first) :]
    moods = [serde.loads(u["doc"])["mood"] for u in after if u["kind"] == "mood"]
    assert [m["n"] for m in moods] == [4]
    decisions = [serde.loads(u["doc"]) for u in updates(redis_client, keys) if u["kind"] == "next_best_actions"]
    ids = [d["next_best_actions"]["decision_id"] for d in decisions]
    assert ids and len(ids) == len(set(ids))  # one entry per decision, never the same twice


def test_an_erase_scrubs_the_updates_stream_and_an_export_lists_them(
    settings: Settings, redis_client: redis.Redis
) -> None:
    s = settings.replace(models_enabled=True, quiet_hours="0-0", policy_clock="stream")
    keys = Keys(s.key_prefix)
    engine = engine_for(s, redis_client)
    engine.process(raw([event("chat", "c9", T, text="my card was charged twice, awful"),
                        event("chat", "c8", T, text="lovely service")]))  # fmt: skip
    store = ProfileStore(redis_client, keys)
    held = export(redis_client, keys, "customer_id:c9", store.erasures)
    assert held["updates_stream"] and all(u["customer"] == "customer_id:c9" for u in held["updates_stream"])
    engine.process(raw([event("erase", "c9", T + MIN, channel="backoffice", event_id="erase-9", request_id="r9")],
                       start=2))  # fmt: skip
    left = updates(redis_client, keys)
    assert left and {u["customer"] for u in left} == {"customer_id:c8"}
