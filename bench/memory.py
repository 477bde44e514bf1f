"""Memory of the live 360 in Redis (issue 3).

Applies a simulated stream for ``--customers`` customers (default 1M) through
the engine, in-process and straight into a real Redis (Kafka is not what is
measured here), with the default retention, then reports:

* Redis memory per customer, in all and without the timeline;
* the profile document's size per customer (MEMORY USAGE, sampled);
* the timeline's cost per entry (MEMORY USAGE / ZCARD, sampled);
* bytes per customer by kind of key (``by_kind``: every key is counted and
  ``--sample`` of each kind measured), so a new key shows what it costs;
* the stored profile's form (``profile_compression``, ``--compression`` sets ``timeline_compression`` the same
  way; :mod:`livesignals.documents`): its length in Redis
  (``STRLEN``) against its JSON's, and the CPU of the codec, encode and decode in µs per document over the
  sampled profiles (the Redis boundary: ``bench.apply`` does not see it).

``--events-per-customer`` and ``--compression`` take lists: one run of the engine (Redis emptied first) per
count, in the first form; then the same profiles are stored again in each other form and measured (a
paired comparison). Issue 16's item 5, 2, 20 and 100 events per customer with compression on and off:

    python -m bench.memory [--customers 1000000] [--events-per-customer 3] [--compression zstd]
    python -m bench.memory --customers 20000 --events-per-customer 2,20,100 --compression zstd,off
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections import defaultdict
from collections.abc import Sequence

from bench.common import reference_simulator, services, write_result
from livesignals import documents, serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.settings import Settings
from operators.engine import Engine
from state.connection import connect
from state.keys import Keys
from state.store import ProfileStore


class _NoPublisher:
    def publish(self, records):  # outputs are not what this benchmark measures
        pass


def usage(client, keys: list[bytes]) -> list[int]:
    """MEMORY USAGE of each key (exact: all elements sampled)."""
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.memory_usage(k, samples=0)
    return [u or 0 for u in pipe.execute()]


_HASH_TAG = re.compile(rb"\{[^}]*\}")
_DIGITS = re.compile(rb"\d+")


def kind_of(key: bytes) -> str:
    """A key's kind: its name with the hash tag and numbers taken out.

    >>> kind_of(b"mem:{c00042}:profile"), kind_of(b"mem:{cookie:ab12}:claims"), kind_of(b"mem:wm:3")
    ('mem:{}:profile', 'mem:{}:claims', 'mem:wm:#')
    """
    return _DIGITS.sub(b"#", _HASH_TAG.sub(b"{}", key)).decode(errors="replace")


def bytes_by_kind(client, sample: int, rng: random.Random) -> dict[str, dict[str, float]]:
    """Every key counted by kind; ``sample`` keys of each kind measured, scaled to the count."""
    keys: dict[str, list[bytes]] = defaultdict(list)
    for k in client.scan_iter(count=10_000):
        keys[kind_of(k)].append(k)
    out: dict[str, dict[str, float]] = {}
    for kind, members in keys.items():
        picked = rng.sample(members, min(sample, len(members)))
        mean = sum(usage(client, picked)) / max(1, len(picked))
        out[kind] = {"keys": len(members), "bytes_mean": round(mean), "bytes_total": round(mean * len(members))}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["bytes_total"]))


def slope_and_intercept(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares line through the points: (bytes per entry, bytes per key)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    return slope, my - slope * mx


def codec_figures(client, profiles: list[bytes]) -> dict[str, float]:
    """The stored profiles' length against their JSON's, and the codec's CPU µs per document (best of 3 passes:
    CPU time, since the machine may be shared)."""
    pipe = client.pipeline(transaction=False)
    for k in profiles:
        pipe.get(k)
    stored = [v for v in pipe.execute() if v]
    plain = [documents.decode(v) for v in stored]
    encode_s = decode_s = float("inf")
    for _ in range(3):
        t = time.process_time()
        packed = [documents.encode(d) for d in plain]
        encode_s = min(encode_s, time.process_time() - t)
        t = time.process_time()
        for v in packed:
            documents.decode(v)
        decode_s = min(decode_s, time.process_time() - t)
    n = max(1, len(stored))
    return {
        "profiles_compressed": sum(documents.is_compressed(v) for v in stored),
        "profile_stored_bytes_mean": round(sum(map(len, stored)) / n),
        "profile_json_bytes_mean": round(sum(map(len, plain)) / n),
        "profile_zstd_bytes_mean": round(sum(map(len, packed)) / n),
        "encode_us_per_document": round(encode_s / n * 1e6, 1),
        "decode_us_per_document": round(decode_s / n * 1e6, 1),
    }


def rewrite_profiles(client, prefix: str, compression: documents.Compression) -> None:
    """Store every profile and timeline entry again in the form ``compression`` says (the same documents: a
    paired comparison)."""
    names = list(client.scan_iter(f"{prefix}:{{*}}:profile", count=10_000))
    for i in range(0, len(names), 1000):
        chunk = names[i : i + 1000]
        values = client.mget(chunk)
        pipe = client.pipeline(transaction=False)
        for name, value in zip(chunk, values, strict=True):
            if value:
                pipe.set(name, documents.encode(documents.decode(value), compression), keepttl=True)
        pipe.execute()
    for name in list(client.scan_iter(f"{prefix}:{{*}}:timeline", count=10_000)):
        members, ttl = client.zrange(name, 0, -1, withscores=True), client.pttl(name)
        pipe = client.pipeline(transaction=True)
        pipe.delete(name)
        pipe.zadd(name, {documents.encode(documents.decode(m), compression, "timeline"): t for m, t in members})
        if ttl > 0:
            pipe.pexpire(name, ttl)
        pipe.execute()


def one_run(client, settings: Settings, customers: int, per_customer: float, sample: int, skew: float,
            also: Sequence[str] = ()) -> list[dict]:  # fmt: skip
    """Apply ``customers`` x ``per_customer`` simulated events to an emptied Redis and measure what it holds;
    then, for each form in ``also``, store the same profiles in that form and measure again."""
    client.flushall()
    base = client.info("memory")["used_memory"]
    keys = Keys(settings.key_prefix)
    total = int(customers * per_customer)
    # The simulated stream runs ahead of wall time: give the engine a clock past its end,
    # or later events would be dead-lettered as future_time.
    form = settings.profile_compression
    store = ProfileStore(client, keys, cache_size=50_000, profile_compression=form, timeline_compression=form)
    engine = Engine(settings, store, _NoPublisher(), clock=lambda: 4e12)
    sim = reference_simulator(customers, step_ms=2000.0, skew=skew)
    started = time.monotonic()
    batch: list[RawMessage] = []
    applied = 0
    for i, (e, _) in enumerate(sim.stream(total)):
        batch.append(RawMessage(serde.dumps(e), None, Origin("mem", 0, i, 0)))
        if len(batch) == 5000:
            applied += engine.process(batch).applied
            batch = []
    if batch:
        applied += engine.process(batch).applied
    elapsed = time.monotonic() - started
    runs = [measure(client, keys, base, sample)]
    runs[0].update(events_per_customer=per_customer, profile_compression=settings.profile_compression, events=total,
                   events_applied=applied, events_per_s_in_process=round(total / elapsed))  # fmt: skip
    for mode in also:
        rewrite_profiles(client, keys.prefix, mode)  # type: ignore[arg-type]
        runs.append({**measure(client, keys, base, sample), "events_per_customer": per_customer,
                     "profile_compression": mode, "rewritten_from": settings.profile_compression})  # fmt: skip
    return runs


def measure(client, keys: Keys, base: int, sample: int) -> dict:
    """What Redis holds now: bytes per customer, in all, by kind, the profile's and the timeline's."""
    used = client.info("memory")["used_memory"] - base

    profiles = [k for k in client.scan_iter(f"{keys.prefix}:{{*}}:profile", count=10_000)]
    timelines = [k for k in client.scan_iter(f"{keys.prefix}:{{*}}:timeline", count=10_000)]
    rng = random.Random(1)
    p_sample = rng.sample(profiles, min(sample, len(profiles)))
    t_sample = rng.sample(timelines, min(sample, len(timelines)))
    profile_bytes = sum(usage(client, p_sample)) / max(1, len(p_sample))
    t_usage = usage(client, t_sample)
    pipe = client.pipeline(transaction=False)
    for k in t_sample:
        pipe.zcard(k)
    sizes = pipe.execute()
    entries = sum(sizes) / max(1, len(sizes))
    timeline_total = sum(t_usage) / max(1, len(t_usage)) * len(timelines)
    per_entry, per_key = slope_and_intercept(sizes, t_usage)
    kinds = bytes_by_kind(client, sample, rng)
    for figures in kinds.values():
        figures["bytes_per_customer"] = round(figures["bytes_total"] / len(profiles), 1)
    return {
        "customers_with_profile": len(profiles),
        "redis_bytes_per_customer": round(used / len(profiles)),
        "redis_bytes_per_customer_without_timeline": round((used - timeline_total) / len(profiles)),
        "profile_document_bytes_mean": round(profile_bytes),
        **codec_figures(client, p_sample),
        "timeline_entries_mean": round(entries, 2),
        "timeline_bytes_per_entry": round(per_entry),
        "timeline_bytes_per_key": round(per_key),
        "by_kind": kinds,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--events-per-customer", default="3", help="one or more, comma-separated (e.g. 2,20,100)")
    ap.add_argument("--compression", default="zstd", help="zstd, off or both comma-separated (profile_compression)")
    ap.add_argument("--sample", type=int, default=5000)
    ap.add_argument("--skew", type=float, default=0.6, help="activity skew; low enough that most customers appear")
    ap.add_argument(
        "--zset-listpack-value", type=int, default=None,
        help="set the server's zset-max-listpack-value first (timeline members are ~150 bytes; default 64)",
    )  # fmt: skip
    args = ap.parse_args()
    counts = [float(x) for x in args.events_per_customer.split(",")]
    modes = [m.strip() for m in args.compression.split(",")]

    with services() as (_kafka, redis_url):
        settings = Settings.load(env={}).replace(
            redis_url=redis_url, key_prefix="mem", metrics_port=0, policy_clock="stream"
        )
        client = connect(settings)
        if args.zset_listpack_value:
            client.config_set("zset-max-listpack-value", args.zset_listpack_value)
        runs = []
        for per_customer in counts:  # the engine runs once per count; the other forms store the same profiles
            for run in one_run(client, settings.replace(profile_compression=modes[0]), args.customers, per_customer,
                               args.sample, args.skew, also=modes[1:]):  # fmt: skip
                print({k: v for k, v in run.items() if k != "by_kind"}, flush=True)
                runs.append(run)
        listpack = client.config_get("zset-max-listpack-value")["zset-max-listpack-value"]
    result = {**runs[0], "zset_max_listpack_value": listpack} if len(runs) == 1 else {
        "zset_max_listpack_value": listpack, "runs": runs}  # fmt: skip
    write_result("memory", result)


if __name__ == "__main__":
    main()
