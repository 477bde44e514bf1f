"""Redis Cluster: notice a master that lost its data even when it held only profiles.

The partition's meta hash (``store`` id, resume offsets) lives on one master,
so a master that restarts empty but held only customers' profiles used to go
unnoticed: those customers restarted from empty profiles. So every master gets
a marker: ``ls:{node:<i>}:store``, a random id set once, with ``<i>`` chosen so
that the key's slot is served by that master. Each partition's meta records the
markers it saw at its claim (fields ``node:<key>``). Before each batch the
engine reads the markers again (:func:`check`): one gone or changed means a
master lost its data, and since the lost profiles may hold any of the
partition's events, the partition is replayed **from the earliest offset**
Kafka holds (``StateLost.from_start``): profiles' applied offsets and the
aggregates' ``applied`` make the replay apply and count each event once. A
claim (start-up, or the re-claim after a loss) compares the recorded markers
with the masters' (:func:`settle`), so a loss while the engine was down is seen
too. A master that *rolled back* keeps its marker: its applied watermark tells
(:mod:`state.watermarks`).
"""

from __future__ import annotations

import uuid
from typing import Any

from livesignals import metrics
from state import watermarks
from state.keys import Keys
from state.ownership import Claim, StateLost

_MAX_INDEX = 100_000


def marker_keys(client: Any, keys: Keys) -> list[str]:
    """One marker key per master of the cluster (the lowest index whose slot that master serves)."""
    wanted = {node.name for node in client.get_primaries()}
    found: dict[str, str] = {}
    for index in range(_MAX_INDEX):
        key = keys.node_marker(index)
        name = client.get_node_from_key(key).name
        if name in wanted and name not in found:
            found[name] = key
            if len(found) == len(wanted):
                break
    return sorted(found.values())


def _read(client: Any, names: list[str]) -> dict[str, str | None]:
    pipe = client.pipeline(transaction=False)
    for key in names:
        pipe.get(key)
    return {k: None if v is None else _text(v) for k, v in zip(names, pipe.execute(), strict=True)}


def settle(
    client: Any, keys: Keys, partition: int, meta: dict[str, str], current: list[str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """At a claim: make sure every master has its marker, record them in the partition's meta, and return
    them with the recorded markers that are gone or changed (masters that lost their data since).
    ``current``: the masters' marker keys if the caller already has them (:func:`marker_keys`)."""
    current = marker_keys(client, keys) if current is None else current
    pipe = client.pipeline(transaction=False)
    for key in current:
        pipe.set(key, uuid.uuid4().hex, nx=True)
    pipe.execute()
    recorded = {name[len("node:") :]: value for name, value in meta.items() if name.startswith("node:")}
    now = _read(client, sorted(set(current) | set(recorded)))
    lost = sorted(k for k, v in recorded.items() if now.get(k) != v)
    nodes = {k: v for k, v in now.items() if k in current and v is not None}
    name = keys.partition_meta(partition)
    gone = [f"node:{k}" for k in recorded if k not in nodes]
    if gone:
        client.hdel(name, *gone)
    if nodes:
        client.hset(name, mapping={f"node:{k}": v for k, v in nodes.items()})
    return nodes, lost


def check(client: Any, held: Claim) -> None:
    """Raise :class:`~state.ownership.StateLost` (``from_start``) if a master's marker is gone or changed, or
    (``from_start`` False) if its applied watermark is below what the partition committed: it rolled back
    (:mod:`state.watermarks`). One pipelined read per master."""
    if not held.nodes:
        return
    names = sorted(held.nodes)
    floor = held.applied_floor or {}
    topics = sorted(floor)
    pipe = client.pipeline(transaction=False)
    for key in names:
        pipe.get(key)
        if topics:
            pipe.hmget(watermarks.applied_key(key), [watermarks.field(held.partition, t) for t in topics])
    rows = pipe.execute()
    step = 2 if topics else 1
    now = {k: None if rows[i * step] is None else _text(rows[i * step]) for i, k in enumerate(names)}
    lost = [k for k, v in held.nodes.items() if now.get(k) != v]
    if lost:
        raise StateLost(held.partition, f"a Redis Cluster master lost its data (marker {', '.join(lost)})", True)
    if topics:
        rolled = watermarks.compare(names, topics, [rows[i * step + 1] for i in range(len(names))], floor)
        if rolled:
            metrics.CLUSTER_ROLLBACKS.labels("batch").inc()
            detail = ", ".join(f"{k} at {s}" for k, s in rolled)
            raise StateLost(held.partition, f"a Redis Cluster master rolled back (applied watermark {detail} "
                            f"behind {floor})")  # fmt: skip


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
