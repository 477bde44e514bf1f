"""Next-best action on the simulator, where each customer's best action is known (issue 5).

A closed loop: the engine (in process, models on, the shipped rules) reads
the simulator's stream; every trigger it sends is answered by the simulated
customer -- accepted with probability 0.6 when it is their best action and
0.05 otherwise, else rejected or ignored (silence: the offer expires) -- as
an ``offer_response`` carrying the trigger's id, fed back into the stream
an hour of event time later. The simulator's own open-loop offer responses
are left out, so every policy learns only from its own decisions.

Reports, per policy (``learned``, ``fixed`` business rule, ``random``) on the
same stream -- with the shipped rules (which rank by propensity x value x
weight: the policy maximises expected value, not acceptance) and with every
action's value and weight set to 1 (the policy then maximises acceptance;
``fixed`` becomes the declaration order): triggers sent, acceptance rate over time (five slices of the
stream) and overall, how often the action sent was the customer's best, and
the headroom: candidates per decision, how often the best action was among
them, and the acceptance of an oracle that always picks it when it is. Then the off-policy estimate, from the
learned policy's decision log alone, of what the fixed and random policies
would have achieved (to compare with their measured rates).

    python -m bench.actions [--customers 5000] [--events 200000]
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from app.policy_eval import evaluate_policies
from app.simulator import Simulator, SimulatorConfig
from app.simulator.journeys import ACCEPT_BEST, ACCEPT_OTHER
from bench.common import write_result
from livesignals import serde
from livesignals.contract import RawMessage
from livesignals.errors import Origin
from livesignals.settings import Settings
from operators.engine import Engine
from operators.ports import OutRecord
from state.memory import InMemoryStore

HOUR = 3_600_000
SLICES = 5


class _Capture:
    def __init__(self) -> None:
        self.records: list[OutRecord] = []

    def publish(self, records: list[OutRecord]) -> None:
        self.records.extend(records)


def run_policy(
    policy: str, customers: int, events: int, seed: int, rules_path: str = "", batch: int = 500
) -> dict[str, Any]:
    """One closed-loop run of ``policy``; its figures and its decision log."""
    sim = Simulator(SimulatorConfig(customers=customers, seed=seed, start_ms=1_767_225_600_000, step_ms=20_000.0))
    best = {c.customer_id: c.best_offer for c in sim.customers}
    settings = Settings(metrics_port=0, nba_policy=policy, rules_path=rules_path, policy_clock="stream")  # type: ignore[arg-type]
    capture = _Capture()
    engine = Engine(settings, InMemoryStore(), capture, clock=lambda: 4_000_000_000.0)
    rng = random.Random(seed + 1)
    responses: list[tuple[int, dict[str, Any]]] = []
    offset = 0
    sent: list[tuple[int, dict[str, Any], bool, bool]] = []
    log: list[dict[str, Any]] = []
    pending: list[RawMessage] = []

    def flush() -> None:
        nonlocal pending
        engine.process(pending)
        pending = []
        for r in capture.records:
            doc = serde.loads(r.value)
            if r.topic == settings.decisions_topic:
                log.append(doc)
            elif r.topic == settings.triggers_topic:
                customer = doc["customer"].split(":", 1)[1]
                accepted_p = ACCEPT_BEST if doc["action"] == best.get(customer) else ACCEPT_OTHER
                u = rng.random()
                answer = "accepted" if u < accepted_p else ("rejected" if u < 0.5 + accepted_p / 2 else None)
                sent.append((len(sent), doc, answer == "accepted", doc["action"] == best.get(customer)))
                if answer:
                    responses.append((doc["created_at"] + HOUR, _response(doc, customer, answer)))
        capture.records.clear()

    for event, _ in sim.stream(events):
        if event["type"] == "offer_response":
            continue  # only the engine's own offers are answered
        while responses and responses[0][0] <= event["event_time"]:
            pending.append(_raw(responses.pop(0)[1], offset))
            offset += 1
        pending.append(_raw(event, offset))
        offset += 1
        if len(pending) >= batch:
            flush()
    flush()
    return {"figures": {**_figures(sent), **_headroom(log, best)}, "log": log}


def _headroom(log: list[dict[str, Any]], best: dict[str, str]) -> dict[str, Any]:
    """Choice available to any policy: candidates per decision, and the acceptance of an oracle
    that always picks the customer's best action when it is a candidate."""
    sent = [d for d in log if d.get("kind") == "decision" and d["outcome"] == "sent"]
    if not sent:
        return {}
    has_best = [any(c["action"] == best.get(d["customer"].split(":", 1)[1]) for c in d["candidates"]) for d in sent]
    share = sum(has_best) / len(sent)
    return {
        "candidates_per_decision": round(sum(len(d["candidates"]) for d in sent) / len(sent), 2),
        "best_among_candidates": round(share, 4),
        "oracle_acceptance": round(share * ACCEPT_BEST + (1 - share) * ACCEPT_OTHER, 4),
    }


def _figures(sent: list[tuple[int, dict[str, Any], bool, bool]]) -> dict[str, Any]:
    n = len(sent)
    if not n:
        return {"triggers": 0}
    size = max(1, n // SLICES)
    slices = [sent[i * size : (i + 1) * size if i < SLICES - 1 else n] for i in range(SLICES)]
    return {
        "triggers": n,
        "acceptance": round(sum(s[2] for s in sent) / n, 4),
        "acceptance_by_slice": [round(sum(s[2] for s in part) / max(1, len(part)), 4) for part in slices],
        "best_action_share": round(sum(s[3] for s in sent) / n, 4),
        "actions": _counts(s[1]["action"] for s in sent),
    }


def _counts(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _response(trigger: dict[str, Any], customer: str, answer: str) -> dict[str, Any]:
    return {
        "schema_version": 1, "event_id": f"resp-{trigger['trigger_id']}", "type": "offer_response",
        "channel": trigger["channel"] if trigger["channel"] != "phone" else "email",
        "customer": {"customer_id": customer}, "event_time": trigger["created_at"] + HOUR,
        "payload": {"decision_id": trigger["trigger_id"], "action": trigger["action"], "response": answer},
    }  # fmt: skip


def _raw(doc: dict[str, Any], offset: int) -> RawMessage:
    return RawMessage(serde.dumps(doc), None, Origin("sim", 0, offset))


def main() -> None:
    """Run the three policies on the same stream and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    result: dict[str, Any] = {"customers": args.customers, "events": args.events}
    logs = {}
    with tempfile.TemporaryDirectory() as tmp:
        equal = Path(tmp, "equal-values.toml")
        text = re.sub(r"(?m)^value = .*$", 'value = "1"', _catalogue().read_text())
        equal.write_text(re.sub(r"(?m)^weight = .*$", "weight = 1", text))
        runs = [
            ("learned", "learned", ""), ("fixed", "fixed", ""), ("random", "random", ""),
            ("learned_equal_values", "learned", str(equal)), ("fixed_equal_values", "fixed", str(equal)),
        ]  # fmt: skip
        for name, policy, rules in runs:
            started = time.perf_counter()
            run = run_policy(policy, args.customers, args.events, args.seed, rules)
            result[name] = {**run["figures"], "seconds": round(time.perf_counter() - started, 1)}
            logs[name] = run["log"]
    result["off_policy_from_learned_log"] = evaluate_policies(
        logs["learned"], ["logged", "fixed", "random", "greedy", "propensity"]
    )
    write_result("actions", result)


def _catalogue() -> Path:
    import importlib.resources

    return Path(str(importlib.resources.files("livesignals").joinpath("rules", "catalogue.toml")))


if __name__ == "__main__":
    main()
