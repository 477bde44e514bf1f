"""The Redis Cluster commit: ordered steps, each confirmed before the next, resumable by a retry.

A batch spans hash slots, so it cannot be one transaction. In order:

1. the ownership check (:func:`state.ownership.check` on each partition's meta):
   a stale engine that is already fenced writes nothing;
2. flags (stream, then the live push);
2b. the batch's partition aggregates, as a write-ahead record in the
   partition's slot (:mod:`state.write_ahead`), so that a process dying
   between (3) and (4) loses none of the batch's KPI and voice-of-the-customer
   contributions;
3. each customer's timeline and identity claims, then its profile — one
   document that carries the offsets it has applied — written by a script that
   refuses to replace a profile last written by a newer owner of the same
   partition number (``ls:{<cust>}:writer`` holds ``<p>|<epoch>``), so a stale
   engine that passed (1) just before being fenced cannot overwrite the new
   owner's work; the scripts are pipelined per node, each node's pipeline
   ending with its applied watermark (:mod:`state.watermarks`: written to
   every master, so a master that later rolls back is noticed);
4. one script in the partition's slot checks the claim again and writes the
   partition aggregates — only if their ``applied`` offset is behind, so a
   retry never counts twice — and the resume offsets, and drops the write-ahead record.

A :class:`Plan` is made once per batch; a retry resumes at the step that failed
(``Plan.done``) and writes the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from livesignals import metrics
from operators.profile360.identity import MAX_OWNERS_KEPT
from operators.profile360.profile import CustomerState
from operators.rules.signals import Flag
from state import watermarks
from state.keys import Keys
from state.ownership import Claim, Fenced, StateLost, check, superseded
from state.write_ahead import record


@dataclass
class Plan:
    """One commit, planned once: what a retry writes again, unchanged."""

    customers: list[list[tuple[Any, ...]]]
    flags: list[Flag]
    aggregates: dict[tuple[str, int], dict[str, bytes]]
    offsets: dict[int, dict[str, int]]
    claims: dict[int, Claim]
    done: set[str] = field(default_factory=set)
    contacts: dict[str, bytes] = field(default_factory=dict)
    """Customer key -> its open contacts as its flag entries carry them (:mod:`state.entry_contacts`)."""
    erased: list[str] = field(default_factory=list)
    """Customers erased by this batch: their flags are scrubbed before the commit (:mod:`state.erasure`)."""


def owner_partition(state: CustomerState, partitions: set[int]) -> int:
    """The partition number of this batch that applied events to ``state`` (its writer)."""
    for name in state.applied:
        number = int(name.rpartition(":")[2])
        if number in partitions:
            return number
    return min(partitions) if partitions else 0


def write_partitions(pipe: Any, keys: Keys, plan: Plan, current: dict[int, dict[bytes, bytes]]) -> None:
    """Partition aggregates (with ``applied``) and resume offsets not yet in Redis (``current``: the metas read)."""
    for partition, news in plan.offsets.items():
        meta = keys.partition_meta(partition)
        row = current.get(partition, {})
        for topic, new in news.items():
            held = row.get(f"offset:{topic}".encode())
            if held is not None and int(held) >= new:
                continue
            fields = plan.aggregates.get((topic, partition))
            if fields is not None:
                pipe.hset(keys.partition(topic, partition), mapping={**fields, "applied": new})
            pipe.hset(meta, f"offset:{topic}", new)
    for (topic, partition), fields in plan.aggregates.items():
        if topic not in plan.offsets.get(partition, {}):
            pipe.hset(keys.partition(topic, partition), mapping=fields)


def commit_cluster(store: Any, plan: Plan) -> None:
    """Ordered: check ownership; flags; customers (profiles last, conditional); aggregates + offsets.

    Each phase is remembered once done, so a retry resumes at the phase that failed.
    """
    if "checked" not in plan.done:
        pending = not plan.claims
        for partition, news in plan.offsets.items():
            if partition in plan.claims:
                row = store.client.hgetall(store.keys.partition_meta(partition))
                pending |= check(plan.claims[partition], row, news)
        if not pending:
            return
        plan.done.add("checked")
    if "flags" not in plan.done and plan.flags:
        # PUBLISH reaches every node's subscribers from any node, but redis-py will not
        # pipeline it on a cluster client: the pushes go through one node's own client.
        node = store.client.get_redis_connection(store.client.get_default_node())
        pushes = node.pipeline(transaction=False)
        store._execute(
            store._with_flags(store.client.pipeline(transaction=False), plan.flags, pushes, plan.contacts), "flags"
        )
        store._execute(pushes, "flags")
    plan.done.add("flags")
    if "wal" not in plan.done:
        for partition, news in plan.offsets.items():
            _write_ahead(store, plan, partition, news)
        plan.done.add("wal")
    if "customers" not in plan.done:
        _customers(store, plan)
        plan.done.add("customers")
    for partition, news in plan.offsets.items():
        _partition(store, plan, partition, news)


def _customers(store: Any, plan: Plan) -> None:
    pipe = store.client.pipeline(transaction=False)
    profiles: list[tuple[str, ...]] = []
    expires: list[tuple[Any, ...]] = []  # TTLs of profiles and writer keys: after their SET
    for ops in plan.customers:
        for op in ops:
            if op[0] == "claim":
                # redis-py does not pipeline scripts on a cluster: a claim is its own (idempotent)
                # round trip. New links are rare (a login, a first purchase).
                store._claim(keys=[op[1], op[2]], args=[op[3], MAX_OWNERS_KEPT, *op[4:]], client=store.client)
            elif op[0] == "unclaim":  # state.erasure: a script, its own round trip too (erasures are rare)
                store.erasures.unclaim(keys=[op[1], op[2]], args=list(op[3:]), client=store.client)
            elif op[0] == "profile":
                profiles.append(op[1:])
            elif op[0] == "ttl":
                expires.append(op)
            else:
                getattr(pipe, op[0])(*op[1:])
    store._execute(pipe, "commit")
    if not plan.claims:
        pipe = store.client.pipeline(transaction=False)
        for key, _, data in profiles:
            pipe.set(key, data)
        store._execute(pipe, "commit")
        if expires:
            ttls = store.client.pipeline(transaction=False)
            for op in expires:
                ttls.expire(op[1], op[2])
            store._execute(ttls, "commit")
        return
    # Conditional writes (a stale owner's profile never replaces a newer one's), pipelined per master: its
    # profiles, their TTLs, then its applied watermark (state.watermarks): every master, profiles or not.
    by_node: dict[str, tuple[Any, list[tuple[str, ...]], list[tuple[Any, ...]], str | None]] = {}
    for mark in sorted({k for held in plan.claims.values() for k in held.nodes or {}}):
        node = store.client.get_node_from_key(mark)
        by_node.setdefault(node.name, (node, [], [], mark))
    for item in profiles:
        node = store.client.get_node_from_key(item[0])
        by_node.setdefault(node.name, (node, [], [], None))[1].append(item)
    for op in expires:
        node = store.client.get_node_from_key(op[1])
        by_node.setdefault(node.name, (node, [], [], None))[2].append(op)
    applied = watermarks.write_args(plan.claims, plan.offsets)
    for node, items, ttl_ops, marker in by_node.values():
        pipe = store.client.get_redis_connection(node).pipeline(transaction=False)
        for key, partition, data in items:
            held = plan.claims[int(partition)]
            customer = key[: -len(":profile")]
            store._profile(keys=[key, customer + ":writer"], args=[partition, held.epoch, data], client=pipe)
        for op in ttl_ops:
            pipe.expire(op[1], op[2])
        if marker is not None:
            store._applied(keys=[watermarks.applied_key(marker)], args=applied, client=pipe)
        try:
            results = pipe.execute()
        except redis.ResponseError as exc:
            if str(exc).startswith(("MOVED", "ASK")):  # slots moved: learn the new map, then retry
                store.client.nodes_manager.initialize()
            raise
        metrics.REDIS_ROUNDTRIPS.labels("commit").inc()
        metrics.REDIS_COMMANDS.labels("commit").inc(len(results))
        for (_, partition, _), ok in zip(items, results, strict=False):
            if not ok:
                raise Fenced(int(partition), "a newer owner wrote one of its profiles")
        if marker is not None and _text(results[-1]):
            raise Fenced(int(_text(results[-1])), "a newer owner claimed it (applied watermark)")


def _partition(store: Any, plan: Plan, partition: int, news: dict[str, int]) -> None:
    """Aggregates and resume offsets of one partition number, checked and written by one script."""
    held = plan.claims.get(partition)
    topics = list(news)
    if held is None:  # unfenced (tests, tools): plain writes
        pipe = store.client.pipeline(transaction=False)
        write_partitions(pipe, store.keys, Plan([], [], plan.aggregates, {partition: news}, {}), {})
        store._execute(pipe, "commit")
        return
    args: list[Any] = [held.epoch, held.store, len(topics)]
    for topic in topics:
        fields = plan.aggregates.get((topic, partition), {})
        expected = held.offsets.get(topic)
        args += [topic, "" if expected is None else expected, news[topic], len(fields)]
        for name, value in fields.items():
            args += [name, value]
    keys = [store.keys.partition_meta(partition)] + [store.keys.partition(t, partition) for t in topics]
    keys.append(store.keys.write_ahead(partition))
    verdict, detail = (_text(v) for v in store._commit_partition(keys=keys, args=args))
    metrics.REDIS_ROUNDTRIPS.labels("commit").inc()
    if verdict == "fenced":
        raise superseded(partition, detail, held.epoch)
    if verdict == "lost":
        raise StateLost(partition, detail)
    others = {t: f for (t, p), f in plan.aggregates.items() if p == partition and t not in news}
    if others:  # aggregates of a topic this batch read nothing from (an erase forgot a key there): after the check
        pipe = store.client.pipeline(transaction=False)
        for topic, fields in others.items():
            pipe.hset(store.keys.partition(topic, partition), mapping=fields)
        store._execute(pipe, "commit")


def _write_ahead(store: Any, plan: Plan, partition: int, news: dict[str, int]) -> None:
    """Record the batch's aggregates of ``partition`` in its slot before any profile (checked like the commit)."""
    held = plan.claims.get(partition)
    fields = record(plan.aggregates, partition, news)
    if held is None or not fields:
        return
    names = [store.keys.partition_meta(partition), store.keys.write_ahead(partition)]
    verdict, detail = (_text(v) for v in store._write_ahead(keys=names, args=[held.epoch, held.store, *fields]))
    metrics.REDIS_ROUNDTRIPS.labels("commit").inc()
    if verdict == "fenced":
        raise superseded(partition, detail, held.epoch)
    if verdict == "lost":
        raise StateLost(partition, detail)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
