"""The batched profile store: read-through cache, write-behind per batch.

Per-event round trips would cap the engine at a few thousand events per
second (measured: ~5k single HSETs/s vs ~75k/s in pipelines of 1000), so the
store reads every customer a batch touches in one pipelined round trip (cache
misses only) and writes each touched customer once per batch.

Commit order, atomicity and fencing (effectively-once state, one writer per partition):

* every commit is checked against the engine's claim on the batch's partition
  number ``p`` (:mod:`state.ownership`): same ``store`` id (else Redis lost its
  data: :class:`~state.ownership.StateLost`), same owner ``epoch`` (else another
  engine claimed ``p``: :class:`~state.ownership.Fenced`), resume offsets not
  behind what this engine committed (else Redis rolled back: ``StateLost``);
* one Redis: the check runs under ``WATCH`` of ``ls:{part:<p>}:meta`` and flags,
  timelines, identity claims, profiles, partition aggregates and resume offsets
  go in **one MULTI/EXEC**: a claim by another engine between the check and
  ``EXEC`` aborts the transaction, and the retry then finds itself fenced;
* Redis Cluster (a batch spans slots, so it cannot be one transaction):
  ownership check, flags, customers (profiles by a script that refuses to
  replace a newer owner's), then aggregates and resume offsets by one script in
  the partition's slot — see :mod:`state.cluster_commit`.

The writes are *planned once* per batch and retried as planned while Redis is
unreachable or a node refuses writes (``retry``, see :class:`state.connection.Backoff`):
a retry resumes the Cluster commit at the step that failed and never recomputes,
so it can neither lose nor double count. A commit whose offsets Redis already
holds (the reply of a successful attempt was lost) writes nothing.

A process that *dies* between steps (3) and (4) on a Cluster leaves profiles
ahead of the partition aggregates: the batch's aggregates, recorded ahead in
the partition's slot (:mod:`state.write_ahead`), are written at the next claim
and the replay counts no event twice. A Cluster master that lost its data is
seen by its store marker, even when it held only profiles (:mod:`state.node_markers`),
and one that rolled back by its applied watermark (:mod:`state.watermarks`);
a partition rebuilt as a whole after its ``{part:<p>}`` master lost its data has
its older profiles treated as stale by :meth:`ProfileStore.load` (:mod:`state.rebuild`).

Redis applies a MULTI block only when EXEC arrives, so a worker that dies
mid-commit leaves nothing behind. (MULTI does not roll back a command that
fails at run time, e.g. WRONGTYPE; with the engine's own key layout that
happens only if something else writes to these keys.) A failed commit clears
the cache, so nothing half-applied is served from memory.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import redis
from redis.exceptions import RedisClusterException

from livesignals import documents, metrics, serde
from operators.partition import PartitionAggregates
from operators.profile360.identity import MAX_OWNERS_KEPT
from operators.profile360.profile import CustomerState, unreadable_stand_in
from operators.rules.signals import Flag
from state import entry_contacts, node_markers, rebuild, watermarks, write_ahead
from state.cluster_commit import Plan, commit_cluster, owner_partition, write_partitions
from state.cluster_scripts import commit_script, profile_script, read_metas
from state.customer_writes import timeline_writes, update_writes
from state.erasure import ErasureLedger, pseudonym_writes
from state.keys import Keys
from state.models_store import RedisModelLog
from state.ownership import Claim, Fenced, Ownership, check
from state.replicas import ReplicasBehind, wait_for_replicas
from state.retention import Retention, is_anonymous

__all__ = ["ProfileStore", "ReplicasBehind"]

log = logging.getLogger(__name__)

Retry = Callable[[Callable[[], None]], None]
"""Runs a commit until it succeeds (backing off while Redis is unreachable); see :mod:`state.connection`."""

# Record a claim on an identifier unless it already has MAX_OWNERS_KEPT claimants, then its lifetime
# (state.retention): a claim set a known customer (not an anonymous id) is a member of has no TTL -- it
# goes when its last claimant is erased -- and one with anonymous claimants only expires ARGV[3] s after
# its last new claim. KEYS[2] records the first customer claimant (state.erasure: where its tombstone goes), with
# the claim set's lifetime: no TTL beside a customer's claim, else the set's (break-test 12k, K4: it had none).
# ARGV: claimant, max claimants, ttl, 1 if the claimant is a known customer.
_CLAIM = """
local persistent = redis.call('EXISTS', KEYS[1]) == 1 and redis.call('TTL', KEYS[1]) == -1
local added = 0
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 and redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then
  added = redis.call('SADD', KEYS[1], ARGV[1])
end
if ARGV[4] == '1' and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  redis.call('PERSIST', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[1], 'NX')
  redis.call('PERSIST', KEYS[2])
elseif not persistent and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3])) end
end
return added
"""


class ProfileStore:
    """Loads and commits :class:`CustomerState` in batches.

    ``cache_size`` customer states are kept in memory per worker (LRU). The
    cache is coherent because one customer's events are read by one worker
    (Kafka partitioning by customer).
    """

    def __init__(
        self,
        client: Any,
        keys: Keys,
        *,
        cache_size: int = 200_000,
        cluster: bool = False,
        flags_stream_maxlen: int = 100_000,
        timeline_max_entries: int = 200,
        timeline_max_age_days: int = 90,
        models_config: dict[str, Any] | None = None,
        ownership: Ownership | None = None,
        retry: Retry | None = None,
        retention: Retention | None = None,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
        profile_compression: documents.Compression = "zstd",
        timeline_compression: documents.Compression = "zstd",
    ) -> None:
        self.client = client
        self.keys = keys
        self.cache_size = cache_size
        self.cluster = cluster
        self.flags_stream_maxlen = flags_stream_maxlen
        self.timeline_max_entries = timeline_max_entries
        self.timeline_max_age_days = timeline_max_age_days
        self.models_config = models_config
        self._cache: OrderedDict[str, CustomerState] = OrderedDict()
        self.ownership = ownership
        self.retry = retry
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self.profile_compression: documents.Compression = profile_compression  # at the Redis boundary only
        self.timeline_compression: documents.Compression = timeline_compression
        self._claim = client.register_script(_CLAIM)
        self.models_log = RedisModelLog(client, keys.prefix)  # the shared models (state.models_store)
        self._commit_partition = commit_script(client)
        self._profile = profile_script(client)
        self._applied = watermarks.write_script(client)  # Cluster: each master's applied watermark
        self.retention = retention or Retention()
        self.erasures = ErasureLedger(client, keys, self.retention)  # erase, ledger, audit (state.erasure)
        self._write_ahead = write_ahead.write_script(client)

    def load(self, customer_keys: Iterable[str]) -> dict[str, CustomerState]:
        """States of these customers: cached ones from memory, the rest in one round trip."""
        found: dict[str, CustomerState] = {}
        missing: list[str] = []
        for key in dict.fromkeys(customer_keys):
            state = self._cache.get(key)
            if state is None:
                missing.append(key)
            else:
                self._cache.move_to_end(key)
                found[key] = state
        if missing:
            stale = self._rebuilding()
            pipe = self.client.pipeline(transaction=False)
            for key in missing:
                pipe.get(self.keys.profile(key))
                if stale:  # a partition is rebuilt as a whole: whose profiles are stale (state.rebuild)
                    pipe.get(self.keys.writer(key))
            rows = pipe.execute()
            metrics.REDIS_ROUNDTRIPS.labels("load").inc()
            metrics.REDIS_COMMANDS.labels("load").inc(len(rows))
            step = 2 if stale else 1
            for i, key in enumerate(missing):
                try:
                    state = CustomerState.from_bytes(key, documents.read(rows[i * step]))
                except ValueError as exc:  # damaged, unknown dictionary, not a profile: this customer only
                    found[key] = unreadable_stand_in(key, exc)  # counted, logged; not cached: a repair is read again
                    continue
                if stale and rows[i * step] is not None and rebuild.is_stale(rows[i * step + 1], state.applied, stale):
                    state = CustomerState.from_bytes(key, None)  # rebuilt from its first event by the replay
                found[key] = state
                self._remember(key, state)
        return found

    def _rebuilding(self) -> dict[int, int]:
        """Partition -> epoch of the whole-partition rebuilds this process runs (Redis Cluster only)."""
        if not self.cluster or self.ownership is None:
            return {}
        out = {}
        for partition in self.ownership.owned():
            held = self.ownership.get(partition)
            if held is not None and held.stale_before is not None:
                out[partition] = held.stale_before
        return out

    def load_partition(self, topic: str, partition: int) -> PartitionAggregates:
        """One input partition's shared aggregates (KPIs, voice of the customer)."""
        row = self.client.hgetall(self.keys.partition(topic, partition))
        metrics.REDIS_ROUNDTRIPS.labels("load").inc()
        return PartitionAggregates.from_fields(row)

    def commit(
        self,
        states: Iterable[CustomerState],
        flags: list[Flag],
        offsets: dict[tuple[str, int], int],
        partitions: dict[tuple[str, int], PartitionAggregates] | None = None,
        notify: bool = True,
        planned: Plan | None = None,
    ) -> None:
        """Write flags, the touched states, partition aggregates and the next offsets to read.

        ``notify=False``: a STATE LOSS replay of events whose flags and updates were written and pushed before
        (the engine passes no flags then): no XADD to ``{ls:flags}:updates`` either (break-test 10g, C1: the
        desks' streams got every flag of the history a second time, pushed live as new).

        ``offsets`` maps ``(topic, partition)`` to the next offset to read. Per
        customer, timeline entries and identity claims go before the profile
        (they are idempotent), so the profile's applied offsets never run ahead
        of them. The writes are planned once and retried as planned (``retry``)
        while Redis is unreachable: a retry never recomputes, so it never counts twice.
        Raises :class:`~state.ownership.Fenced` or :class:`~state.ownership.StateLost`.
        ``planned``: what :meth:`plan` made of these arguments (the engine plans while Kafka confirms its outputs).
        """
        plan = self.plan(states, flags, offsets, partitions, notify) if planned is None else planned
        by_part, erased = plan.offsets, plan.erased
        try:
            write = functools.partial(commit_cluster, self) if self.cluster else self._commit_single

            def run(plan: Plan) -> None:
                self.erasures.scrub_flags(erased)  # before the commit: a retried batch scrubs again
                write(plan)
                wait_for_replicas(self.client, self.cluster, self.wait_replicas, self.wait_timeout_ms)

            if self.retry is None:
                run(plan)
            else:
                self.retry(lambda: run(plan))
        except Exception:
            self._cache.clear()
            raise
        for partition, news in by_part.items():
            held = plan.claims.get(partition)
            if held is not None:
                for topic, new in news.items():
                    held.offsets[topic] = max(new, held.offsets.get(topic) or 0)
                    if held.applied_floor is not None:  # every master's watermark holds this now
                        held.applied_floor[topic] = new
                if rebuild.passed(held):
                    self._finish_rebuild(held)

    def plan(
        self,
        states: Iterable[CustomerState],
        flags: list[Flag],
        offsets: dict[tuple[str, int], int],
        partitions: dict[tuple[str, int], PartitionAggregates] | None = None,
        notify: bool = True,
    ) -> Plan:
        """The work of :meth:`commit` before any write: every write encoded (CPU only, but for an erasure's plan,
        which reads the customer's pseudonyms and claims from Redis: :meth:`state.erasure.ErasureLedger.plan`). It
        changes the states as the commit does (timeline and links taken, erasure done): a batch that fails before
        its commit must be redone from a cleared cache (:meth:`forget`), as any failed batch is. Raises ``Fenced``
        if not claimed."""
        states = [s for s in states if s.unreadable is None or s.erased is not None]  # never over a damaged one
        erased = [s.customer_key for s in states if s.erased is not None]
        by_part: dict[int, dict[str, int]] = {}
        for (topic, partition), next_offset in offsets.items():
            by_part.setdefault(partition, {})[topic] = next_offset
        return Plan(customers=[self._plan_customer(state, set(by_part), notify) for state in states], flags=flags,
                    aggregates={tp: aggregates.to_fields() for tp, aggregates in (partitions or {}).items()},
                    offsets=by_part, claims=self._claims(by_part), contacts=self._flag_contacts(states, flags),
                    erased=erased)  # fmt: skip

    def _finish_rebuild(self, held: Claim) -> None:
        """Drop the stale marks of a rebuild the replay completed; an outage leaves them for the next commit."""
        try:
            rebuild.finish(self.client, self.keys, held)
        except (redis.RedisError, RedisClusterException) as exc:
            log.warning("partition %d: rebuild marks kept for now (%s)", held.partition, exc)

    def verify(self, *partitions: int) -> None:
        """Raise :class:`~state.ownership.Fenced` or :class:`~state.ownership.StateLost` unless this process
        still owns each of ``partitions`` and Redis still holds what it committed (before a batch: no output is
        computed from a state Redis lost, nor published by a fenced engine). No-op without ownership. Their meta
        hashes are read in one pipelined round trip (a Cluster: one per master holding them; then each one's
        masters' markers, :mod:`state.node_markers`)."""
        claims = [self.ownership.get(p) for p in partitions] if self.ownership is not None else []
        held = [c for c in claims if c is not None]
        for c in held:
            if c.released:
                raise Fenced(c.partition, "released")
        if not held:
            return
        pipe = self.client.pipeline(transaction=False)
        for c in held:
            pipe.hgetall(self.keys.partition_meta(c.partition))
        rows = pipe.execute()
        metrics.REDIS_ROUNDTRIPS.labels("verify").inc()
        for c, row in zip(held, rows, strict=True):
            check(c, row, {t: 0 for t in c.offsets})
        for c in held if self.cluster else ():
            node_markers.check(self.client, c)  # a master holding only profiles lost them
            metrics.REDIS_ROUNDTRIPS.labels("verify").inc()

    def _claims(self, by_part: dict[int, dict[str, int]]) -> dict[int, Claim]:
        if self.ownership is None:
            return {}
        claims = {}
        for partition in by_part:
            held = self.ownership.get(partition)
            if held is None or held.released:
                raise Fenced(partition, "not claimed by this process")
            claims[partition] = held
        return claims

    def _commit_single(self, plan: Plan) -> None:
        """One MULTI/EXEC, under WATCH of the partitions' meta hashes when fenced."""
        with self.client.pipeline(transaction=True) as pipe:
            current: dict[int, dict[bytes, bytes]] = {}
            if plan.claims:
                metas = [self.keys.partition_meta(p) for p in plan.offsets]
                pipe.watch(*metas)
                pending = False
                current = dict(zip(plan.offsets, read_metas(pipe, metas), strict=True))
                for partition, news in plan.offsets.items():
                    pending |= check(plan.claims[partition], current[partition], news)
                if not pending:
                    return  # a retry of a commit that reached Redis: nothing to do
                pipe.multi()
            self._with_flags(pipe, plan.flags, contacts=plan.contacts)
            for ops in plan.customers:
                for op in ops:
                    if op[0] == "claim":
                        self._claim(keys=[op[1], op[2]], args=[op[3], MAX_OWNERS_KEPT, *op[4:]], client=pipe)
                    elif op[0] == "unclaim":  # state.erasure
                        self.erasures.unclaim(keys=[op[1], op[2]], args=list(op[3:]), client=pipe)
                    elif op[0] == "profile":
                        pipe.set(op[1], op[3])
                    elif op[0] == "ttl":  # after the profile's SET (which clears a TTL)
                        pipe.expire(op[1], op[2])
                    else:
                        getattr(pipe, op[0])(*op[1:])
            write_partitions(pipe, self.keys, plan, current)
            self._execute(pipe, "commit")

    @staticmethod
    def _flag_contacts(states: list[CustomerState], flags: list[Flag]) -> dict[str, bytes]:
        """The open contacts of each customer flagged in this batch, as its flag entries carry them."""
        flagged = {flag.customer_key for flag in flags}
        return {s.customer_key: entry_contacts.encode(s.activity.get("open_contacts", {}))
                for s in states if s.customer_key in flagged}  # fmt: skip

    def _plan_customer(self, state: CustomerState, partitions: set[int], notify: bool = True) -> list[tuple[Any, ...]]:
        """The writes of one customer, in order; the profile last (it carries the timeline meta)."""
        key = state.customer_key
        ops: list[tuple[Any, ...]] = []
        if state.erased is not None:  # erased by this batch: delete first (state.erasure)
            ops += self.erasures.plan(state)
            state.erased = None
            state.pseudonym_written = False  # deleted: a customer coming back gets its lookup key again
            if not state.events:
                self._cache.pop(key, None)
                return ops
        if state.new_timeline:
            ops += timeline_writes(state, self.keys.timeline(key), self.timeline_compression,
                                   self.timeline_max_entries, self.timeline_max_age_days)  # fmt: skip
        claim_ttl, known = self.retention.identity_claim_ttl_s, int(not is_anonymous(key))
        k = self.keys
        ops += [("claim", k.owners(i), k.first_claimant(i), key, claim_ttl, known) for i in state.new_links]
        if state.new_links:  # every identifier it claimed, for its erasure (12i, I1); a device's too (12j, J1)
            ops.append(("sadd", self.keys.claims(key), *state.new_links))
            if not known:  # an anonymous id's claims expire (the claim script): its index with the newest
                ops.append(("ttl", self.keys.claims(key), claim_ttl))
        ops += pseudonym_writes(self.erasures, self.keys, state)  # analysts look a customer up by it (12k, K2)
        # its marks move in the profile either way: later changes are compared to them
        updates = update_writes(state, self.keys.updates_stream, self.flags_stream_maxlen)
        ops += updates if notify else []
        stored = documents.encode(state.to_bytes(), self.profile_compression)  # in memory it stays JSON
        ops.append(("profile", self.keys.profile(key), str(owner_partition(state, partitions)), stored))
        if is_anonymous(key):  # an idle anonymous id expires (state.retention)
            ttl = self.retention.anonymous_ttl_s
            ops += [("ttl", self.keys.profile(key), ttl), ("ttl", self.keys.writer(key), ttl)]
            if state.timeline_meta:
                ops.append(("ttl", self.keys.timeline(key), ttl))
        state.new_timeline = []
        state.new_links = []
        return ops

    def model_control(self) -> dict[str, str]:
        """Promotions requested: model kind -> promotion id."""
        metrics.REDIS_ROUNDTRIPS.labels("control").inc()
        return {k.decode(): v.decode() for k, v in self.client.hgetall(self.keys.model_control).items()}

    def resume_offsets(self, topic: str) -> dict[int, int]:
        """Next offset to read per partition, as committed with the last batch."""
        out = {}
        for name in self.client.scan_iter(self.keys.meta_pattern(), count=1000):
            value = self.client.hget(name, f"offset:{topic}")
            if value is not None:
                out[int(_text(name).rsplit("{part:", 1)[1].split("}", 1)[0])] = int(value)
        metrics.REDIS_ROUNDTRIPS.labels("offsets").inc()
        return out

    def forget(self) -> None:
        """Drop the cache (after a failure, or when partitions move)."""
        self._cache.clear()

    def _with_flags(
        self, pipe: Any, flags: list[Flag], pushes: Any = None, contacts: dict[str, bytes] | None = None
    ) -> Any:
        """Append each flag to the replayable stream (on ``pipe``) with its customer's open contacts
        (``contacts``, :mod:`state.entry_contacts`: the push service routes queue followers from them) and
        push it live (on ``pushes``, default ``pipe``)."""
        pushes = pipe if pushes is None else pushes
        for flag in flags:
            doc = serde.dumps(flag.to_json())
            fields: dict[str, Any] = {
                "flag_id": flag.flag_id,
                "customer": flag.customer_key,
                "flag": flag.name,
                "doc": doc,
            }
            if contacts and flag.customer_key in contacts:
                fields[entry_contacts.FIELD] = contacts[flag.customer_key]
            pipe.xadd(
                self.keys.flags_stream,
                fields,
                maxlen=self.flags_stream_maxlen,
                approximate=True,
            )
            pushes.publish(self.keys.flags_channel, doc)
        return pipe

    def _execute(self, pipe: Any, op: str) -> None:
        n = len(pipe)
        pipe.execute()
        metrics.REDIS_ROUNDTRIPS.labels(op).inc()
        metrics.REDIS_COMMANDS.labels(op).inc(n)

    def _remember(self, key: str, state: CustomerState) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = state
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
