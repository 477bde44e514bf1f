"""Off-policy evaluation: how a new next-best-action policy would have done on logged decisions.

The engine logs every decision with each candidate's propensity, value,
weight and the probability the live policy gave it (``decision-v1.json``),
then each response as an ``outcome``. Given a *target* policy (a rule for
choosing among the same candidates), inverse propensity scoring estimates
the acceptance rate it would have had::

    IPS   = mean_i( r_i * pi_target(a_i | i) / pi_logged(a_i | i) )
    SNIPS = sum_i( r_i * w_i ) / sum_i( w_i )       (self-normalised: lower variance)

where ``a_i`` is the action actually taken and ``r_i`` 1 if it was accepted.
Only decisions whose action was sent count; ``ess`` (effective sample size,
``(sum w)^2 / sum w^2``) says how many decisions the estimate really rests on:
when the live policy rarely takes the actions the target would, it is small
and the estimate is not to be trusted. A logged policy that never explores
(``fixed``) supports no estimate for a policy that chooses differently.

Target policies (``--policy``, repeatable):

* ``logged`` -- the live policy itself (a sanity check: IPS = observed rate);
* ``greedy`` -- the top score as logged (propensity x value x weight);
* ``fixed`` -- value x weight, ignoring propensity;
* ``propensity`` -- the most likely to be accepted;
* ``random`` -- uniform among the candidates;
* ``weights:retention_offer=2,upsell=0.5`` -- greedy with other business weights;
* ``model:PATH`` -- greedy with propensities re-scored from the logged features
  by a challenger's checkpoint (a pickled ``ModelSet`` or ``ResponseModel``).

>>> log = [
...     {"kind": "decision", "decision_id": "d1", "outcome": "sent", "chosen": "a", "probability": 0.9,
...      "candidates": [{"action": "a", "score": 2.0, "propensity": 0.2, "value": 10, "weight": 1, "probability": 0.9},
...                     {"action": "b", "score": 1.0, "propensity": 0.5, "value": 2, "weight": 1, "probability": 0.1}],
...      "features": {}},
...     {"kind": "outcome", "decision_id": "d1", "response": "accepted"},
... ]
>>> [round(r["ips"], 3) for r in evaluate_policies(log, ["logged", "greedy", "propensity"])]
[1.0, 1.111, 0.0]
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from operators.scoring.features import response_features

Policy = Callable[[dict[str, Any]], dict[str, float]]
"""A logged decision -> probability of each candidate action under the policy."""


@dataclass(frozen=True, slots=True)
class Logged:
    """One sent decision joined with its outcome."""

    decision: dict[str, Any]
    reward: float
    value: float


def join(records: Iterable[dict[str, Any]]) -> list[Logged]:
    """Sent decisions with reward 1 when accepted, else 0 (rejected, ignored, expired or no answer yet)."""
    decisions: dict[str, dict[str, Any]] = {}
    accepted: set[str] = set()
    for r in records:
        if r.get("kind") == "decision" and r.get("outcome") == "sent":
            decisions[r["decision_id"]] = r
        elif r.get("kind") == "outcome" and r.get("response") == "accepted" and r.get("decision_id"):
            accepted.add(r["decision_id"])
    out = []
    for decision_id, d in decisions.items():
        chosen = next(c for c in d["candidates"] if c["action"] == d["chosen"])
        reward = 1.0 if decision_id in accepted else 0.0
        out.append(Logged(d, reward, reward * float(chosen.get("value", 0.0))))
    return out


def policy_from_spec(spec: str) -> Policy:
    """A target policy from its command-line name (see the module docstring)."""
    if spec == "logged":
        return lambda d: {c["action"]: c["probability"] for c in d["candidates"]}
    if spec == "random":
        return lambda d: {c["action"]: 1.0 / len(d["candidates"]) for c in d["candidates"]}
    if spec == "greedy":
        return _argmax(lambda d, c: c["score"])
    if spec == "fixed":
        return _argmax(lambda d, c: c["value"] * c["weight"])
    if spec == "propensity":
        return _argmax(lambda d, c: c["propensity"])
    if spec.startswith("weights:"):
        weights = {k: float(v) for k, v in (kv.split("=") for kv in spec[len("weights:") :].split(",") if kv)}
        return _argmax(lambda d, c: c["propensity"] * c["value"] * weights.get(c["action"], c["weight"]))
    if spec.startswith("model:"):
        model = _load_model(spec[len("model:") :])

        def rescored(d: dict[str, Any], c: dict[str, Any]) -> float:
            past = d.get("past", {}).get(c["action"], [0, 0])
            x = {**d["features"], **response_features(past)}
            return float(model.predict_one(c["action"], x)) * c["value"] * c["weight"]

        return _argmax(rescored)
    raise ValueError(f"unknown policy {spec!r}")


def evaluate_policies(records: Iterable[dict[str, Any]], specs: list[str]) -> list[dict[str, Any]]:
    """One row per target policy: IPS and SNIPS acceptance rate, value per decision, ESS."""
    logged = join(records)
    return [{"policy": spec, **estimate(logged, policy_from_spec(spec))} for spec in specs]


def estimate(logged: list[Logged], policy: Policy) -> dict[str, Any]:
    """IPS / SNIPS estimates of ``policy`` on the logged decisions."""
    weights, rewards, values = [], [], []
    for item in logged:
        d = item.decision
        logged_p = next(c["probability"] for c in d["candidates"] if c["action"] == d["chosen"])
        if logged_p <= 0:
            continue
        weights.append(policy(d).get(d["chosen"], 0.0) / logged_p)
        rewards.append(item.reward)
        values.append(item.value)
    n = len(weights)
    if not n:
        return {"decisions": 0, "ips": None, "ips_se": None, "snips": None, "value_ips": None, "ess": 0.0}
    terms = [w * r for w, r in zip(weights, rewards, strict=True)]
    ips = sum(terms) / n
    se = math.sqrt(sum((t - ips) ** 2 for t in terms) / max(1, n - 1) / n)
    total_w = sum(weights)
    return {
        "decisions": n,
        "ips": round(ips, 4),
        "ips_se": round(se, 4),
        "snips": round(sum(terms) / total_w, 4) if total_w else None,
        "value_ips": round(sum(w * v for w, v in zip(weights, values, strict=True)) / n, 2),
        "ess": round(total_w**2 / sum(w * w for w in weights), 1) if total_w else 0.0,
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Rows as a plain-text table."""
    columns = ["policy", "decisions", "ips", "ips_se", "snips", "value_ips", "ess"]
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _argmax(score: Callable[[dict[str, Any], dict[str, Any]], float]) -> Policy:
    def policy(d: dict[str, Any]) -> dict[str, float]:
        best = max(d["candidates"], key=lambda c: score(d, c))  # first of equals: the logged rank order
        return {best["action"]: 1.0}

    return policy


def _load_model(path: str) -> Any:
    """A challenger's propensity model: a ``ModelSet`` checkpoint (its ``offers`` champion) or a ``ResponseModel``
    (``livesignals models export`` writes one). A file that is neither is a one-line ``ValueError``."""
    try:
        with open(path, "rb") as fh:
            obj = pickle.load(fh)  # noqa: S301 - a checkpoint the operator points us at
    except OSError as exc:
        raise ValueError(f"model:{path}: {exc.strerror or exc}") from None
    except Exception as exc:  # unpickling junk raises nearly anything
        raise ValueError(f"model:{path}: not a model checkpoint ({type(exc).__name__}: {exc})"[:300]) from None
    model = obj.model("offers") if hasattr(obj, "model") else obj
    if not callable(getattr(model, "predict_one", None)):
        raise ValueError(f"model:{path}: not a propensity model (a {type(model).__name__}); "
                         "write one with: livesignals models export --kind offers --out FILE")  # fmt: skip
    return model
