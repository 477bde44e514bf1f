"""The owner's sink rebuilds state from reroutes a STATE LOSS replay re-published (``ls.origin.replayed``) and
publishes nothing for them, whatever its own claim knows (break-test 10j, Q1: applied as new above the
repartition topic's confirmed offset, 94 flags and 275 decisions came out again by the wall clock)."""

from __future__ import annotations

from flows.engine_sink import _EnginePartition
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.settings import Settings
from state.ownership import Claim, Ownership
from tests.flows.test_sink_rewind import _Claimer, _Store


class _Engine:
    """Records each ``process`` call: the offsets, and whether it published."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = _Store()
        self.calls: list[tuple[list[tuple[str, int]], bool, bool]] = []

    def process(self, messages, publish=True, reroute=False):
        self.calls.append(([(m.origin.topic, m.origin.offset) for m in messages], publish, reroute))

    def forget(self) -> None:
        pass


def test_reroutes_marked_replayed_are_applied_without_publishing_and_the_rest_as_usual():
    settings = Settings(input_topics=("in",), repartition_topic="rep")
    engine = _Engine(settings)
    ownership = Ownership(lambda p: Claim(p, "1", "s", {"in": 10, "rep": 5}))  # no loss known to this claim
    ownership.claim(0)
    sink = _EnginePartition(engine, settings, ownership, _Claimer())  # type: ignore[arg-type]
    marked = [("ls.origin.replayed", b"1")]
    batch = [
        RawMessage(b"{}", b"k", Origin("in", 0, 10, 0)),
        RawMessage(b"{}", b"k", Origin("rep", 0, 5, 0), marked),
        RawMessage(b"{}", b"k", Origin("rep", 0, 6, 0)),
        RawMessage(b"{}", b"k", Origin("in", 0, 11, 0), marked),  # only the repartition topic's mark counts
    ]
    sink.write_batch(batch)
    assert engine.calls == [
        ([("rep", 5)], False, True),  # state only, judged at stream time; dead letters and reroutes still out
        ([("in", 10), ("rep", 6), ("in", 11)], True, False),
    ]
