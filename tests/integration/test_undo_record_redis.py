"""The undo record an event takes puts the state back as it was at that moment, through the real Redis store.

:meth:`operators.profile360.profile.CustomerState.undo_record` reuses the
document a state was loaded from or last committed as, or for a later event of
the batch an earlier record's document and the events applied since, instead of
encoding the state again. This checks, on a seeded reference-mix stream over 4 partitions with
erasures of linked customers and churn sweeps mixed in, with a restart (empty
cache) half way, that every record taken, restored the way the engine restores
it on a failure (its document, then the batch's events since applied again),
equals a fresh encoding of the state at that moment -- so a failed event always
goes back to exactly the state it found -- and that many records were not
encoded again.
"""

from __future__ import annotations

import random
import zlib

import pytest

from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import RawMessage, primary_key
from livesignals.errors import Origin
from operators.engine import Engine
from operators.profile360 import profile
from state.connection import connect
from state.keys import Keys
from state.store import ProfileStore

pytestmark = pytest.mark.slow

PARTITIONS = 4
T0 = 1_767_225_600_000  # 2026-01-01


class _Drop:
    def publish(self, records) -> None:
        """Confirm everything (outputs are not what is checked)."""


def _stream(events: int, seed: int = 11) -> list[RawMessage]:
    sim = Simulator(SimulatorConfig(customers=150, seed=seed, start_ms=T0, step_ms=60_000))
    rng = random.Random(seed)
    docs = [doc for doc, _ in sim.stream(events)]
    for i in range(len(docs) // 3, len(docs), len(docs) // 6):  # erase a few customers, with their links
        ids = dict(docs[i]["customer"])
        docs.insert(i + 1, {**docs[i], "event_id": f"erase-{i}", "type": "erase", "channel": "backoffice",
                            "customer": ids, "payload": {"request_id": f"r{rng.randrange(1000)}"}})  # fmt: skip
    offsets = [0] * PARTITIONS
    out = []
    for doc in docs:
        p = zlib.crc32(primary_key(doc["customer"]).encode()) % PARTITIONS
        out.append(RawMessage(serde.dumps(doc), None, Origin("in", p, offsets[p], T0)))
        offsets[p] += 1
    return out


def test_every_undo_record_is_the_state_as_it_was(settings, monkeypatch):
    settings = settings.replace(quiet_hours="0-0")
    taken = {"records": 0, "reused": 0, "replayed": 0, "wrong": 0}
    original = profile.CustomerState.undo_record
    engine: Engine | None = None

    def checked(self: profile.CustomerState, batch: int = -1) -> profile.Undo:
        now = self.to_bytes_fresh()
        reused = self._document is not None
        record = original(self, batch)
        taken["records"] += 1
        taken["reused"] += reused or record.replayed > 0
        taken["replayed"] += record.replayed > 0
        # what the engine does with the record on a failure, done to a copy: it must be the state now
        copy = profile.CustomerState(self.customer_key, new_timeline=list(self.new_timeline),
                                     new_links=list(self.new_links))  # fmt: skip
        assert engine is not None
        engine._restore(copy, record, {})
        taken["wrong"] += copy.to_bytes_fresh() != now or copy.new_timeline != self.new_timeline
        return record

    monkeypatch.setattr(profile.CustomerState, "undo_record", checked)
    messages = _stream(3000)
    erased = 0
    for i in range(0, len(messages), 150):
        if engine is None or i == 1500:  # a restart: states come from Redis again
            engine = Engine(settings, ProfileStore(connect(settings), Keys(settings.key_prefix)), _Drop(),
                            clock=lambda: T0 / 1000 + 86_400 * 30)  # fmt: skip
        erased += len(engine.process(messages[i : i + 150]).erasures)
    print(taken, erased)
    assert taken["records"] >= 2900
    assert taken["wrong"] == 0
    assert erased >= 5
    assert taken["reused"] > taken["records"] // 5  # 150 customers: many have several events per batch
    assert taken["replayed"] > 0
