"""Bounded name slots that keep the frequent names, whatever arrives first.

Models keyed by names a producer chooses (offer arms, behaviour features) must
stay bounded, but a first-come cap lets 64 junk names sent first lock the real
ones out forever. :func:`count_in` is the *space-saving* algorithm (Metwally,
Agrawal, El Abbadi 2005) on a plain dict of counts: a name already held is
counted; a new name takes a free slot, or else the slot of the least counted
name (the first such in slot order: deterministic) and that count plus one.
Every name seen more often than ``1 / capacity`` of all sightings keeps its
slot; junk sent once fights over the least counted slots only.

Plain ``dict[str, int]``: pickles, compares and replays identically.

>>> counts = {}
>>> [count_in(counts, [f"junk{i}"], 3) for i in range(3)]
[[], [], []]
>>> count_in(counts, ["real"], 3), counts
(['junk0'], {'junk1': 1, 'junk2': 1, 'real': 2})
>>> count_in(counts, ["real"], 3), count_in(counts, ["junk9"], 3), sorted(counts)
([], ['junk1'], ['junk2', 'junk9', 'real'])
"""

from __future__ import annotations

from collections.abc import Iterable


def count_in(counts: dict[str, int], names: Iterable[str], capacity: int) -> list[str]:
    """Count one sighting of each of ``names`` (distinct) and return the names evicted to make room.

    A name of ``names`` never evicts another of ``names`` (one example's features
    stay together); a name that finds no slot to take is not counted.
    """
    batch = list(names)
    for name in batch:
        if name in counts:
            counts[name] = (counts[name] or 0) + 1  # None: a count from before counts were kept
    evicted: list[str] = []
    protected = set(batch)
    for name in batch:
        if name in counts:
            continue
        if len(counts) < capacity:
            counts[name] = 1
            continue
        victim = min((n for n in counts if n not in protected), key=lambda n: counts[n] or 0, default=None)
        if victim is None:
            continue
        floor = counts.pop(victim) or 0
        counts[name] = floor + 1
        evicted.append(victim)
    return evicted
