"""Which consumer group offsets a start-up STATE LOSS may trust as published (:mod:`flows.confirmed`; outside review
of #10, 10h L3): only those this deployment committed, naming the record Kafka's log still holds below them."""

from __future__ import annotations

from typing import Any

from flows.confirmed import confirmed, metadata
from flows.log_reset import fingerprint


class _Msg:
    def __init__(self, topic: str, offset: int, ts: int, key: bytes, value: bytes) -> None:
        self._t, self._o, self._ts, self._k, self._v = topic, offset, ts, key, value

    def topic(self) -> str:
        return self._t

    def offset(self) -> int:
        return self._o

    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return 1, self._ts

    def key(self) -> bytes:
        return self._k

    def value(self) -> bytes:
        return self._v


class _Log:
    """A consumer over a fixed log: topic -> list of (timestamp, key, value) by offset."""

    def __init__(self, records: dict[str, list[tuple[int, bytes, bytes]]]) -> None:
        self.records = records
        self.assigned: list[Any] = []

    def assign(self, partitions: list[Any]) -> None:
        self.assigned = partitions

    def unassign(self) -> None:
        self.assigned = []

    def consume(self, n: int, timeout: float) -> list[_Msg]:
        out = []
        for tp in self.assigned:
            if tp.offset < len(self.records[tp.topic]):
                ts, k, v = self.records[tp.topic][tp.offset]
                out.append(_Msg(tp.topic, tp.offset, ts, k, v))
        return out


LOG = {"in": [(1000 + i, b"k%d" % i, b"v%d" % i) for i in range(10)], "rep": [(5, b"r", b"x")]}


def _meta(prefix: str, topic: str, offset: int) -> str:
    ts, k, v = LOG[topic][offset]
    return metadata(prefix, fingerprint(offset, ts, k, v))


def _check(group: dict[str, tuple[int, str | None]], low: int = 0) -> tuple[dict[str, int], dict[str, str]]:
    return confirmed(_Log(LOG), 0, group, "ls", lambda t, p: (low, len(LOG[t])), timeout_s=0.5)


def test_an_offset_this_deployment_committed_on_this_log_is_confirmed():
    assert _check({"in": (8, _meta("ls", "in", 7)), "rep": (1, _meta("ls", "rep", 0))}) == ({"in": 8, "rep": 1}, {})


def test_nothing_else_is():
    ok, why = _check({"in": (8, None), "rep": (1, _meta("other", "rep", 0))})
    assert ok == {} and why == {"in": "no metadata", "rep": "committed by key_prefix other"}
    other_record = metadata("ls", fingerprint(7, 999, b"k7", b"v7"))  # same offset, written at another time
    assert _check({"in": (8, other_record)}) == ({}, {"in": "record 7 is not the one committed"})
    assert _check({"in": (11, metadata("ls", "10|1|2|3"))}) == ({}, {"in": "record 10 not read"})  # log ends before
    assert _check({"in": (8, _meta("ls", "in", 7))}, low=8) == ({}, {"in": "record 7 is below the log's start 8"})
    assert _check({"in": (0, None), "rep": (-1001, None)}) == ({}, {})  # nothing committed: nothing to say
