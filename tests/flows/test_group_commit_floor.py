"""A STATE LOSS replay never moves the consumer group's offsets back (break-test 10i, P2).

The replay after a loss commits to the group batch by batch from offset 0: the group went back from 2,515 to
2,000, so after a kill -9 during the replay Redis and the group agreed, the restart saw no loss, and the rest
of the replay published again by the wall clock (353 decisions re-sent as ``stale``, caps broken). Commits
below what the process committed before, or found confirmed by Kafka's log at a loss, are not sent: the group
keeps the old offsets and their metadata, so the restart finds Redis behind them and replays without
publishing."""

from __future__ import annotations

import threading
from typing import Any

from flows.claims import KafkaClaimer
from livesignals.settings import Settings


class _Consumer:
    def __init__(self) -> None:
        self.commits: list[dict[tuple[str, int], int]] = []

    def commit(self, offsets: Any, asynchronous: bool) -> None:
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})

    def poll(self, timeout: float) -> None:
        return None


def _claimer() -> tuple[KafkaClaimer, _Consumer]:
    claimer = object.__new__(KafkaClaimer)  # the commit path alone: no Redis, no Kafka
    consumer = _Consumer()
    claimer.settings = Settings.load(env={})
    claimer._lock = threading.Lock()
    claimer._applied, claimer._committed_here, claimer._floor = {}, set(), {}
    claimer._consumer = consumer  # type: ignore[assignment]
    return claimer, consumer


def test_a_replay_after_a_loss_commits_nothing_below_what_was_committed_before():
    claimer, consumer = _claimer()
    claimer.commit_offsets({("in", 0): 2515, ("rep", 0): 300})
    claimer.commit_offsets({("in", 0): 1000, ("rep", 0): 120})  # the replay from 0, its first batch: not sent
    claimer.commit_offsets({("in", 0): 2000, ("rep", 0): 310})  # the repartition topic passed its old offset
    claimer.commit_offsets({("in", 0): 2600})  # past the old offset: sent again
    assert consumer.commits == [{("in", 0): 2515, ("rep", 0): 300}, {("rep", 0): 310}, {("in", 0): 2600}]


def test_offsets_confirmed_at_a_loss_found_at_start_up_are_a_floor_too():
    claimer, consumer = _claimer()
    claimer._floor[("in", 1)] = 4000  # as _confirm_published records the group's confirmed offsets
    claimer.commit_offsets({("in", 1): 50})
    claimer.commit_offsets({("in", 1): 4000}, asynchronous=False)
    assert consumer.commits == [{("in", 1): 4000}]
