"""The partition count a deployment runs with, recorded in Redis: notice when the topics grew.

A customer's owner partition is ``murmur2(key) % partitions``: growing the
topics moves about half the customers to another partition. The engine copes
(a reroute written under the old count is rerouted again to the new owner,
:mod:`operators.routing`), but an operator should know it happened: reroutes
waiting from before the change take a second trip, and a customer's events
written before and after the change may reach its profile out of order.

So every engine start swaps the count it runs with into ``<prefix>:partitions``
(``SET ... GET``: atomic, so of several processes starting together only the
first sees the old value) and the caller logs one WARNING when it changed
(break-test 10h, L1).
"""

from __future__ import annotations

from typing import Any

from state.keys import Keys


def swap_partition_count(client: Any, keys: Keys, count: int) -> int | None:
    """Record ``count`` as the deployment's partition count; the count recorded before, if any."""
    old = client.set(keys.partition_count, str(count), get=True)
    return int(old) if old is not None else None


def change_warning(old: int | None, new: int) -> str | None:
    """The WARNING line for a partition count that changed since the last start (None: unchanged or first).

    >>> change_warning(4, 4) is None, change_warning(None, 8) is None
    (True, True)
    >>> change_warning(4, 8)[:48]
    'PARTITION COUNT CHANGED: 4 -> 8 since the last s'
    """
    if old is None or old == new:
        return None
    return (
        f"PARTITION COUNT CHANGED: {old} -> {new} since the last start; customers' owner partitions move "
        f"(murmur2(key) % {new}): reroutes written under {old} partitions are rerouted again to their new owner "
        f"(livesignals_rerouted_again_total), never applied where read"
    )
