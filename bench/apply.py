"""In-process engine throughput: the apply path alone (no Kafka, no Redis).

Feeds the simulator's reference mix through :class:`operators.engine.Engine`
on the in-memory store (its commit encoding each touched profile as the Redis store's does:
:class:`CommitStore`) with a publisher that drops records, in batches, and
prints events/s. Run it on two commits, close in time, to see what a change
of the apply path costs (this 2-core machine drifts by tens of percent over
minutes: compare ratios of runs made back to back, never absolute figures).

It also prints where the batches' wall time went (``livesignals_batch_stage_seconds``:
decode, apply, publish, commit; here publish and commit are in memory, the commit encoding the profiles), and with
``--profile`` the top frames of a profile of the run (pyinstrument when installed,
else cProfile's top functions by own time).

With ``--compare-ref REV`` it runs that commit's engine (a temporary checkout)
and ours in ``--pairs`` alternating pairs of fresh processes on the same
workload and prints each pair's ratio of events per CPU second (ours / REV)
and the median: what a change of the apply path gained or cost, in one run.

    python -m bench.apply [--events 30000] [--customers 3000] [--batch 1000] [--models on|off] [--profile]
                          [--compare-ref REV [--pairs 3]] [--gc engine|python] [--callgrind]
                          [--depth 2,20,100 [--step-ms MS] [--skew S]]

With ``--depth`` (issue 16, item 5: cost as history grows) each run first applies ``depth x customers``
events of the same stream, not counted, then counts the next ``--events``: the engine on a state warmed to
that many events per customer (``bench.memory``'s stream shape unless ``--step-ms``/``--skew`` say: events
2 s apart, activity skew 0.6, so windows and bounded lists fill as history spans hours and days). Several
depths run one after another, each in a fresh process (with ``--compare-ref``, that commit's engine first);
with ``--callgrind``, each depth is counted in instructions.

With ``--callgrind`` (valgrind installed) each run is counted in CPU instructions
instead of timed: the engine runs under ``valgrind --tool=callgrind`` with the
instrumentation on only around the batches (start-up and the message generation
left out), on messages and an engine clock fixed in time, hash seed 0. Instructions
per event repeat to a fraction of a percent however loaded the machine is, where
events per CPU second drift by tens of percent: the figure for a change of a few
percent (``--compare-ref`` runs that commit's engine through this harness: commits
whose engine, settings, store and ``flows.heap`` have today's signatures).

The engine's garbage-collector settings (:mod:`flows.heap`) are applied once
the engine is built, as in the live flow; ``--gc python`` keeps Python's
defaults. The CPU share of the collector is printed with the peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import gc
import io
import os
import pstats
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from app.simulator import Simulator, SimulatorConfig
from flows.heap import settle_heap
from livesignals import metrics, serde
from livesignals.contract import RawMessage, decode, primary_key
from livesignals.errors import InvalidEvent, Origin
from livesignals.settings import Settings
from operators.engine import Engine
from operators.partition import PartitionAggregates
from operators.ports import OutRecord
from operators.profile360.profile import CustomerState
from operators.rules.signals import Flag
from state.memory import InMemoryStore

PARTITIONS = 4


class _Drop:
    """A publisher that confirms everything at once (the broker is not what is measured)."""

    def publish(self, records: list[OutRecord]) -> None:
        """Drop the records."""


class CommitStore(InMemoryStore):
    """The in-memory store, whose commit encodes each touched profile as the Redis store's does
    (``state.to_bytes()``, :meth:`state.store.ProfileStore.commit`; the compression of the document left out).

    The plain in-memory store encodes nothing at its commit, so a customer's first event of the next batch
    encoded the state for its undo record instead (:meth:`CustomerState.undo_record`), and a customer touched
    in one batch only was never encoded: 1,026 encodes for 6,000 events where the Redis store's commit makes
    2,421 (and its undo records 11). The profile put that encode under ``undo_record`` (6-8 % of
    ``Engine.process``), a cost the live engine does not pay there, and counted too few of the commit's.
    """

    def commit(
        self,
        states: Iterable[CustomerState],
        flags: list[Flag],
        offsets: dict[tuple[str, int], int],
        partitions: dict[tuple[str, int], PartitionAggregates] | None = None,
        notify: bool = True,
    ) -> None:
        """Encode each state (known again as its document, as after a Redis commit), then the in-memory commit."""
        states = list(states)
        for state in states:
            state.to_bytes()
        super().commit(states, flags, offsets, partitions, notify)


FIXED_NOW_MS = 1_767_268_800_000
"""2026-01-01 12:00 UTC: "now" of a ``--callgrind`` run (its messages and its engine's clock)."""


DEPTH_STEP_MS = 2000.0
"""Simulated time between events of a ``--depth`` run (``bench.memory``'s: 100 events per customer over 1,000
customers span 55 hours, so windows, bounded lists and the timeline fill as they would)."""
DEPTH_SKEW = 0.6
"""Activity skew of a ``--depth`` run (``bench.memory``'s: low enough that most customers reach the depth)."""


def messages(
    events: int,
    customers: int,
    seed: int = 7,
    now_ms: int | None = None,
    warm: int = 0,
    step_ms: float = 20.0,
    skew: float | None = None,
) -> list[RawMessage]:
    """The reference mix as raw messages, spread over :data:`PARTITIONS` partitions by customer
    (``now_ms``: the present they lead up to, the wall clock by default); ``warm`` events of the same stream
    first (a ``--depth`` run's warm-up), ``step_ms`` apart in event time, activity skew ``skew`` (None: the
    simulator's). Without a warm-up the stream starts 6 hours before ``now_ms``; with one, it ends a minute
    before it (every event time moved by the same amount)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    config = SimulatorConfig(customers=customers, seed=seed, start_ms=now - 6 * 3_600_000, step_ms=step_ms)
    if skew is not None:
        config = dataclasses.replace(config, activity_skew=skew)
    docs = [doc for doc, _ in Simulator(config).stream(warm + events)]
    if warm and docs:  # the simulator's clock also moves on picks it skips (churned customers): shift it all
        shift = now - 60_000 - docs[-1]["event_time"]
        for doc in docs:
            doc["event_time"] += shift
    offsets = [0] * PARTITIONS
    out = []
    for doc in docs:
        p = zlib.crc32(primary_key(doc["customer"]).encode()) % PARTITIONS
        out.append(RawMessage(serde.dumps(doc), None, Origin("in", p, offsets[p], now)))
        offsets[p] += 1
    return out


def run(
    msgs: list[RawMessage],
    batch: int,
    models: bool,
    tune_gc: bool = True,
    collector: GcClock | None = None,
    clock: Callable[[], float] = time.time,
    around: Callable[[str], None] = lambda _: None,
    fixed_checkpoints: bool = False,
    warm: int = 0,
) -> tuple[float, float]:
    """Events per wall second and per CPU second of one engine over ``msgs`` in batches of ``batch``.

    The CPU-time figure is the one to compare on a shared machine: other
    processes slow the wall clock, much less this process's own CPU time.
    ``tune_gc``: settle the heap once the engine is built, as the live flow's
    start-up does (:func:`flows.heap.settle_heap`); off, Python's collector defaults.
    ``collector`` times the collections of the timed part; ``clock`` is the engine's wall clock;
    ``around("on")`` and ``around("off")`` are called around the batches (``--callgrind``).
    ``fixed_checkpoints``: the shared models' checkpoint is written by lesson count only, never by the
    seconds passed (``--callgrind``: a run under valgrind lasts minutes, so a checkpoint by time fell inside
    some counts and not others, about 3 % apart).
    ``warm``: the first this many of ``msgs`` are applied before the timed part (``--depth``), not counted.
    """
    settings = Settings.load(env={}).replace(models_enabled=models, metrics_port=0)
    if fixed_checkpoints:
        settings = settings.replace(models_checkpoint_every_s=1e9)
    engine = Engine(settings, CommitStore(), _Drop(), clock=clock)
    warm_up()
    if tune_gc:
        settle_heap()
    for i in range(0, warm, batch):
        engine.process(msgs[i : min(i + batch, warm)])
    counted = msgs[warm:]
    around("on")
    started, cpu = time.perf_counter(), time.process_time()
    with collector or contextlib.nullcontext():
        for i in range(0, len(counted), batch):
            engine.process(counted[i : i + batch])
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    around("off")
    return len(counted) / wall, len(counted) / cpu


def warm_up() -> None:
    """Load (or compile) the event validators before timing, as the live flow's start-up does
    (``flows.live.warm_up``): their one-time cost per process is not a per-event cost."""
    with contextlib.suppress(InvalidEvent):
        decode(b"{}", Origin("warm-up", 0, 0), now_ms=0)


class GcClock:
    """CPU seconds spent in the cyclic garbage collector while it is installed (``gc.callbacks``), per generation.

    CPU in the collector over the process's CPU meanwhile (:attr:`share`) is far steadier on a loaded
    machine than events/s.
    """

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self.cpu = 0.0
        self._started = 0.0

    @property
    def share(self) -> float:
        """CPU seconds in the collector over the process's CPU seconds while installed."""
        return sum(self.seconds) / self.cpu if self.cpu else 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        """``gc.callbacks`` hook: time each collection."""
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds[info["generation"]] += time.process_time() - self._started
            self.collections[info["generation"]] += 1

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self)
        self.cpu -= time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu += time.process_time()
        gc.callbacks.remove(self)


def stage_seconds() -> dict[str, float]:
    """Seconds spent so far in each stage of the engine's batches (``livesignals_batch_stage_seconds``)."""
    return {
        s.labels["stage"]: s.value
        for m in metrics.BATCH_STAGE_SECONDS.collect()
        for s in m.samples
        if s.name.endswith("_sum")
    }


def profiled(work: Callable[[Callable[[str], None]], Any]) -> tuple[Any, str]:
    """``work(around)``'s result and a text profile of what ran between ``around("on")`` and ``around("off")``
    (the counted part): pyinstrument's call tree if installed, else cProfile's top functions by own time."""
    try:
        from pyinstrument import Profiler  # optional: pip install pyinstrument
    except ImportError:
        profile = cProfile.Profile()
        result = work(lambda switch: profile.enable() if switch == "on" else profile.disable())
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
        return result, out.getvalue()
    profiler = Profiler(interval=0.001)
    try:
        result = work(lambda switch: profiler.start() if switch == "on" else profiler.stop())
    finally:
        if profiler.is_running:
            profiler.stop()
    return result, profiler.output_text(unicode=False, color=False)


_FILL_CACHE = (
    "import contextlib\nfrom livesignals.contract import decode\nfrom livesignals.errors import Origin\n"
    "with contextlib.suppress(Exception):\n    decode(b'{}', Origin('w', 0, 0), now_ms=0)\n"
)
"""Run in a checkout before its timed runs: fills its validator cache (``livesignals.validator_cache``)."""
_CPU_RATE = re.compile(r"events_per_cpu_s=([0-9,]+)")


def one_run(code_dir: str, args: list[str]) -> float:
    """Events per CPU second of one ``bench.apply`` run of the code in ``code_dir`` (a fresh process)."""
    env = {**os.environ, "PYTHONPATH": code_dir}
    done = subprocess.run([sys.executable, "-m", "bench.apply", *args], cwd=code_dir, env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    found = _CPU_RATE.search(done.stdout)
    if found is None:
        raise RuntimeError(f"no events_per_cpu_s in the output of {code_dir}: {done.stdout[-500:]}{done.stderr[-500:]}")
    return float(found.group(1).replace(",", ""))


_WALL_RATE = re.compile(r"events_per_s=([0-9,]+)")


def one_run_rates(code_dir: str, args: list[str]) -> tuple[float, float]:
    """Events per wall second and per CPU second of one ``bench.apply`` run of the code in ``code_dir`` (a fresh
    process running this file, on the engine in ``code_dir``)."""
    env = {**os.environ, "PYTHONPATH": code_dir}
    done = subprocess.run([sys.executable, "-P", os.path.abspath(__file__), *args], cwd=code_dir, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    wall, cpu = _WALL_RATE.search(done.stdout), _CPU_RATE.search(done.stdout)
    if done.returncode or wall is None or cpu is None:
        raise RuntimeError(f"bench.apply run of {code_dir} failed: {done.stdout[-500:]}{done.stderr[-1500:]}")
    return float(wall.group(1).replace(",", "")), float(cpu.group(1).replace(",", ""))


_CALLGRIND_CHILD = "LIVESIGNALS_BENCH_CALLGRIND"
_COLLECTED = re.compile(r"Collected : ([0-9]+)")


def _instrument(switch: str) -> None:
    """Turn callgrind's instrumentation of this process on or off (``callgrind_control``)."""
    subprocess.run(["callgrind_control", "-i", switch, str(os.getpid())], check=True, capture_output=True)


def instructions(
    code_dir: str, events: int, customers: int, batch: int, models: str, more: tuple[str, ...] = ()
) -> float:
    """CPU instructions per event of the engine in ``code_dir`` (a fresh process under callgrind, run by
    this file's harness: see the module docstring; ``more``: further arguments of the harness, e.g. ``--depth``)."""
    harness = os.path.abspath(__file__)
    env = {**os.environ, "PYTHONPATH": code_dir, "PYTHONHASHSEED": "0", _CALLGRIND_CHILD: "1"}
    with tempfile.TemporaryDirectory() as where:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={where}/out",
             sys.executable, "-P", harness, "--events", str(events), "--customers", str(customers),
             "--batch", str(batch), "--models", models, *more],
            cwd=code_dir, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
    found = _COLLECTED.search(done.stderr)
    if done.returncode or found is None:
        raise RuntimeError(f"callgrind run of {code_dir} failed: {done.stdout[-500:]}{done.stderr[-1500:]}")
    return int(found.group(1)) / events


def compare_instructions(ref: str | None, args: argparse.Namespace, depth: int | None = None) -> None:
    """Instructions per event of our engine (and of ``ref``'s, alternately, when given), at ``depth`` events per
    customer of warm-up when given."""
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    more = tuple(_child_args(args, depth)[8:])  # --depth, --step-ms, --skew
    same = (args.events, args.customers, args.batch, args.models, more)
    at = f" at depth {depth}" if depth is not None else ""
    if ref is None:
        print(f"instructions_per_event{at}={instructions(ours, *same):,.0f}", flush=True)
        return
    from bench.reference import worktree

    with worktree(ref) as theirs:
        for tree in (theirs, ours):
            subprocess.run([sys.executable, "-c", _FILL_CACHE], cwd=tree, env={**os.environ, "PYTHONPATH": tree},
                           capture_output=True, check=False)  # fmt: skip
        old, new = instructions(theirs, *same), instructions(ours, *same)
    print(f"instructions per event{at}: {ref} {old:,.0f} ours {new:,.0f}: ratio {old / new:.3f} (theirs / ours)",
          flush=True)  # fmt: skip


def compare(ref: str, pairs: int, args: list[str]) -> None:
    """``ref``'s engine and ours in ``pairs`` alternating pairs of runs: each pair's ratio and the median."""
    from bench.reference import worktree

    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ratios = []
    with worktree(ref) as theirs:
        for tree in (theirs, ours):  # a fresh checkout compiles the validators once: not in a timed run
            subprocess.run([sys.executable, "-c", _FILL_CACHE], cwd=tree, env={**os.environ, "PYTHONPATH": tree},
                           capture_output=True, check=False)  # fmt: skip
        for i in range(pairs):
            old, new = one_run(theirs, args), one_run(ours, args)
            ratios.append(new / old)
            print(f"pair {i + 1}: {ref} {old:,.0f} ours {new:,.0f} events per CPU s: ratio {new / old:.2f}", flush=True)
    print(f"ratio to {ref} (events per CPU s, median of {pairs}): {statistics.median(ratios):.2f}")


def _shape(args: argparse.Namespace, depth: int) -> dict[str, Any]:
    """``messages``' keyword arguments for a run at ``depth`` events per customer of warm-up (``--depth`` given:
    ``bench.memory``'s stream shape, :data:`DEPTH_STEP_MS` and :data:`DEPTH_SKEW`, unless set)."""
    deep = args.depth is not None
    step = args.step_ms if args.step_ms is not None else (DEPTH_STEP_MS if deep else 20.0)
    skew = args.skew if args.skew is not None else (DEPTH_SKEW if deep else None)
    return {"warm": depth * args.customers, "step_ms": step, "skew": skew}


def _child_args(args: argparse.Namespace, depth: int | None) -> list[str]:
    """The command line of a fresh ``bench.apply`` run like this one, at ``depth`` (None: no ``--depth``)."""
    out = ["--events", str(args.events), "--customers", str(args.customers), "--batch", str(args.batch),
           "--models", args.models]  # fmt: skip
    if depth is not None:
        out += ["--depth", str(depth)]
    if args.step_ms is not None:
        out += ["--step-ms", str(args.step_ms)]
    if args.skew is not None:
        out += ["--skew", str(args.skew)]
    return out


def by_depth(args: argparse.Namespace, depths: list[int]) -> None:
    """Events per wall and CPU second at each depth, fresh processes (with ``--compare-ref``: that commit's
    engine then ours, ``--pairs`` times per depth), in one run."""
    from bench.reference import worktree

    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with worktree(args.compare_ref) if args.compare_ref else contextlib.nullcontext(None) as theirs:
        trees = [(args.compare_ref, theirs), ("ours", ours)] if theirs else [("ours", ours)]
        for _, tree in trees:
            subprocess.run([sys.executable, "-c", _FILL_CACHE], cwd=tree, env={**os.environ, "PYTHONPATH": tree},
                           capture_output=True, check=False)  # fmt: skip
        for depth in depths:
            for i in range(args.pairs if theirs else 1):
                for name, tree in trees:
                    wall, cpu = one_run_rates(tree, _child_args(args, depth))
                    print(f"depth={depth} run={i + 1} {name}: events_per_s={wall:,.0f} events_per_cpu_s={cpu:,.0f} "
                          f"load={os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip


def main() -> None:
    """Parse arguments, run once (or pairs against ``--compare-ref``, or per ``--depth``), print events/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--customers", type=int, default=3_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--models", choices=("on", "off"), default="on")
    parser.add_argument("--depth", help="events per customer applied before the counted part (not counted); "
                        "comma-separated for several runs, e.g. 2,20,100")  # fmt: skip
    parser.add_argument("--step-ms", type=float, help=f"event time between events (default 20; {DEPTH_STEP_MS:g} "
                        "with --depth)")  # fmt: skip
    parser.add_argument("--skew", type=float,
                        help=f"activity skew (default the simulator's; {DEPTH_SKEW} with --depth)")  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="print the run's profile (slows it down)")
    parser.add_argument("--compare-ref", help="also run this git commit's engine, in alternating pairs with ours")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--gc", choices=("engine", "python"), default="engine",
                        help="the engine's collector settings (flows.heap), or Python's defaults")  # fmt: skip
    parser.add_argument("--callgrind", action="store_true", help="count CPU instructions per event (valgrind)")
    args = parser.parse_args()
    depths = [int(d) for d in args.depth.split(",")] if args.depth is not None else [0]
    if os.environ.get(_CALLGRIND_CHILD):  # a run under callgrind (instructions): counted around the batches only
        shape = _shape(args, depths[0])
        msgs = messages(args.events, args.customers, now_ms=FIXED_NOW_MS, **shape)
        run(
            msgs,
            args.batch,
            args.models == "on",
            clock=lambda: FIXED_NOW_MS / 1000 + 60,
            around=_instrument,
            fixed_checkpoints=True,
            warm=shape["warm"],
        )
        return
    if args.callgrind:
        for depth in depths:
            compare_instructions(args.compare_ref, args, depth if args.depth is not None else None)
        return
    if args.depth is not None and (len(depths) > 1 or args.compare_ref):
        by_depth(args, depths)
        return
    if args.compare_ref:
        compare(args.compare_ref, args.pairs, _child_args(args, None))
        return
    shape = _shape(args, depths[0])
    msgs = messages(args.events, args.customers, **shape)
    before = stage_seconds()
    tune = args.gc == "engine"
    collector = GcClock()

    def once(around: Callable[[str], None] = lambda _: None) -> tuple[float, float]:
        return run(msgs, args.batch, args.models == "on", tune, collector, around=around, warm=shape["warm"])

    if args.profile:
        (wall, cpu), text = profiled(once)
        print(text)
    else:
        wall, cpu = once()
    print(f"events={args.events} depth={depths[0]} models={args.models} events_per_s={wall:,.0f} "
          f"events_per_cpu_s={cpu:,.0f}")  # fmt: skip
    print(f"gc={args.gc}: {collector.share:.1%} of the CPU in the collector "
          f"(s by generation {[round(s, 3) for s in collector.seconds]}, collections {collector.collections}), "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")  # fmt: skip
    spent = {stage: seconds - before.get(stage, 0.0) for stage, seconds in stage_seconds().items()}
    total = sum(spent.values()) or 1.0
    print("batch time by stage: " + ", ".join(f"{stage} {seconds / total:.0%}" for stage, seconds in spent.items()))


if __name__ == "__main__":
    main()
