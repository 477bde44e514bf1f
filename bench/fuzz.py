"""Fuzz the contract and the engine: ``python -m bench.fuzz`` (issue 9: >= 1M / >= 100k executions).

Two phases, each printing executions, crashes (exceptions other than
``InvalidEvent`` out of ``decode``; any exception out of ``Engine.process``) and
property failures (``tests/fuzzing.py``: an accepted event without the types the
engine relies on, a message not applied/skipped/dead-lettered exactly once, a
``processing_error``, a 360 that cannot be built):

1. **decode**, coverage-guided by atheris (libFuzzer) where ``pip install atheris``
   works, seeded with valid events of every type and the poison corpus; else the
   seeded mutator of ``tests/fuzzing.py``. Runs in a child process (libFuzzer owns it).
2. **engine**: ``Engine.process`` on the in-memory store with a list publisher, in
   batches of hostile messages from the seeded mutator (reproducible by ``--seed``).

Exit status 1 if anything crashed or a property failed. Figures go to stdout.

    python -m bench.fuzz                                   # 1,000,000 decode, 100,000 engine
    python -m bench.fuzz --decode-runs 20000 --engine-events 2000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from livesignals.contract import RawMessage, decode
from livesignals.errors import InvalidEvent, Origin
from tests.fuzzing import Mutator, check_event, check_rejection
from tests.helpers import T0

NOW_MS = T0 + 31 * 86_400_000
ORIGIN = Origin("fuzz", 0, 0)


class Tally:
    """Executions, crashes and property failures, with the first example of each kind."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self.executions = 0
        self.crashes = 0
        self.property_failures = 0
        self.examples: dict[str, str] = {}
        self.outcomes: dict[str, int] = {}
        """Engine phase: messages applied, replay-skipped, dead-lettered (by reason)."""
        self.started = time.perf_counter()

    def crash(self, exc: BaseException, data: Any) -> None:
        """An exception escaped."""
        self.crashes += 1
        self._example(f"crash {type(exc).__name__}", exc, data)

    def failure(self, exc: BaseException, data: Any) -> None:
        """A property did not hold."""
        self.property_failures += 1
        self._example(f"property {exc}", exc, data)

    def _example(self, key: str, exc: BaseException, data: Any) -> None:
        if len(self.examples) < 20 and key not in self.examples:
            tb = "".join(traceback.format_exception(exc)[-3:])
            self.examples[key[:200]] = f"{tb}input: {repr(data)[:300]}"

    def summary(self) -> dict[str, Any]:
        """What to print."""
        seconds = time.perf_counter() - self.started
        return {
            "phase": self.phase, "executions": self.executions, "crashes": self.crashes,
            "property_failures": self.property_failures, "seconds": round(seconds, 1),
            "executions_per_s": round(self.executions / seconds) if seconds else 0, "outcomes": self.outcomes,
            "examples": self.examples,
        }  # fmt: skip


def decode_once(data: bytes | None, tally: Tally) -> None:
    """One execution of the decode properties."""
    tally.executions += 1
    try:
        event = decode(data, ORIGIN, now_ms=NOW_MS)
    except InvalidEvent as exc:
        try:
            check_rejection(exc)
        except AssertionError as failure:
            tally.failure(failure, data)
        return
    except Exception as exc:
        tally.crash(exc, data)
        return
    try:
        check_event(event)
    except AssertionError as failure:
        tally.failure(failure, data)


def fuzz_decode_mutator(runs: int, seed: int) -> dict[str, Any]:
    """Decode phase without atheris: the seeded mutator."""
    tally, mutator = Tally("decode (seeded mutator)"), Mutator(seed)
    for _ in range(runs):
        decode_once(mutator.message(), tally)
    return tally.summary()


def fuzz_decode_atheris(runs: int, seed: int) -> dict[str, Any] | None:
    """Decode phase under atheris in a child process; None if atheris is not installed."""
    try:
        import atheris  # noqa: F401
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as corpus, tempfile.NamedTemporaryFile(suffix=".json") as out:
        mutator = Mutator(seed)
        for i, raw in enumerate(mutator.templates + [p for p in mutator.poison if p]):
            Path(corpus, f"seed-{i}").write_bytes(raw)
        argv = [sys.executable, "-m", "bench.fuzz", "--atheris-child", str(runs), out.name, corpus,
                f"-seed={seed + 1}", "-max_len=4096", f"-runs={runs + 10}", "-print_final_stats=0"]  # fmt: skip
        child = subprocess.run(argv, capture_output=True, text=True, check=False)
        text = Path(out.name).read_text()
        if not text:
            print(child.stdout[-3000:], child.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"atheris child exited {child.returncode} without a summary")
        summary: dict[str, Any] = json.loads(text)
        return summary


def _atheris_child(runs: int, out_path: str, libfuzzer_args: list[str]) -> None:
    """Runs inside the child: libFuzzer calls the target until ``runs``, then the summary is written."""
    import atheris

    with atheris.instrument_imports():
        import fastjsonschema  # noqa: F401

        import livesignals.contract
        import livesignals.identifiers  # noqa: F401
    tally = Tally("decode (atheris, coverage-guided)")

    def target(data: bytes) -> None:
        decode_once(data, tally)
        if tally.executions >= runs:
            Path(out_path).write_text(json.dumps(tally.summary()))
            os._exit(0)

    atheris.Setup([sys.argv[0], *libfuzzer_args], target)
    atheris.Fuzz()


def fuzz_engine(events: int, seed: int, batch_size: int = 50) -> dict[str, Any]:
    """Engine phase: hostile batches through ``Engine.process`` on the in-memory store."""
    from livesignals.settings import Settings
    from operators.engine import Engine
    from state.memory import InMemoryStore
    from tests.fuzzing import ListPublisher, check_report, the_360

    tally, mutator = Tally("engine (decode -> Engine.process -> 360)"), Mutator(seed)
    store = InMemoryStore()
    engine = Engine(Settings(metrics_port=0), store, ListPublisher(), clock=lambda: NOW_MS / 1000)
    offset, batches = 0, 0
    while tally.executions < events:
        msgs = []
        for _ in range(batch_size):
            msgs.append(RawMessage(mutator.message(), b"k", Origin("fuzz", offset % 4, offset, NOW_MS)))
            offset += 1
        tally.executions += len(msgs)
        try:
            report = engine.process(msgs)
        except Exception as exc:
            tally.crash(exc, [m.value for m in msgs][:3])
            engine.forget()
            continue
        for name, n in [("applied", report.applied), ("replay_skipped", report.replay_skipped),
                        ("duplicate", report.duplicates),
                        *[(f"dead:{d.reason.value}", 1) for d in report.dead_letters]]:  # fmt: skip
            tally.outcomes[name] = tally.outcomes.get(name, 0) + n
        try:
            check_report(report, len(msgs))
        except AssertionError as failure:
            tally.failure(failure, [d.detail for d in report.dead_letters][:3])
        batches += 1
        if batches % 200 == 0 or tally.executions >= events:
            for state in store.states.values():
                try:
                    the_360(state, NOW_MS)
                except Exception as exc:
                    tally.failure(exc, state.customer_key)
            engine.publisher.records.clear()  # type: ignore[attr-defined]
    return tally.summary()


def main(argv: list[str] | None = None) -> int:
    """Run both phases and print their figures; 1 if anything crashed or failed."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--atheris-child":
        _atheris_child(int(argv[1]), argv[2], argv[3:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--decode-runs", type=int, default=1_000_000)
    parser.add_argument("--engine-events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-atheris", action="store_true", help="use the seeded mutator for decode too")
    args = parser.parse_args(argv)

    import logging

    logging.disable(logging.CRITICAL)  # the engine logs every dead-lettered event; the tally counts them
    results = []
    decoded = None if args.no_atheris else fuzz_decode_atheris(args.decode_runs, args.seed)
    results.append(decoded or fuzz_decode_mutator(args.decode_runs, args.seed))
    _print(results[-1])
    results.append(fuzz_engine(args.engine_events, args.seed))
    _print(results[-1])
    return 1 if any(r["crashes"] or r["property_failures"] for r in results) else 0


def _print(r: dict[str, Any]) -> None:
    print(f"{r['phase']}: executions {r['executions']:,}  crashes {r['crashes']}  "
          f"property failures {r['property_failures']}  ({r['seconds']} s, {r['executions_per_s']:,}/s)")  # fmt: skip
    if r.get("outcomes"):
        print("  outcomes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(r["outcomes"].items())))
    for key, example in r["examples"].items():
        print(f"  {key}\n    " + example.replace("\n", "\n    "))
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
