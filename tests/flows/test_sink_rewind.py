"""After a STATE LOSS the sink drops what its partition's source read before the rewind, up to the rewind's
mark, and nothing after it: also when the loss comes during a replay, where the messages read before the
second rewind are below the offsets the sink had seen (they were taken for the replay's start, applied ahead
of it, and the replay's first events were then skipped as already committed)."""

from __future__ import annotations

from flows.engine_sink import _EnginePartition
from flows.rewind import rewind_mark
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.settings import Settings
from state.ownership import Claim, Ownership, StateLost


class _Store:
    def __init__(self) -> None:
        self.lose_at: list[int] = []
        """Offsets at which the next batches find the state lost, in order."""
        self.client = None

    def verify(self, partition: int) -> None:
        pass


class _Engine:
    """Records the offsets it applies; a batch starting at the store's next ``lose_at`` finds the state lost."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = _Store()
        self.applied: list[int] = []

    def process(self, messages, publish=True, reroute=False):
        first = messages[0].origin.offset
        if self.store.lose_at and first == self.store.lose_at[0]:
            self.store.lose_at.pop(0)
            raise StateLost(0, "flushed")
        self.applied += [m.origin.offset for m in messages]

    def forget(self) -> None:
        pass


class _Claimer:
    def commit_offsets(self, offsets, applied=None) -> None:
        pass

    def remember_log(self, partition, messages) -> None:
        pass

    def watch_redis_memory(self) -> None:
        pass

    def resolve_loss(self, partition, offsets, why):
        return {"in": 0}


def _batch(start: int, n: int = 100) -> list[RawMessage]:
    return [RawMessage(b"{}", b"k", Origin("in", 0, o, 0)) for o in range(start, start + n)]


def test_a_loss_during_a_replay_drops_what_was_read_before_its_rewind():
    settings = Settings()
    engine = _Engine(settings)
    ownership = Ownership(lambda p: Claim(p, "1", "s", {"in": None}, replay_from={"in": 0}))
    ownership.claim(0)
    sink = _EnginePartition(engine, settings, ownership, _Claimer())  # type: ignore[arg-type]
    engine.store.lose_at = [1500, 400]
    for start in range(0, 1600, 100):  # the loss at 1500
        sink.write_batch(_batch(start))
    sink.write_batch(_batch(1600))  # read before the rewind: dropped
    sink.write_batch([rewind_mark(0), *_batch(0)])  # the replay
    for start in range(100, 500, 100):  # a second loss at 400
        sink.write_batch(_batch(start))
    sink.write_batch(_batch(500))  # read before the second rewind: below what the sink saw, dropped all the same
    sink.write_batch([rewind_mark(0), *_batch(0)])
    sink.write_batch(_batch(100))
    replay = engine.applied[engine.applied.index(1499) + 1 :]
    assert replay[replay.index(399) + 1 :] == list(range(200)), "after the second loss, the replay from its start"
    assert 1600 not in engine.applied and replay[:400] == list(range(400))
