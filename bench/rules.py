"""The cost of the rules language on the shipped catalogue, per event.

Runs the reference simulator through the engine in process (no Kafka, no
Redis) and keeps each event's rule context, materialised into plain values
(so the lazy window and ``derived`` values are computed once, outside the
timing). Then times, on those contexts, every compiled piece of the shipped
catalogue a rule can run per event: each flag's ``raise_when`` and
``clear_when``, each action's ``eligible_when``, ``value`` and ``item`` (the
"conditions" figure), and every reason template and evidence reader (the
"reasons" figure; in production a reason renders only when its rule fires).
Best of ``--repeat`` runs, in nanoseconds per event.

Uses only the rules API that every version has, so the same script measures
an older checkout (``PYTHONPATH=/path/to/old/tree python -m bench.rules``)
for a before/after ratio.

    python -m bench.rules [--events 20000] [--repeat 5] [--contexts FILE]

``--contexts FILE`` keeps the contexts in a pickle (made on the first run) so
that alternating short runs of two checkouts time the same work.
"""

from __future__ import annotations

import argparse
import copy
import os
import pickle
import time
from typing import Any

import operators.engine as engine_module
from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.settings import Settings
from operators.engine import Engine, _rules_path
from operators.rules.rulebook import FIELDS, Rulebook
from state.memory import InMemoryStore

_LAZY_ROOTS = ("w1h", "w24h", "w7d", "w30d", "rfm", "derived")


class _Discard:
    def publish(self, records: list[Any]) -> None:
        """Drop the engine's output: only the contexts matter here."""


def contexts(events: int, seed: int = 7) -> list[dict[str, Any]]:
    """Every event's rule context, as plain values, from the engine on the reference stream."""
    captured: list[dict[str, Any]] = []
    original = engine_module.context

    def capture(*args: Any, **kwargs: Any) -> Any:
        ctx = original(*args, **kwargs)
        plain = {root: ctx[root] for root in ("event", "identity", "activity", "history", "value", "consent",
                                               "flags", "predictions")}  # fmt: skip
        for root in _LAZY_ROOTS:
            lazy = ctx[root]
            plain[root] = {name: lazy.get(name) for name in FIELDS.get(root, lazy.keys())}
        captured.append(copy.deepcopy(plain))
        return ctx

    engine_module.context = capture
    try:
        start = int(time.time() * 1000) - 6 * 3_600_000
        sim = Simulator(SimulatorConfig(customers=max(100, events // 20), seed=seed, start_ms=start, step_ms=20.0))
        engine = Engine(Settings(metrics_port=0), InMemoryStore(), _Discard())
        batch: list[RawMessage] = []
        for i, (e, _) in enumerate(sim.stream(events)):
            batch.append(RawMessage(serde.dumps(e), b"k", Origin("bench.in", 0, i, e["event_time"])))
            if len(batch) == 500:
                engine.process(batch)
                batch = []
        if batch:
            engine.process(batch)
    finally:
        engine_module.context = original
    return captured


def time_rules(book: Rulebook, ctxs: list[dict[str, Any]], repeat: int) -> dict[str, float]:
    """Nanoseconds per event: the conditions, and the reasons with evidence."""
    conditions = [r.raise_when for r in book.flags] + [r.clear_when for r in book.flags if r.clear_when]
    conditions += [r.eligible_when for r in book.actions] + [r.value for r in book.actions]
    conditions += [r.item for r in book.actions if r.item]
    renders = [r.reason.render for r in book.flags] + [r.reason.render for r in book.actions]
    readers = [read for r in book.flags for read in r.evidence]

    def best(functions: list[Any]) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter_ns()
            for ctx in ctxs:
                for f in functions:
                    f(ctx)
            times.append(time.perf_counter_ns() - started)
        return min(times) / len(ctxs)

    return {"conditions_ns_per_event": best(conditions), "reasons_ns_per_event": best(renders + readers)}


def main(argv: list[str] | None = None) -> None:
    """Print the cost of the shipped catalogue per event."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--contexts", help="pickle of the contexts: read if it exists, else written")
    args = parser.parse_args(argv)
    path = _rules_path("")
    assert path is not None
    book = Rulebook.load(path)
    if args.contexts and os.path.exists(args.contexts):
        with open(args.contexts, "rb") as fh:
            ctxs = pickle.load(fh)
    else:
        ctxs = contexts(args.events)
        if args.contexts:
            with open(args.contexts, "wb") as fh:
                pickle.dump(ctxs, fh)
    figures = time_rules(book, ctxs, args.repeat)
    print(f"{len(ctxs)} contexts, {len(book.flags)} flags, {len(book.actions)} actions")
    for name, value in figures.items():
        print(f"{name}: {value:,.0f}")


if __name__ == "__main__":
    main()
