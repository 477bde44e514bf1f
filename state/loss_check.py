"""Between batches: does Redis still hold what this engine committed for a partition?

A batch checks this before it computes anything (``ProfileStore.verify``), so a
busy partition notices a Redis that restarted empty at its next batch. An idle
one has no next batch: :func:`lost_since_claim` lets the monitor
(:mod:`flows.state_probe`) ask the same questions every few seconds -- the
partition meta's ``store`` id still the claimed one, its resume offsets not
behind what this engine committed, and on a Redis Cluster every master's
marker and applied watermark (:mod:`state.node_markers`) -- without touching
the engine's own state.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from state.keys import Keys
from state.ownership import Claim, Fenced, StateLost, check


def lost_since_claim(client: Any, keys: Keys, held: Claim, cluster: bool = False) -> StateLost | None:
    """The loss Redis shows for ``held`` (None: it still holds what this engine committed, or another engine
    owns the partition now, which its own batches report as FENCED).

    Safe beside a committing worker: the claim's offsets and watermark floor are copied *before* Redis is read,
    and a commit moves Redis first and the claim after, so a commit in between never reads as a rollback.
    Raises Redis's own errors (unreachable: the caller's ping reports that)."""
    snapshot = dataclasses.replace(
        held,
        offsets=dict(held.offsets),
        applied_floor=dict(held.applied_floor) if held.applied_floor is not None else None,
    )
    row = client.hgetall(keys.partition_meta(held.partition))
    try:
        check(snapshot, row, dict.fromkeys(snapshot.offsets, 0))
        if cluster:
            from state import node_markers

            node_markers.check(client, snapshot)
    except StateLost as lost:
        return lost
    except Fenced:
        return None
    return None
