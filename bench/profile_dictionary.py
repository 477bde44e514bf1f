"""Train the zstd dictionaries the stored profiles and timeline entries are compressed with
(:mod:`livesignals.documents`).

Feeds the simulator's reference mix (:func:`bench.apply.messages`, a fixed seed and a fixed clock)
through the engine in memory and takes each customer's profile document at several points of its
history (after 10 %, 25 %, 50 % and all of the stream), so the dictionary knows new customers' short
documents and heavy customers' long ones. Deterministic: the same arguments give the same bytes
(``tests/unit/test_documents.py``), and zstd names a dictionary by a hash of its content.

    python -m bench.profile_dictionary [--customers 3000] [--events 60000] [--size 32768] [--out DIR]
    python -m bench.profile_dictionary --kind timeline --size 16384

writes ``DIR/<kind>-<dict id>.zdict`` (``livesignals/dictionaries`` by default) and prints its id and
size. ``--kind timeline`` trains on the timeline entries the same stream writes (every one of them). A
new dictionary is added beside the old ones, never instead of them (stored documents name theirs);
:data:`livesignals.documents.CURRENT_DICTIONARY` (``CURRENT_TIMELINE_DICTIONARY``) says which one new
documents use.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from bench.apply import messages
from livesignals import documents
from livesignals.settings import Settings
from operators.engine import Engine
from state.memory import InMemoryStore

NOW_MS = 1_767_225_600_000
"""The fixed present the training stream leads up to (2026-01-01 UTC): the same documents every run."""

POINTS = (0.1, 0.25, 0.5, 1.0)
"""Shares of the stream after which every customer's document is taken."""


class _Drop:
    def publish(self, records):  # outputs are not what the dictionary is made of
        pass


class _Entries(InMemoryStore):
    """An in-memory store that keeps every timeline entry committed, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[bytes] = []

    def commit(self, states, flags, offsets, partitions=None, notify=True):
        states = list(states)
        self.entries += [member for s in states for _, member in s.new_timeline]
        super().commit(states, flags, offsets, partitions, notify)


def _run(customers: int, events: int, seed: int, batch: int, kind: str) -> list[bytes]:
    msgs = messages(events, customers, seed=seed, now_ms=NOW_MS)
    settings = Settings.load(env={}).replace(metrics_port=0, policy_clock="stream")
    store = _Entries()
    engine = Engine(settings, store, _Drop(), clock=lambda: NOW_MS / 1000 + 60)
    out: list[bytes] = []
    cuts = [int(len(msgs) * p) for p in POINTS]
    done = 0
    for cut in cuts:
        for i in range(done, cut, batch):
            engine.process(msgs[i : min(i + batch, cut)])
        done = cut
        if kind == "profile":
            out += [store.states[key].to_bytes_fresh() for key in sorted(store.states)]
    return out if kind == "profile" else store.entries


def sample_documents(customers: int, events: int, seed: int = 7, batch: int = 500) -> list[bytes]:
    """Profile documents of the simulated stream, at each of :data:`POINTS` (plain JSON, in a fixed order)."""
    return _run(customers, events, seed, batch, "profile")


def sample_entries(customers: int, events: int, seed: int = 7, batch: int = 500) -> list[bytes]:
    """Every timeline entry the simulated stream writes (plain JSON, in the order written)."""
    return _run(customers, events, seed, batch, "timeline")


def train(samples: list[bytes], size: int, seed: int = 7) -> bytes:
    """A zstd dictionary of at most ``size`` bytes from ``samples`` (shuffled with ``seed``: deterministic)."""
    picked = list(samples)
    random.Random(seed).shuffle(picked)
    return documents.zstd.train_dict(picked, size).dict_content


def main() -> None:
    """Train, write and describe the dictionary."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--size", type=int, default=32_768, help="dictionary size in bytes (at most)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--kind", choices=("profile", "timeline"), default="profile")
    ap.add_argument("--out", type=Path, default=Path(documents.__file__).parent / "dictionaries")
    args = ap.parse_args()
    sample = sample_documents if args.kind == "profile" else sample_entries
    samples = sample(args.customers, args.events, seed=args.seed)
    content = train(samples, args.size, seed=args.seed)
    dict_id = documents.zstd.ZstdDict(content).dict_id
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.kind}-{dict_id}.zdict"
    path.write_bytes(content)
    print(f"{path}: dictionary {dict_id}, {len(content)} bytes, from {len(samples)} documents")


if __name__ == "__main__":
    main()
