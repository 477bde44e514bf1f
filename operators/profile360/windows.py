"""Computed traits over event-time windows (1 h, 24 h, 7 d, 30 d) without rescanning.

Each customer keeps sparse time buckets in three tiers: 5-minute buckets for
the last hour, hourly buckets for the last day, daily buckets for 30 days. An
event goes into the finest tier that still covers its time; when the newest
time moves on, buckets that leave a tier are rolled up into the next coarser
one (and out of the daily tier, dropped). So each event touches one bucket,
and a window sums its own tier plus the finer buckets not yet rolled up. A
bucket holds, per metric, a count (``count`` metrics), ``[n, sum, min, max]``
(``value`` metrics) or a small set (``distinct`` metrics, at most
:data:`MAX_DISTINCT` values per bucket).

**Window definition.** At time ``now``, window ``W`` of a tier with bucket size
``g`` and ``k`` buckets covers the bucket containing ``now`` and the ``k - 1``
before it: event times in ``[(now // g - k + 1) * g, now]``. So "1 h" spans
55-60 minutes, "24 h" 23-24 hours, "7 d"/"30 d" calendar days (UTC) including
today.

**Late and out-of-order events.** An event is added to its own time bucket,
whatever order it arrives in, in the finest tier whose span (measured from
the newest event time seen for this customer) still covers it; one older
than 30 days counts in lifetime totals only. Queries at ``now`` >= the newest
event time are exact: data leaves a tier only once it is outside every window
that tier serves.

>>> w = Windows()
>>> w.add(0, {"events": 1, "spend": 30.0, "channels": "web"})
>>> w.add(60_000, {"events": 1, "spend": 10.0, "channels": "chat"})
>>> w.query("events", "1h", 120_000), w.query("spend", "24h", 120_000), w.query("channels", "7d", 120_000)
(2, (2, 40.0, 10.0, 30.0), 2)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from livesignals import serde
from operators.profile360.window_memo import TierMemo, scan

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

TIERS: dict[str, tuple[int, int]] = {
    "5m": (5 * MINUTE_MS, 12),
    "1h": (HOUR_MS, 24),
    "1d": (DAY_MS, 30),
}
"""Bucket tiers: name -> (bucket size ms, buckets kept)."""
_TIER_LIST = list(TIERS.items())

WINDOWS: dict[str, tuple[str, int]] = {
    "1h": ("5m", 12),
    "24h": ("1h", 24),
    "7d": ("1d", 7),
    "30d": ("1d", 30),
}
"""Windows: name -> (tier, buckets covered)."""

METRICS: dict[str, str] = {
    "events": "count",
    "contacts": "count",
    "orders": "count",
    "spend": "value",
    "errors": "count",
    "complaints": "count",
    "web_sessions": "distinct",
    "channels": "distinct",
    "products_viewed": "distinct",
}
"""Windowed metrics and their kind (``count``, ``value`` or ``distinct``)."""

MAX_DISTINCT = 32
"""Most distinct values kept per bucket (distinct counts saturate beyond it)."""

KEEP_FROM = 4
"""Buckets from which a tier's sums (:meth:`Windows.totals`) are kept as they change rather than summed again at
each call (:mod:`~operators.profile360.window_memo`): a customer's first events make a bucket or two, which a
scan reads for less than the upkeep costs."""


@dataclass
class Windows:
    """Sparse bucketed aggregates of one customer; JSON-serialisable via :attr:`buckets`."""

    buckets: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    """tier -> bucket index -> metric -> aggregate."""
    newest_ms: int = 0
    kinds: dict[str, str] = field(default_factory=lambda: METRICS, repr=False, compare=False)
    """Metric kinds; a metric not listed is a ``count``."""
    max_metrics: int | None = field(default=None, repr=False, compare=False)
    """Most metric names per bucket (new names beyond it are not counted in that bucket)."""
    _totals: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict, repr=False, compare=False)
    """Totals already computed since the last change (rules, features and actions share them)."""
    _memo: dict[str, TierMemo] = field(default_factory=dict, repr=False, compare=False)
    """Per tier (of :data:`KEEP_FROM` buckets or more), the sums :meth:`totals` derived from its buckets, kept up
    to date as they change (:mod:`operators.profile360.window_memo`): an event changes one bucket, so the hourly
    and daily buckets a long history fills are not summed again at every call."""

    def add(self, t_ms: int, values: dict[str, Any]) -> None:
        """Add one event's metric values (count metrics: increment; value: amount;
        distinct: the value) at event time ``t_ms``."""
        if not values:
            return
        self._totals.clear()
        if t_ms > self.newest_ms:
            previous, self.newest_ms = self.newest_ms, t_ms
            self._roll_up(previous)
        for tier, (size, keep) in _TIER_LIST:
            index = t_ms // size
            if index > self.newest_ms // size - keep:
                tier_buckets = self.buckets.get(tier)
                if tier_buckets is None:
                    tier_buckets = self.buckets[tier] = {}
                bucket = tier_buckets.get(index)
                if bucket is None:
                    bucket = tier_buckets[index] = {}
                self._fold_all(bucket, values)
                memo = self._memo.get(tier)
                if memo is not None:
                    memo.changed(index)
                return

    def _fold_all(self, bucket: dict[str, Any], values: dict[str, Any]) -> None:
        cap = self.max_metrics
        for metric, value in values.items():
            current = bucket.get(metric)
            if current is not None:
                kind = type(current)
                if kind is int:  # the count fast path
                    bucket[metric] = current + value
                    continue
                if kind is list and type(value) is str:  # the distinct fast path (a value cell holds numbers)
                    if value not in current and len(current) < MAX_DISTINCT:
                        current.append(value)
                    continue
            elif cap is not None and len(bucket) >= cap:
                continue
            _fold(bucket, metric, self.kinds.get(metric, "count"), value)

    def _roll_up(self, previous_ms: int) -> None:
        """Move buckets that left a tier into the next coarser tier (or drop them)."""
        tiers = _TIER_LIST
        for i, (tier, (size, keep)) in enumerate(tiers):
            if self.newest_ms // size == previous_ms // size:
                break  # this tier has not moved, so no coarser one has (each size divides the next)
            oldest_kept = self.newest_ms // size - keep + 1
            tier_buckets = self.buckets.get(tier)
            if not tier_buckets or min(tier_buckets) >= oldest_kept:
                continue
            memos = self._memo
            for index in [k for k in tier_buckets if k < oldest_kept]:
                bucket = tier_buckets.pop(index)
                memo = memos.get(tier)
                if memo is not None:
                    memo.removed(index, bucket, self.kinds)
                if i + 1 < len(tiers):
                    coarse_tier, (coarse_size, _) = tiers[i + 1]
                    coarse_index = index * size // coarse_size
                    target = self.buckets.setdefault(coarse_tier, {}).setdefault(coarse_index, {})
                    memo = memos.get(coarse_tier)
                    if memo is not None:
                        memo.merging(coarse_index, bucket, target, self.kinds)
                    _merge_bucket(target, bucket, self.kinds)

    def query(self, metric: str, window: str, now_ms: int) -> Any:
        """The metric over ``window`` at ``now_ms``: a count, ``(n, sum, min, max)``, or a
        distinct count."""
        tier, span = WINDOWS[window]
        size = TIERS[tier][0]
        start = (now_ms // size - span + 1) * size
        cells = []
        for name, (tier_size, _) in TIERS.items():
            for k, b in self.buckets.get(name, {}).items():
                if start <= k * tier_size <= now_ms and metric in b:
                    cells.append(b[metric])
            if name == tier:
                break
        return _reduce(self.kinds.get(metric, "count"), cells)

    def recent_distinct(self, metric: str, window: str, now_ms: int) -> list[Any]:
        """The values of a distinct metric within ``window``, most recent bucket first."""
        tier, span = WINDOWS[window]
        start = (now_ms // TIERS[tier][0] - span + 1) * TIERS[tier][0]
        cells = []
        for name, (tier_size, _) in TIERS.items():
            for k, b in self.buckets.get(name, {}).items():
                if start <= k * tier_size <= now_ms and metric in b:
                    cells.append((k * tier_size, b[metric]))
            if name == tier:
                break
        out: list[Any] = []
        for _, values in sorted(cells, key=lambda c: -c[0]):
            out += [v for v in values if v not in out]
        return out

    def totals(self, window: str, now_ms: int) -> dict[str, float]:
        """Every count metric's total and every value metric's sum over ``window``, in one pass
        (distinct metrics are left out: use :meth:`query`). The result is shared: do not change it."""
        memo = self._totals.get((window, now_ms))
        if memo is not None:
            return memo
        tier, span = WINDOWS[window]
        start = (now_ms // TIERS[tier][0] - span + 1) * TIERS[tier][0]
        out: dict[str, float] = {}
        kinds, buckets, memos = self.kinds, self.buckets, self._memo
        for name, (tier_size, _) in _TIER_LIST:
            tier_buckets = buckets.get(name)
            if tier_buckets:
                low, high = -(-start // tier_size), now_ms // tier_size  # start <= k * tier_size <= now_ms
                kept = memos.get(name)
                if kept is None:
                    if len(tier_buckets) < KEEP_FROM:  # a few buckets: scanned, as keeping their sums costs more
                        for k, bucket in tier_buckets.items():
                            if low <= k <= high:
                                for metric, cell in bucket.items():
                                    if type(cell) is int:
                                        out[metric] = out.get(metric, 0) + cell
                                    elif kinds.get(metric, "count") == "value":
                                        out[metric] = out.get(metric, 0.0) + cell[1]
                        if name == tier:
                            break
                        continue
                    kept = memos[name] = TierMemo()
                lowest, highest = kept.bounds(tier_buckets)
                if low <= lowest and highest <= high:  # the whole tier (mostly): its sums as kept
                    ints, floats = kept.sums(tier_buckets, kinds)
                else:
                    ints, floats = scan(tier_buckets, kinds, low, high)
                for metric, (count, _) in ints.items():  # integers: the same sum in any order
                    out[metric] = out.get(metric, 0) + count
                for metric, value in floats:  # floats: added in a scan's order, so the same to the last bit
                    out[metric] = out.get(metric, 0.0) + value
            if name == tier:
                break
        if len(self._totals) >= 16:  # readers may ask at many times between changes
            self._totals.clear()
        self._totals[(window, now_ms)] = out
        return out

    def summary(self, now_ms: int) -> dict[str, dict[str, Any]]:
        """Every metric over every window at ``now_ms`` (what the 360 shows): what :meth:`query` answers for
        each, from one pass over the buckets per window instead of one per metric and window (every 360 read
        asks it; ``tests/unit/test_windows.py`` checks the two agree)."""
        out = {}
        kinds = self.kinds
        for window, (tier, span) in WINDOWS.items():
            size = TIERS[tier][0]
            start = (now_ms // size - span + 1) * size
            cells: dict[str, list[Any]] = {}
            for name, (tier_size, _) in TIERS.items():
                for k, bucket in self.buckets.get(name, {}).items():
                    if start <= k * tier_size <= now_ms:
                        for metric, cell in bucket.items():
                            found = cells.get(metric)
                            if found is None:
                                cells[metric] = [cell]
                            else:
                                found.append(cell)
                if name == tier:
                    break
            out[window] = {m: _reduce(kind, cells.get(m, ())) for m, kind in kinds.items()}
        return out

    def merge(self, other: Windows) -> None:
        """Add another set of buckets into this one (e.g. a linked anonymous profile,
        or another partition's KPI aggregates)."""
        self._totals.clear()
        self._memo.clear()
        for tier, buckets in other.buckets.items():
            mine = self.buckets.setdefault(tier, {})
            for index, bucket in buckets.items():
                _merge_bucket(mine.setdefault(index, {}), bucket, self.kinds)
        if other.newest_ms > self.newest_ms:
            previous, self.newest_ms = self.newest_ms, other.newest_ms
            self._roll_up(previous)

    def to_json(self) -> dict[str, Any]:
        """The persisted form (bucket indexes become JSON object keys, i.e. strings)."""
        return {"b": {tier: {str(k): v for k, v in b.items()} for tier, b in self.buckets.items()}, "n": self.newest_ms}

    def to_json_bytes(self) -> bytes:
        """``serde.dumps(self.to_json())``, the same bytes, in one call (bucket indexes written as JSON strings
        by the encoder, without a copy of the buckets with string keys): what a profile's stored document holds."""
        return serde.dumps_int_keys({"b": self.buckets, "n": self.newest_ms})

    @classmethod
    def from_json(
        cls,
        doc: dict[str, Any] | None,
        kinds: dict[str, str] | None = None,
        max_metrics: int | None = None,
    ) -> Windows:
        """Rebuild from :meth:`to_json` output; a bucket index no event time gives (outside 64 bits: a damaged or
        hand-made document) is a ``ValueError``, so the profile is unreadable rather than failing every commit
        of its customer (break-test 18b, B3: the encoder refuses such keys).

        >>> Windows.from_json({"n": 0, "b": {"1d": {str(2**64): {"events": 1}}}})
        Traceback (most recent call last):
        ValueError: window bucket index out of range: 18446744073709551616
        """
        w = cls(kinds=METRICS if kinds is None else kinds, max_metrics=max_metrics)
        if doc:
            w.buckets = {tier: {_index(k): v for k, v in b.items()} for tier, b in doc["b"].items()}
            w.newest_ms = doc["n"]
        return w


def _index(key: str) -> int:
    """A stored bucket's index, within the 64 bits the encoder writes (any event time's bucket is)."""
    index = int(key)
    if not -(2**63) <= index < 2**63:
        raise ValueError(f"window bucket index out of range: {key}")
    return index


def _merge_bucket(target: dict[str, Any], source: dict[str, Any], kinds: dict[str, str]) -> None:
    for metric, cell in source.items():
        kind = kinds.get(metric, "count")
        if kind == "count":
            target[metric] = target.get(metric, 0) + cell
        elif kind == "distinct":
            for value in cell:
                _fold(target, metric, kind, value)
        elif metric not in target:
            target[metric] = list(cell)
        else:
            t = target[metric]
            target[metric] = [t[0] + cell[0], t[1] + cell[1], min(t[2], cell[2]), max(t[3], cell[3])]


def _reduce(kind: str, cells: Any) -> Any:
    """A window's value of one metric from its buckets' cells: a count, ``(n, sum, min, max)``, or a
    distinct count."""
    if kind == "count":
        return sum(cells)
    if kind == "distinct":
        return len(set().union(*cells)) if cells else 0
    if not cells:
        return (0, 0.0, None, None)
    return (
        sum(c[0] for c in cells),
        sum(c[1] for c in cells),
        min(c[2] for c in cells),
        max(c[3] for c in cells),
    )


def _fold(bucket: dict[str, Any], metric: str, kind: str, value: Any) -> None:
    if kind == "count":
        bucket[metric] = bucket.get(metric, 0) + value
    elif kind == "distinct":
        values = bucket.setdefault(metric, [])
        if value not in values and len(values) < MAX_DISTINCT:
            values.append(value)
    else:
        cell = bucket.get(metric)
        if cell is None:
            bucket[metric] = [1, value, value, value]
        else:
            cell[0] += 1
            cell[1] += value
            cell[2] = min(cell[2], value)
            cell[3] = max(cell[3], value)
