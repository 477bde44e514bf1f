"""What a batch publishes to Kafka: every output record of a :class:`~operators.report.BatchReport`.

Flags, triggers, decisions and outcomes are keyed by customer and carry their deterministic id in the
``ls.id`` header (consumers deduplicate on it); dead letters may be redacted (:mod:`livesignals.privacy`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from livesignals import serde
from livesignals.privacy import dead_letter_record
from livesignals.settings import Settings
from operators import erasure
from operators.ports import OutRecord
from operators.report import BatchReport
from operators.routing import origin_key


def out_records(s: Settings, store: Any, report: BatchReport) -> list[OutRecord]:
    """Everything a batch publishes, in order: dead letters, flags, triggers, decisions and outcomes,
    reroutes, and an erasure's tombstones and cascades (:mod:`operators.erasure`)."""
    secret = erasure.hashing_secret(store, s.erasure_ledger_secret) if report.dead_letters else ""
    records = [OutRecord(s.dead_letter_topic, *dead_letter_record(d, s.dead_letter_redact, secret))
               for d in report.dead_letters]  # fmt: skip
    records += [_signal_record(s.flags_topic, f.customer_key, f.to_json(), f.flag_id) for f in report.flags]
    records += [_signal_record(s.triggers_topic, t.customer_key, t.to_json(), t.trigger_id) for t in report.triggers]
    records += [
        _signal_record(s.decisions_topic, d.customer_key, d.to_json(outcome), d.decision_id)
        for d, outcome in report.decisions
    ]
    records += [_signal_record(s.decisions_topic, o.customer_key, o.to_json(), o.outcome_id) for o in report.outcomes]
    records += [
        OutRecord(s.repartition_topic, r.customer_key.encode(), r.value, r.headers(), r.partition)
        for r in report.reroutes
    ]
    if report.erasures:
        records += erasure.tombstones(report.erasures, (s.flags_topic, s.triggers_topic, s.decisions_topic))
        records += erasure.cascade_records(report.erasures, s.repartition_topic, origin_key(s))
    return records


def replay_records(s: Settings, store: Any, report: BatchReport) -> list[OutRecord]:
    """What a STATE LOSS replay below what Kafka confirmed still publishes when the reroutes waiting in the
    repartition topic no longer verify (:attr:`state.ownership.Claim.reroute_again`): its reroutes, marked
    ``replayed`` (signed: their owner rebuilds state from them and publishes nothing, break-test 10j, Q1),
    and its dead letters; never a flag, a trigger or a decision."""
    report.reroutes[:] = [replace(r, replayed=True) for r in report.reroutes]
    carried = (s.repartition_topic, s.dead_letter_topic)
    return [r for r in out_records(s, store, report) if r.topic in carried]


def _signal_record(topic: str, customer_key: str, doc: dict[str, Any], signal_id: str) -> OutRecord:
    """A flag or trigger for Kafka: keyed by customer, its deterministic id in ``ls.id``."""
    return OutRecord(topic, customer_key.encode(), serde.dumps(doc), [("ls.id", signal_id.encode())])
