"""Fault runs with models on: what must equal an uninterrupted run exactly, and the model-derived rest.

With models on, a score depends on which lessons the shared learner had applied
when its batch was scored (README, *Model scores after a crash*); a crash moves
batch boundaries, so scores -- and whatever is decided from a score -- may
differ from an uninterrupted run's. Everything else must be exact. The
model-derived parts, checked for presence and range only:

* flags :data:`MODEL_FLAGS`: ``fraud_risk`` (the fraud score), ``high_churn_risk``
  and ``likely_to_negotiate`` (the churn score), ``frustrated`` and
  ``negative_survey`` (the mood, from the sentiment model's learned part);
* every trigger and decision: eligibility reads the churn score and the flags
  above, the ranking reads the offer-propensity model, and the contact policy's
  caps read the triggers sent before (so their ids too);
* in profiles: ``predictions`` (scores, mood, pending churn snapshots and offers
  with what the models said), the model flags in the ``flags`` section and every
  flag's ``relevance``, the marks of what the updates stream last carried
  (``timeline_meta``'s ``mood_n`` and ``nba``: the mood and the decisions), :data:`MODEL_HISTORY` (what was proposed and sent, the
  flags raised, responses counted per action, which include expired decisions), and the ``complaints`` window metric (a text is
  a complaint when its sentiment score says so);
* a timeline entry's ``sentiment``; in the partition aggregates, the
  voice-of-the-customer complaint counts and terms (same reason);
* lessons of ``offers`` and ``flag_relevance``: which offer a response answers
  and which flag a verdict rates follow the triggers and flags above.

Exact: per profile the events applied, identity, relationships, activity,
value, consent, the applied offsets and recent ids, contacts, the rest of the
history and the windows, the non-model flags raised; timelines (without the
score); KPIs; every non-model flag record (same ids, and per id the same
document); and the lessons of ``sentiment``, ``churn`` and ``fraud`` -- each
learned exactly once, the same set (by origin and label) as the uninterrupted
run's.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from livesignals import serde

MODEL_FLAGS = frozenset({"fraud_risk", "high_churn_risk", "likely_to_negotiate", "frustrated", "negative_survey"})
"""Flags whose rule reads a model's score (``livesignals/rules/catalogue.toml``)."""

MODEL_HISTORY = frozenset({"sent", "proposed", "recent_flags", "offers_by_action"})
"""History entries written from decisions, their expiries and flags (hence from scores)."""

MODEL_WINDOW_METRICS = frozenset({"complaints"})
"""Window metrics counted from a sentiment score."""

INPUT_LESSONS = frozenset({"sentiment", "churn", "fraud"})
"""Lesson kinds that are a function of the input alone (what is taught, not what the model said)."""


def exact_profile(raw: bytes) -> dict[str, Any]:
    """The part of a stored profile that must equal the uninterrupted run's (see the module docstring)."""
    doc = serde.loads(raw)
    doc.pop("predictions", None)
    doc["timeline_meta"] = _without_keys(doc.get("timeline_meta") or {}, frozenset({"mood_n", "nba"}))
    doc["flags"] = {n: _without(f, "relevance") for n, f in doc.get("flags", {}).items() if n not in MODEL_FLAGS}
    doc["history"] = {k: v for k, v in doc.get("history", {}).items() if k not in MODEL_HISTORY}
    windows = doc.get("windows") or {}
    doc["windows"] = {
        "n": windows.get("n"),
        "b": {tier: {at: _without_keys(v, MODEL_WINDOW_METRICS) for at, v in b.items()}
              for tier, b in (windows.get("b") or {}).items()},
    }  # fmt: skip
    return doc


def _without(doc: Any, key: str) -> Any:
    return {k: v for k, v in doc.items() if k != key} if isinstance(doc, dict) else doc


def _without_keys(doc: Any, keys: frozenset[str]) -> Any:
    return {k: v for k, v in doc.items() if k not in keys} if isinstance(doc, dict) else doc


def score_problems(raw: bytes) -> list[str]:
    """Scores out of range in a stored profile: churn and fraud in [0, 1], the mood in [-1, 1]."""
    p = serde.loads(raw).get("predictions", {})
    bad = []
    churn = p.get("churn")
    if churn is not None and not 0.0 <= churn["p"] <= 1.0:
        bad.append(f"churn {churn['p']}")
    fraud = p.get("fraud")
    if fraud is not None and not 0.0 <= fraud["score"] <= 1.0:
        bad.append(f"fraud {fraud['score']}")
    mood = p.get("mood")
    if mood is not None and not (-1.0 <= mood["avg"] <= 1.0 and -1.0 <= mood["last"] <= 1.0):
        bad.append(f"mood {mood}")
    return bad


def scored_when(raw: bytes) -> dict[str, Any]:
    """Which scores a profile holds and from which event (time, count): input-determined, so exact."""
    p = serde.loads(raw).get("predictions", {})
    out: dict[str, Any] = {}
    if "churn" in p:
        out["churn"] = (p["churn"]["t"], p["churn"].get("cancelled", False))
    if "fraud" in p:
        out["fraud"] = p["fraud"]["t"]
    if "mood" in p:
        out["mood"] = (p["mood"]["n"], p["mood"]["t"])
    return out


def exact_timeline(entries: list[tuple[bytes, float]]) -> list[tuple[bytes, float, bool]]:
    """Timeline entries without their sentiment score (whether one was given stays compared)."""
    out = []
    for member, score in entries:
        doc = serde.loads(member)
        sentiment = doc.pop("sentiment", None)
        if sentiment is not None and not -1.0 <= sentiment <= 1.0:
            raise AssertionError(f"sentiment {sentiment} out of range in {doc}")
        out.append((serde.dumps(doc), score, sentiment is not None))
    return sorted(out)


def exact_voc(raw: bytes) -> Any:
    """The voice-of-the-customer aggregate without what a sentiment score decides (all of it is
    complaints, so only its time keys remain)."""
    doc = serde.loads(raw)
    return sorted(doc) if isinstance(doc, dict) else None


def lesson_ledger(entries: list[tuple[Any, dict[bytes, bytes]]]) -> tuple[Counter[Any], int, int]:
    """The lesson stream, as learned: per kind, origin and label, the lessons a learner keeps
    (the first of each ``(source, offset, seq)``); with the count appended and the count kept."""
    seen: set[tuple[str, int, int]] = set()
    kept: Counter[Any] = Counter()
    for _, fields in entries:
        source, offset, seq, kind, args, _said = serde.loads(fields[b"l"])
        if (source, offset, seq) in seen:
            continue
        seen.add((source, offset, seq))
        label = args[1] if kind in ("churn", "sentiment") else None
        kept[(kind, source, offset, serde.dumps(label).decode())] += 1
    return kept, len(entries), len(seen)


def learned_by_kind(ledger: Counter[Any]) -> dict[str, int]:
    """Lessons kept, per kind."""
    out: Counter[str] = Counter()
    for (kind, *_), n in ledger.items():
        out[kind] += n
    return dict(sorted(out.items()))


def input_lessons(ledger: Counter[Any]) -> Counter[Any]:
    """The part of a ledger that must equal the uninterrupted run's (:data:`INPUT_LESSONS`)."""
    return Counter({k: n for k, n in ledger.items() if k[0] in INPUT_LESSONS})


SAYS = ("kind", "customer", "flag", "state", "action", "chosen", "outcome", "evidence")
"""What a model-derived record says for its id: who, which signal or action, from which event."""


def id_conflicts(records: list[tuple[str, bytes]], exact: bool) -> list[str]:
    """Ids on an output topic whose records say different things. ``exact``: the whole document
    must repeat; else only who, what and which event (model-derived documents)."""
    said: dict[str, set[bytes]] = {}
    for signal_id, value in records:
        doc = serde.loads(value)
        if not exact:
            doc = {k: doc.get(k) for k in SAYS}
        said.setdefault(signal_id, set()).add(serde.dumps(doc))
    return sorted(i for i, docs in said.items() if len(docs) > 1)


# --- one run's outcome, read from Redis and Kafka, and two runs compared -------------------


def topic_records(settings: Any, topic: str) -> list[tuple[str, bytes]]:
    """Every record on ``topic`` as ``(ls.id header, value)``, read up to the high watermarks."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "faults-models",
                  "enable.auto.commit": False})  # fmt: skip
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        c.assign([TopicPartition(topic, p, 0) for p in parts if ends[p] > 0])
        out: list[tuple[str, bytes]] = []
        done = {p: 0 for p in parts}
        deadline = time.monotonic() + 60
        while any(done[p] < ends[p] for p in parts) and time.monotonic() < deadline:
            for m in c.consume(1000, 1.0):
                if m.error() is None:
                    done[m.partition()] = (m.offset() or 0) + 1
                    header = dict(m.headers() or [])["ls.id"]
                    out.append((header.decode() if isinstance(header, bytes) else str(header), m.value() or b""))
        return out
    finally:
        c.close()


def outcome(settings: Any) -> dict[str, Any]:
    """What a run left in Redis and on its output topics, keys without the run's prefix."""
    from operators.scoring.learner import SharedLearner
    from state.connection import connect
    from state.models_store import RedisModelLog, lessons_key
    from tests.helpers import aggregates, profiles, timelines

    n = len(settings.key_prefix)
    client = connect(settings)
    learner = SharedLearner(RedisModelLog(client, settings.key_prefix))
    learner.catch_up()
    meta = RedisModelLog(client, settings.key_prefix).read("0-0", 1)[1]
    return {
        "profiles": {k[n:]: v for k, v in profiles(settings).items()},
        "timelines": {k[n:]: v for k, v in timelines(settings).items()},
        "kpi": {k[n:]: v[b"kpi"] for k, v in aggregates(settings).items()},
        "voc": {k[n:]: v[b"voc"] for k, v in aggregates(settings).items()},
        "flags": topic_records(settings, settings.flags_topic),
        "triggers": topic_records(settings, settings.triggers_topic),
        "decisions": topic_records(settings, settings.decisions_topic),
        "lessons": client.xrange(lessons_key(settings.key_prefix)),
        "trimmed": meta.trimmed_before != "0-0",
        "learned": learner.state.applied,
        "labels": {row["kind"]: row.get("labels") for row in learner.models.summary() if row["role"] == "champion"},
    }


def _parts(a: bytes, b: bytes) -> list[str]:
    """Which sections (and history entries) of two profiles' exact parts differ."""
    da, db = exact_profile(a), exact_profile(b)
    out = [k for k in da.keys() | db.keys() if k != "history" and da.get(k) != db.get(k)]
    ha, hb = da.get("history", {}), db.get("history", {})
    return out + [f"history.{k}" for k in ha.keys() | hb.keys() if ha.get(k) != hb.get(k)]


def _flag_name(value: bytes) -> str:
    return str(serde.loads(value)["flag"])


def compare(ref: dict[str, Any], got: dict[str, Any]) -> dict[str, Any]:
    """Two runs' outcomes (:func:`outcome`) compared: every figure that must be 0 or True, and the
    model-derived ones for the record."""
    pr, pg = ref["profiles"], got["profiles"]
    diff = [serde.loads(pg[k])["events"] - serde.loads(pr[k])["events"] for k in pr.keys() & pg.keys()]
    diff += [-serde.loads(pr[k])["events"] for k in pr.keys() - pg.keys()]
    diff += [serde.loads(pg[k])["events"] for k in pg.keys() - pr.keys()]
    common = pr.keys() & pg.keys()
    differing = [k for k in common if exact_profile(pr[k]) != exact_profile(pg[k])]
    ledger_ref, appended_ref, kept_ref = lesson_ledger(ref["lessons"])
    ledger, appended, kept = lesson_ledger(got["lessons"])
    figures: dict[str, Any] = {
        "customers": len(pr),
        "lost": -sum(d for d in diff if d < 0),
        "double_counted": sum(d for d in diff if d > 0),
        "profiles_differing": len(differing) + len(pr.keys() ^ pg.keys()),
        "differing_parts": dict(Counter(part for k in differing for part in _parts(pr[k], pg[k]))),
        "scored_differently": sum(scored_when(pr[k]) != scored_when(pg[k]) for k in common),
        "scores_out_of_range": sum(bool(score_problems(v)) for v in pg.values()),
        "timelines_differing": sum(
            exact_timeline(ref["timelines"].get(k, [])) != exact_timeline(got["timelines"].get(k, []))
            for k in ref["timelines"].keys() | got["timelines"].keys()
        ),
        "kpi_equal": ref["kpi"] == got["kpi"] and len(ref["kpi"]) > 0,
    }
    for topic, exact in (("flags", True), ("triggers", False), ("decisions", False)):
        records = got[topic]
        ids, ref_ids = {i for i, _ in records}, {i for i, _ in ref[topic]}
        if topic == "flags":  # non-model flags: exact; model flags: who, what and which event
            plain = [(i, v) for i, v in records if _flag_name(v) not in MODEL_FLAGS]
            plain_ref = {(i, v) for i, v in ref[topic] if _flag_name(v) not in MODEL_FLAGS}
            figures["flag_counts_equal"] = Counter(_flag_name(v) for _, v in set(plain)) == Counter(
                _flag_name(v) for _, v in plain_ref
            )
            figures["flags_missing"] = len({i for i, _ in plain_ref} - {i for i, _ in plain})
            figures["flags_extra"] = len({i for i, _ in plain} - {i for i, _ in plain_ref})
            figures["flag_id_conflicts"] = len(id_conflicts(plain, exact))
            figures["model_flag_id_conflicts"] = len(id_conflicts(records, False))
        else:
            figures[f"{topic}_id_conflicts"] = len(id_conflicts(records, exact))
            figures[f"{topic}_ids_missing_model"] = len(ref_ids - ids)
            figures[f"{topic}_ids_extra_model"] = len(ids - ref_ids)
        figures[f"{topic}_duplicate_id_records"] = len(records) - len(ids)
    figures.update(
        {
            "lessons_log_complete": not ref["trimmed"] and not got["trimmed"],
            "lessons_learned": (kept_ref, kept),
            "lessons_appended": (appended_ref, appended),
            "learner_applied_equals_kept": ref["learned"] == kept_ref and got["learned"] == kept,
            "input_lessons_equal": input_lessons(ledger_ref) == input_lessons(ledger),
            "input_lessons_lost": sum((input_lessons(ledger_ref) - input_lessons(ledger)).values()),
            "input_lessons_extra": sum((input_lessons(ledger) - input_lessons(ledger_ref)).values()),
            "labels_by_kind": (learned_by_kind(ledger_ref), learned_by_kind(ledger)),
            "model_labels": (ref["labels"], got["labels"]),
        }
    )
    return figures


MUST_BE_ZERO = ("lost", "double_counted", "profiles_differing", "scored_differently", "scores_out_of_range",
                "timelines_differing", "flags_missing", "flags_extra", "flag_id_conflicts",
                "model_flag_id_conflicts", "triggers_id_conflicts", "decisions_id_conflicts",
                "input_lessons_lost", "input_lessons_extra")  # fmt: skip
MUST_BE_TRUE = ("kpi_equal", "flag_counts_equal", "lessons_log_complete", "learner_applied_equals_kept",
                "input_lessons_equal")  # fmt: skip


def failures(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures that break what must be exact (empty: the fault run equals the reference)."""
    bad = {k: figures[k] for k in MUST_BE_ZERO if figures[k] != 0}
    bad.update({k: figures[k] for k in MUST_BE_TRUE if figures[k] is not True})
    if figures["labels_by_kind"][0].keys() != figures["labels_by_kind"][1].keys():
        bad["labels_by_kind"] = figures["labels_by_kind"]
    return bad
