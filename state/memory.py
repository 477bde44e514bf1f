"""An in-memory state store: the engine without Redis, for offline replay and notebooks.

Same interface as :class:`state.store.ProfileStore`; nothing is persisted.
``livesignals models evaluate`` replays recorded streams through the real
engine on this store, so delayed labels arrive exactly as in production.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from operators.partition import PartitionAggregates
from operators.profile360.profile import CustomerState
from operators.rules.signals import Flag
from operators.scoring.learner import MemoryModelLog

MAX_FLAGS_KEPT = 100_000
"""Flags kept (the newest), like the Redis stream's ``flags_stream_maxlen``."""


class InMemoryStore:
    """Customer states, partition aggregates and flags in dicts (every customer: it is the store)."""

    def __init__(self, models_config: dict[str, Any] | None = None) -> None:
        self.models_config = models_config
        self.states: dict[str, CustomerState] = {}
        self.partitions: dict[tuple[str, int], PartitionAggregates] = {}
        self.flags: deque[Flag] = deque(maxlen=MAX_FLAGS_KEPT)
        self.offsets: dict[tuple[str, int], int] = {}
        self.models_log = MemoryModelLog()

    def load(self, customer_keys: Iterable[str]) -> dict[str, CustomerState]:
        """States of these customers (new ones are created)."""
        out = {}
        for key in customer_keys:
            state = self.states.get(key)
            if state is None:  # as the Redis store makes one: its (empty) document known, not encoded again
                state = self.states[key] = CustomerState.from_bytes(key, None)
            out[key] = state
        return out

    def load_partition(self, topic: str, partition: int) -> PartitionAggregates:
        """A partition's aggregates (new ones when unknown)."""
        part = self.partitions.get((topic, partition))
        if part is None:
            part = self.partitions[(topic, partition)] = PartitionAggregates.from_fields({})
        return part

    def commit(
        self,
        states: Iterable[CustomerState],
        flags: list[Flag],
        offsets: dict[tuple[str, int], int],
        partitions: dict[tuple[str, int], PartitionAggregates] | None = None,
        notify: bool = True,
    ) -> None:
        """Keep the flags and offsets; states and aggregates are already the stored objects (``notify``: see
        :meth:`operators.ports.Store.commit`; nothing here is pushed)."""
        for state in states:
            state.new_timeline = []
            state.new_links = []
        self.flags.extend(flags)
        self.offsets.update(offsets)

    def model_control(self) -> dict[str, str]:
        """No promotions offline."""
        return {}
