"""What :class:`~operators.profile360.windows.Windows` derives from one tier's buckets, kept until they change.

Issue 16, item 5 (cost that does not grow with history): a customer's window tiers fill as history grows (up
to 12 five-minute, 24 hourly and 30 daily buckets), and every event used to sum them all again, once per
window, for the rules' and churn's window totals. An event changes one bucket (and a roll-up moves one or two
buckets into the next tier), so a :class:`TierMemo` keeps, per tier:

* the sum of every integer cell per metric and how many cells it has (``ints``: exact, so a bucket merged into
  the tier, or rolled out of it, is added or taken away in place) and every value metric's sums in the order a
  scan of the buckets meets them (``floats``: float addition depends on order, so these are gathered again when
  a value cell of the tier changes);
* the lowest and highest bucket index (a window covering them all takes the sums whole).

Sums nobody reads are not kept up: after :data:`MAX_UNREAD` roll-ups without a read they are dropped.

:class:`~operators.profile360.windows.Windows` tells its memos of every change (:meth:`TierMemo.changed`,
:meth:`TierMemo.removed`, :meth:`TierMemo.merging`); a memo only exists once something was derived. The totals
are those of a scan (``tests/unit/test_windows.py``: float sums to the bit, on random streams with
late events, roll-ups and merges).
"""

from __future__ import annotations

from typing import Any

MAX_UNREAD = 2
"""Roll-ups a tier's sums are kept up with in place between two reads of them: beyond, they are dropped and
summed again at the next read (with models off few events read the windows, and keeping sums nobody reads
cost more than it saved: 2.5 % more instructions per event at 100 events per customer)."""


class TierMemo:
    """What was derived from one tier's buckets since they last changed (see the module docstring); None:
    not derived (or no longer valid)."""

    __slots__ = ("floats", "high", "ints", "low", "unread")

    def __init__(self) -> None:
        self.ints: dict[str, list[int]] | None = None
        """metric -> ``[sum of its integer cells, how many]`` (a metric with none is not listed, as in a scan)."""
        self.floats: list[tuple[str, float]] | None = None
        self.low: int | None = None
        self.high: int | None = None
        self.unread = 0
        """Changes kept up in place since the sums were last read (beyond :data:`MAX_UNREAD`, dropped instead)."""

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def changed(self, index: int) -> None:
        """Bucket ``index`` of the tier was folded into (or made)."""
        self.ints = self.floats = None
        if self.low is not None and self.high is not None:
            self.low, self.high = min(self.low, index), max(self.high, index)

    def removed(self, index: int, bucket: dict[str, Any], kinds: dict[str, str]) -> None:
        """Bucket ``index`` (``bucket``) left the tier (rolled up, or dropped): its integer cells are taken
        away from ``ints``."""
        if index == self.low or index == self.high:
            self.low = self.high = None
        ints = self.ints
        if ints is None or self.unread >= MAX_UNREAD:
            self.ints = self.floats = None
            return
        self.unread += 1
        for metric, cell in bucket.items():
            if type(cell) is int:
                held = None if ints is None else ints.get(metric)
                if ints is None or held is None:  # not summed (a sum there always has it): a scan says
                    self.ints = ints = None
                elif held[1] == 1:
                    del ints[metric]
                else:
                    held[0] -= cell
                    held[1] -= 1
            elif kinds.get(metric, "count") == "value":
                self.floats = None

    def merging(self, index: int, source: dict[str, Any], target: dict[str, Any], kinds: dict[str, str]) -> None:
        """Bucket ``source`` is about to be merged into ``target``, the tier's bucket ``index``
        (``windows._merge_bucket``): count cells are added to ``ints`` as the merge adds them."""
        if self.low is not None and self.high is not None:
            self.low, self.high = min(self.low, index), max(self.high, index)
        ints = self.ints
        if ints is None or self.unread >= MAX_UNREAD:
            self.ints = self.floats = None
            return
        self.unread += 1
        for metric, cell in source.items():
            kind = kinds.get(metric, "count")
            if kind == "count":
                before = target.get(metric)
                if ints is not None and type(cell) is int and (before is None or type(before) is int):
                    held = ints.get(metric)
                    if held is None:
                        ints[metric] = [cell, 1]
                    else:
                        held[0] += cell
                        held[1] += before is None  # a cell more unless the target had one
                else:
                    self.ints = ints = None
            else:
                if type(cell) is int:  # an integer cell of another kind: a scan says what it adds
                    self.ints = ints = None
                if kind == "value":
                    self.floats = None

    def sums(
        self, tier_buckets: dict[int, dict[str, Any]], kinds: dict[str, str]
    ) -> tuple[dict[str, list[int]], list[Any]]:
        """``(ints, floats)`` of every bucket of the tier (see the module docstring), derived again if needed."""
        self.unread = 0
        if self.ints is None or self.floats is None:
            ints, floats = scan(tier_buckets, kinds)
            if self.ints is None:
                self.ints = ints
            self.floats = floats
        return self.ints, self.floats

    def bounds(self, tier_buckets: dict[int, dict[str, Any]]) -> tuple[int, int]:
        """The tier's lowest and highest bucket index (it holds one at least)."""
        if self.low is None or self.high is None:
            self.low, self.high = min(tier_buckets), max(tier_buckets)
        return self.low, self.high


def scan(
    tier_buckets: dict[int, dict[str, Any]], kinds: dict[str, str], low: int | None = None, high: int = 0
) -> tuple[dict[str, list[int]], list[tuple[str, float]]]:
    """What a window's totals take from one tier's buckets (those from ``low`` to ``high``; every one when
    ``low`` is None): ``[sum, how many]`` of each metric's integer cells, and each value metric's cell sums in
    scan order."""
    ints: dict[str, list[int]] = {}
    floats: list[tuple[str, float]] = []
    for k, bucket in tier_buckets.items():
        if low is not None and not low <= k <= high:
            continue
        for metric, cell in bucket.items():
            if type(cell) is int:
                held = ints.get(metric)
                if held is None:
                    ints[metric] = [cell, 1]
                else:
                    held[0] += cell
                    held[1] += 1
            elif kinds.get(metric, "count") == "value":
                floats.append((metric, cell[1]))
    return ints, floats
