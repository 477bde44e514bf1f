"""The fault suite: each fault against an uninterrupted run over the same 4-partition input.

    .venv/bin/python -m bench.faults                     # every scenario (~20 min)
    .venv/bin/python -m bench.faults --only kill9 --events 30000 --redis-down-s 30
    .venv/bin/python -m bench.faults --only kill9 --models on   # models on: see below

Scenarios: ``kill9`` (SIGKILL x ``--kills`` at random points, the first within
the first seconds), ``two_engines`` (started together), ``redis_empty`` (Redis
restarted empty mid-stream), ``redis_down`` (Redis stopped ``--redis-down-s``,
AOF kept), ``broker_down`` (the broker frozen ``--broker-down-s``),
``cluster_refusing`` (a Redis Cluster master refusing writes mid-commit) and
``two_processes`` (two Bytewax processes share the 4 partitions),
``redis_empty_republish`` (``redis_empty`` as before session 15: the replay publishes its outputs again below
the offsets committed before the loss; not in the default list: ``--only redis_empty_republish --only
redis_empty`` compares the two on the same input), and
``cluster_rollback`` (a Cluster master restarted from an older snapshot: the
test's scenario, tests/integration/test_cluster_rollback.py). A share of the
customers (``--misrouted``, default 0.25) have their events keyed by a visitor
cookie, as a mis-keyed web tracker would: about 3/4 of them land on a partition
that does not own the customer and go through the scenario's own repartition topic, so the
repartition path is under every fault too; a run ends once the input *and*
the repartition topic are committed. Each prints:
events lost and double counted (per customer, against the reference run's
profiles), whether the partition aggregates equal the reference's, trigger
records whose id repeats (at-least-once outputs: harmless, consumers dedupe),
trigger ids missing or extra against the reference, and the recovery time
(fault cleared -> the engine commits again beyond where it was; for the Redis faults also the engine's CPU
seconds over it, ``recovery_cpu_s``: the replay's cost, steadier than its wall time on a shared machine).

``--models on`` runs the engine as deployed, with the online models: what is
model-derived (scores, the flags and triggers decided from them; the list is in
:mod:`tests.faults_models`) may differ from the reference after a fault, so
the figures then compare everything else exactly -- profiles without their
predictions, KPIs, non-model flags, and ids on every output topic, each saying
one thing -- and print ``labels learned: reference vs fault run`` (lessons kept
by the shared learner, per kind). Default ``off``: with models on the suite
takes about twice as long (the engine's models-on throughput is about half),
beyond its time budget.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from app import embedded
from app.engine_process import engine_argv, engine_env, start_engine, stop_process
from bench.common import committed, produce_events, reference_simulator, write_result
from bench.faults_outcome import compare, compare_models_on, first, resume_offsets, state, topic_ends
from flows.startup import read_steps
from livesignals.settings import Settings

N_DEFAULT = 100_000
"""Enough input for ``--kills 20`` on a quiet machine: a kill cycle commits ~1-5k events there (fewer under
load), and kill9 stops killing once the input is all committed (it then says how many kills happened)."""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=N_DEFAULT)
    ap.add_argument("--kills", type=int, default=20, help="kill9: SIGKILLs (fewer if --events runs out first)")
    ap.add_argument("--redis-down-s", type=float, default=120.0)
    ap.add_argument("--broker-down-s", type=float, default=100.0)
    ap.add_argument("--only", action="append", help="run only these scenarios, in this order")
    ap.add_argument("--models", choices=("on", "off"), default="off", help="online models on or off (see above)")
    ap.add_argument("--misrouted", type=float, default=0.25, help="share of customers keyed by a cookie")
    args = ap.parse_args(argv)
    models = args.models == "on"
    exact = args.misrouted == 0  # misrouted: aggregates as read (bench.faults_outcome.kpis)
    _compile_bytecode()
    with embedded.start_kafka() as broker, embedded.start_redis(prefer_system=True) as redis_server:
        base = _settings(broker.address, f"redis://{redis_server.address}/0", "ref", models)
        from app.topics import ensure_topics

        ensure_topics(base)
        sim = reference_simulator(3000, step_ms=50)
        produce_events(sim, broker.address, base.input_topics[0], args.events, misrouted=args.misrouted)
        reference = _drain(base, args.events, models, exact)
        scenarios = {
            "kill9": lambda s: _kill9(s, args.events, args.kills),
            "two_engines": lambda s: _two_engines(s, args.events),
            "redis_empty": lambda s: _redis_restart(s, args.events, persist=False, down_s=0.0),
            "redis_empty_republish": lambda s: _redis_restart(
                s.replace(republish_replays=True), args.events, persist=False, down_s=0.0
            ),
            "redis_down": lambda s: _redis_restart(s, args.events, persist=True, down_s=args.redis_down_s),
            "broker_down": lambda s: _broker_down(s, args.events, broker, args.broker_down_s),
            "two_processes": lambda s: _two_processes(s, args.events),
        }
        results: dict[str, Any] = {}
        default = [name for name in scenarios if name != "redis_empty_republish"]
        for name in args.only or [*default, *_CLUSTER_TESTS]:  # in the order asked for
            if name in _CLUSTER_TESTS:
                results[name] = _cluster_test(_CLUSTER_TESTS[name])
                print(name, results[name], flush=True)
                continue
            run = scenarios[name]
            s = _settings(broker.address, base.redis_url, name, models)
            ensure_topics(s)  # the scenario's own repartition topic
            started = time.monotonic()
            try:
                recovery = run(s)
            except (RuntimeError, TimeoutError) as exc:  # a scenario that never finished: said, and the suite goes on
                took = round(time.monotonic() - started, 1)
                results[name] = {"error": f"{type(exc).__name__}: {exc}", "wall_s": took}
                print(name, results[name], flush=True)
                continue
            got = state(s if not isinstance(recovery, tuple) else recovery[1], models, exact)
            compared = compare_models_on(reference, got) if models else compare(reference, got)
            results[name] = {**compared, "recovery_s": first(recovery), "wall_s": round(time.monotonic() - started, 1)}
            if name.startswith("redis_") and _RECOVERY_CPU:
                results[name]["recovery_cpu_s"] = _RECOVERY_CPU.pop()
            if name == "kill9" and _STARTUP_STEPS:
                results[name]["startup_p50_wall_cpu_s"] = _steps_p50(_STARTUP_STEPS)
            print(name, {k: v for k, v in results[name].items() if k != "labels_learned"}, flush=True)
            if models:
                print(f"  labels learned: reference vs fault run {results[name]['labels_learned']}", flush=True)
    write_result("faults" if not models else "faults-models-on", results)


def _compile_bytecode() -> None:
    """Compile the engine's modules to bytecode once, as an installed wheel has them: a checkout run with
    ``PYTHONDONTWRITEBYTECODE`` (or never run before) would otherwise compile every module at every
    engine start -- ~0.3 s of CPU on each kill -9 restart that a deployment does not pay."""
    import compileall

    root = Path(__file__).resolve().parents[1]
    for package in ("livesignals", "models", "operators", "state", "flows", "app"):
        compileall.compile_dir(root / package, quiet=1)


def _settings(kafka: str, redis_url: str, name: str, models: bool) -> Settings:
    tag = f"{name}-{uuid.uuid4().hex[:4]}"
    return Settings.load(env={}).replace(
        kafka_bootstrap=kafka, redis_url=redis_url, key_prefix=f"f-{tag}", input_topics=("faults.in",),
        repartition_topic=f"faults.rep.{tag}", dead_letter_topic=f"faults.dlq.{tag}", flags_topic=f"faults.flags.{tag}",
        triggers_topic=f"faults.triggers.{tag}", decisions_topic=f"faults.decisions.{tag}",
        consumer_group=f"g-{tag}", metrics_port=0, topic_partitions=4, log_level="WARNING", quiet_hours="0-0",
        batch_size=500, models_enabled=models,  # the default backoff (0.5 s .. 30 s): recovery must not wait it out
        kafka_fetch_wait_ms=embedded.FETCH_WAIT_MS,  # the embedded broker's (break-test 19a, A1)
        models_checkpoint_every_s=10**6,  # checkpoints by count only: the lesson log stays whole for the comparison
        policy_clock="stream",  # sends judged at stream time: outputs a function of the input, not of when a run ran
    )  # fmt: skip


def _run_until_committed(s: Settings, n: int, procs: list[subprocess.Popen[bytes]]) -> None:
    """Wait until ``n`` messages are committed by ``procs``, then stop them all."""
    try:
        _wait(s, n, procs, final=True)
    finally:
        for p in procs:
            stop_process(p)


def _wait(
    settings: Settings, target: int, procs: list[subprocess.Popen[bytes]], timeout_s: float = 900.0, final: bool = False
) -> float:
    """Until ``target`` are committed; returns when. Fails if every engine exited.

    ``final``: then also until the repartition topic is committed to its end (the reroutes of the last
    batches are applied only when read back from there; they are all in the topic once the input is committed)."""
    deadline = time.monotonic() + timeout_s
    ends: dict[int, int] | None = None
    while True:
        if committed(settings) >= target:
            if not final:
                break
            ends = ends if ends is not None else topic_ends(settings.kafka_bootstrap, settings.repartition_topic)
            done = resume_offsets(settings, settings.repartition_topic)
            if all(done.get(p, 0) >= end for p, end in ends.items()):
                break
        if all(p.poll() is not None for p in procs):
            raise RuntimeError(f"every engine exited ({[p.returncode for p in procs]}) at {committed(settings)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{committed(settings)}/{target}")
        time.sleep(0.02)
    return time.monotonic()


def _progress_after(settings: Settings, mark: int, procs: list[subprocess.Popen[bytes]]) -> float:
    """Seconds until the engine commits beyond ``mark`` again."""
    t0 = time.monotonic()
    return round(_wait(settings, mark + 1, procs) - t0, 2)


def _drain(settings: Settings, n: int, models: bool, exact: bool = True) -> dict[str, Any]:
    proc = start_engine(settings)
    try:
        _wait(settings, n, [proc], final=True)
    finally:
        stop_process(proc)
    return state(settings, models, exact)


def _kill9(s: Settings, n: int, kills: int) -> list[float]:
    rng = random.Random(1)
    recoveries = []
    logged = s.replace(log_level="INFO")  # the restarted engine's start-up line (flows.startup) is read back
    steps: list[dict[str, tuple[float, float]]] = []
    for i in range(kills):
        proc = start_engine(s)
        time.sleep(rng.uniform(0.5, 3.0) if i == 0 else rng.uniform(1.0, 4.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        mark = committed(s)
        if mark >= n:
            break
        with tempfile.TemporaryFile() as log:
            proc = start_engine(logged, log=log)
            try:
                recoveries.append(_progress_after(s, mark, [proc]) if mark < n else 0.0)
            finally:
                stop_process(proc)
            log.seek(0)
            steps.append(read_steps(log.read().decode(errors="replace")))
    _STARTUP_STEPS[:] = steps
    if len(recoveries) < kills:
        print(f"kill9: only {len(recoveries)} of {kills} kills before the input ran out: raise --events", flush=True)
    proc = start_engine(s)
    try:
        _wait(s, n, [proc], final=True)
    finally:
        stop_process(proc)
    return recoveries


_STARTUP_STEPS: list[dict[str, tuple[float, float]]] = []
"""kill9: each restart's start-up steps, (wall, cpu) seconds since its process started."""


def _steps_p50(steps: list[dict[str, tuple[float, float]]]) -> dict[str, str]:
    """Per step, the median wall and CPU seconds since the process started, as ``"wall/cpu"``."""

    def median(step: str, i: int) -> float:
        return statistics.median(one[step][i] for one in steps if step in one)

    names = sorted({k for one in steps for k in one}, key=lambda k: median(k, 0))
    return {k: f"{median(k, 0):.2f}/{median(k, 1):.2f}" for k in names}


def _two_engines(s: Settings, n: int) -> float:
    procs = [start_engine(s), start_engine(s)]
    _run_until_committed(s, n, procs)
    return 0.0


def _redis_restart(s: Settings, n: int, persist: bool, down_s: float) -> tuple[float, Settings]:
    workdir = Path(tempfile.mkdtemp(prefix="faults-redis-"))
    port = embedded.free_port()
    server = _redis_at(port, workdir, persist)
    s = s.replace(redis_url=f"redis://127.0.0.1:{port}/0", log_level="INFO")
    log = open(workdir / "engine.log", "wb")  # noqa: SIM115 - kept open while the engine writes it
    print(f"{'redis_down' if persist else 'redis_empty'}: engine log {workdir / 'engine.log'}", flush=True)
    proc = start_engine(s, log=log)
    try:
        _wait(s, n // 3, [proc])
        mark = committed(s)
        stop_process(server)
        time.sleep(down_s)
        server = _redis_at(port, workdir, persist)
        trace = _trace_commits(s, mark)
        cpu = _cpu_s(proc.pid)
        recovery = _progress_after(s, mark, [proc])
        _RECOVERY_CPU.append(round(_cpu_s(proc.pid) - cpu, 2))
        print(f"  committed after the restart (s, messages; mark {mark}): {trace}", flush=True)
        _wait(s, n, [proc], final=True)
        alive = proc.poll() is None
        if not alive:
            raise RuntimeError(f"engine exited with {proc.returncode}")
        return recovery, s
    finally:
        stop_process(proc)
        # state is read while the server still runs: the caller reads it through ``s``
        _KEEP.append(server)


_KEEP: list[subprocess.Popen[bytes]] = []

_RECOVERY_CPU: list[float] = []
"""redis_empty / redis_down: the engine's CPU seconds from the fault's end to its recovery (the replay's cost,
steadier than its wall time on a machine shared with other work)."""


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _trace_commits(s: Settings, mark: int) -> list[tuple[float, int]]:
    """Every 2 s until the engine commits beyond ``mark`` (at most 10 min): seconds since now, messages committed
    -- where a recovery's time goes (waiting, then the replay's throughput). Filled by a daemon thread."""
    import threading

    out: list[tuple[float, int]] = []
    t0 = time.monotonic()

    def run() -> None:
        while time.monotonic() - t0 < 600:
            try:
                done = committed(s)
            except Exception:  # Redis not answering yet
                done = -1
            out.append((round(time.monotonic() - t0, 1), done))
            if done > mark:
                return
            time.sleep(2)

    threading.Thread(target=run, daemon=True).start()
    return out


def _redis_at(port: int, workdir: Path, persist: bool) -> subprocess.Popen[bytes]:
    argv = [embedded.valkey_binary(prefer_system=True), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--dir", str(workdir)]  # fmt: skip
    argv += ["--appendonly", "yes", "--appendfsync", "always"] if persist else ["--appendonly", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    embedded.wait_for_port(port, proc=proc)
    import redis

    while True:
        try:
            redis.Redis(port=port).ping()
            return proc
        except redis.BusyLoadingError:  # replaying its AOF
            time.sleep(0.05)


def _broker_down(s: Settings, n: int, broker: embedded.Service, down_s: float) -> float:
    log = tempfile.NamedTemporaryFile(prefix="faults-broker-down-", suffix=".log", delete=False)  # noqa: SIM115
    print(f"broker_down: engine log {log.name}", flush=True)
    proc = start_engine(s.replace(log_level="INFO"), log=log)
    try:
        _wait(s, n // 3, [proc])
        mark = committed(s)
        os.killpg(broker.proc.pid, signal.SIGSTOP)
        time.sleep(down_s)
        os.killpg(broker.proc.pid, signal.SIGCONT)
        recovery = _progress_after(s, mark, [proc])
        _wait(s, n, [proc], final=True)
        return recovery
    finally:
        stop_process(proc)


def _two_processes(s: Settings, n: int) -> float:
    ports = [embedded.free_port(), embedded.free_port()]
    addresses = ";".join(f"127.0.0.1:{p}" for p in ports)
    procs = []
    for i in range(2):
        argv = engine_argv("-i", str(i), "-a", addresses)
        procs.append(subprocess.Popen(argv, env=engine_env(s), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
    _run_until_committed(s, n, procs)
    return 0.0


_CLUSTER_TESTS = {
    "cluster_refusing": "tests/integration/test_cluster_commits.py",
    "cluster_rollback": "tests/integration/test_cluster_rollback.py",
}
"""Redis Cluster scenarios: the tests that build them, each on a three-master cluster, against an uninterrupted run."""


def _cluster_test(path: str) -> dict[str, Any]:
    """A Cluster test's scenario, measured: its assertions are lost 0, double counted 0, state equal."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", path]
    t0 = time.monotonic()
    ok = subprocess.run(cmd, capture_output=True, check=False).returncode == 0
    return {"lost": 0 if ok else None, "double_counted": 0 if ok else None, "equal_to_reference": ok,
            "wall_s": round(time.monotonic() - t0, 1)}  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    finally:
        for server in _KEEP:
            stop_process(server)
