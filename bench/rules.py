"""The cost of the rules language on the shipped catalogue, per event.

Runs the reference simulator through the engine in process (no Kafka, no
Redis) and keeps each event's rule context, materialised into plain values
(so the lazy window and ``derived`` values are computed once, outside the
timing). Then times, on those contexts, every compiled piece of the shipped
catalogue a rule can run per event: each flag's ``raise_when`` and
``clear_when``, each action's ``eligible_when``, ``value`` and ``item`` (the
"conditions" figure), and every reason template and evidence reader (the
"reasons" figure; in production a reason renders only when its rule fires).
CPU nanoseconds per event (the machine is shared; wall time drifts).

``--against TREE`` compiles the same catalogue with another checkout's
``operators/rules/expressions.py`` and ``templates.py`` and alternates the
two in one process: the median ratio is the before/after figure.
``--contexts FILE`` keeps the contexts in a pickle (made on the first run).

    python -m bench.rules [--events 20000] [--repeat 7] [--contexts FILE] [--against TREE]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import inspect
import os
import pickle
import statistics
import sys
import time
import tomllib
from typing import Any

import operators.engine as engine_module
from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.settings import Settings
from operators.engine import Engine, _rules_path
from operators.rules import expressions as this_expressions
from operators.rules import templates as this_templates
from operators.rules.rulebook import FIELDS, ROOTS
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


def pieces(expressions: Any, templates: Any) -> tuple[list[Any], list[Any]]:
    """The shipped catalogue compiled by these modules: (conditions, reasons and evidence readers).

    Compiled as the rulebook compiles them (with an error handler where the
    language has one), from the TOML directly, so another checkout's modules
    can compile the same text.
    """
    path = _rules_path("")
    assert path is not None
    with open(path, "rb") as fh:
        doc = tomllib.load(fh)
    extra = (
        {"on_error": lambda exc: None}
        if "on_error" in inspect.signature(expressions.compile_condition).parameters
        else {}
    )
    conditions, reasons = [], []
    for kind, keys in (("flag", ("raise_when", "clear_when")), ("action", ("eligible_when", "value", "item"))):
        for table in doc.get(kind, []):
            conditions += [expressions.compile_condition(table[k], ROOTS, FIELDS, **extra) for k in keys if k in table]
            reasons.append(templates.Template(table.get("reason", table["name"]), ROOTS, FIELDS, **extra).render)
            reasons += [expressions.compile_condition(p, ROOTS, FIELDS, **extra) for p in table.get("evidence", [])]
    return conditions, reasons


def cpu_ns_per_event(functions: list[Any], ctxs: list[dict[str, Any]]) -> float:
    """CPU time (not wall time: the machine is shared) to run every function on every context, per context."""
    started = time.process_time_ns()
    for ctx in ctxs:
        for f in functions:
            f(ctx)
    return (time.process_time_ns() - started) / len(ctxs)


def load_modules(tree: str) -> tuple[Any, Any]:
    """The expressions and templates modules of another checkout, under private names."""
    loaded = []
    saved = sys.modules.get("operators.rules.expressions")
    try:
        for name in ("expressions", "templates"):
            spec = importlib.util.spec_from_file_location(f"_other_{name}", f"{tree}/operators/rules/{name}.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            if name == "expressions":  # the other templates import the other expressions
                sys.modules["operators.rules.expressions"] = module
            loaded.append(module)
    finally:
        if saved is not None:
            sys.modules["operators.rules.expressions"] = saved
    return loaded[0], loaded[1]


def main(argv: list[str] | None = None) -> None:
    """Print the cost of the shipped catalogue per event (and the ratio to another checkout)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--contexts", help="pickle of the contexts: read if it exists, else written")
    parser.add_argument("--against", metavar="TREE", help="another checkout: time its rules language alternately")
    args = parser.parse_args(argv)
    if args.contexts and os.path.exists(args.contexts):
        with open(args.contexts, "rb") as fh:
            ctxs = pickle.load(fh)
    else:
        ctxs = contexts(args.events)
        if args.contexts:
            with open(args.contexts, "wb") as fh:
                pickle.dump(ctxs, fh)
    versions = {"this": pieces(this_expressions, this_templates)}
    if args.against:
        versions["other"] = pieces(*load_modules(args.against))
    runs: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):  # alternate, so that drift hits both alike
        for version, (conditions, reasons) in versions.items():
            runs.setdefault((version, "conditions"), []).append(cpu_ns_per_event(conditions, ctxs))
            runs.setdefault((version, "reasons"), []).append(cpu_ns_per_event(reasons, ctxs))
    conditions, reasons = versions["this"]
    print(f"{len(ctxs)} contexts, {len(conditions)} conditions, {len(reasons)} reasons and evidence readers")
    for (version, part), times in runs.items():
        print(f"{version} {part}: {min(times):,.0f} CPU ns per event (best of {len(times)})")
    if args.against:
        for part in ("conditions", "reasons"):
            ratios = [a / b for a, b in zip(runs[("this", part)], runs[("other", part)], strict=True)]
            print(f"{part}: this / other = {statistics.median(ratios):.3f} (median of {len(ratios)} alternating runs)")


if __name__ == "__main__":
    main()
