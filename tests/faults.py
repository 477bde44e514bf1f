"""Faults injected *after* partial changes, at each stage of applying one event (issue 9 item 3).

A stream (simulated customers plus a hand-made "victim" whose events reach
every stage) is run twice at 4 partitions: once with a bad event for the
victim at offset ``k``, once with an undecodable message at the same offset
(dead-lettered at decode: touches nothing). With the fault injected for the
bad event only, everything that persists must end byte-identical.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from app.simulator import Simulator, SimulatorConfig
from livesignals import serde
from livesignals.contract import RawMessage, primary_key
from livesignals.errors import Origin
from livesignals.settings import Settings
from operators.engine import Engine
from operators.partition import PartitionAggregates
from operators.ports import OutRecord
from operators.profile360.profile import CustomerState
from operators.rules.signals import Flag
from state.memory import InMemoryStore
from tests.helpers import T0, event

PARTITIONS = 4
TOPIC = "in"
HOUR = 3_600_000
BAD_ID = "bad-event"
NOON = T0 + 12 * HOUR  # outside the default quiet hours


def victim(t: int, etype: str, event_id: str | None = None, **payload: Any) -> dict[str, Any]:
    """An event of the customer every bad event belongs to."""
    return event(etype, "victim", t, event_id=event_id or f"v-{etype}-{t}", **payload)


VICTIM_BEFORE = [
    victim(NOON, "chat", "v-chat", text="my parcel is late again, this is annoying", topic="delivery"),
    victim(NOON + 60_000, "order", order_id="vo1", amount=80.0),
    victim(NOON + 120_000, "call", direction="inbound", topic="billing", outcome="resolved", handle_time_s=200),
    victim(NOON + 180_000, "consent", purpose="marketing", granted=True),
]
"""The victim's history before the bad event (a text to label, an order, contacts)."""

BAD_AT = NOON + 240_000


def clock() -> float:
    """The engines' wall clock: shortly after the streams, so triggers are sent, not stale."""
    return (NOON + 3_600_000) / 1000


BAD_EVENTS: dict[str, dict[str, Any]] = {
    "chat": victim(BAD_AT, "chat", BAD_ID, text="still broken, awful, I want a refund", topic="delivery",
                   outcome="resolved", handle_time_s=120),
    "survey": victim(BAD_AT, "survey", BAD_ID, kind="csat", score=1, rates_event_id="v-chat",
                     comment="terrible, nobody helps"),
    "offer_response": victim(BAD_AT, "offer_response", BAD_ID, action="retention_offer", response="accepted"),
    "cancellation": victim(BAD_AT, "cancellation", BAD_ID, reason="too expensive"),
    "order": victim(BAD_AT, "order", BAD_ID, order_id="vo2", amount=5000.0),
    "delivery": victim(BAD_AT, "delivery", BAD_ID, order_id="vo1", status="failed"),
    "agent_label": victim(BAD_AT, "agent_feedback", BAD_ID, target_id="v-chat", kind="sentiment",
                          label="Negative"),
}  # fmt: skip
"""One bad event per kind of stage it must reach."""

VICTIM_AFTER = [
    victim(BAD_AT + 60_000, "chat", text="hello? any news about my parcel", topic="delivery"),
    victim(BAD_AT + 120_000, "agent_feedback", "v-fix", target_id="v-chat", kind="sentiment", label="negative"),
    victim(BAD_AT + 180_000, "delivery", order_id="vo1", status="delayed"),
]
"""What follows: its outcome depends on whether the bad event left anything behind."""


def partition_of(doc: dict[str, Any]) -> int:
    """The input partition of an event (by customer, stable across processes)."""
    return zlib.crc32(primary_key(doc["customer"]).encode()) % PARTITIONS


def stream(bad: dict[str, Any] | None, simulated: int = 150) -> list[RawMessage]:
    """Simulated events with the victim's woven in, at consecutive offsets per partition.

    ``bad`` None puts an undecodable message where the bad event would be.
    """
    sim = Simulator(SimulatorConfig(customers=60, seed=5, start_ms=NOON - 2 * HOUR, step_ms=20_000))
    docs: list[dict[str, Any] | bytes] = [doc for doc, _ in sim.stream(simulated)]
    slot = BAD_EVENTS["chat"] if bad is None else bad
    mine: list[tuple[int, dict[str, Any] | bytes]] = [(10 + 10 * i, d) for i, d in enumerate(VICTIM_BEFORE)]
    mine.append((simulated // 2, bad if bad is not None else b"{not json"))
    mine += [(simulated // 2 + 10 + 10 * i, d) for i, d in enumerate(VICTIM_AFTER)]
    for at, doc in reversed(mine):
        docs.insert(at, doc)
    offsets = [0] * PARTITIONS
    out = []
    for doc in docs:
        p = partition_of(slot if isinstance(doc, bytes) else doc)
        out.append(
            RawMessage(doc if isinstance(doc, bytes) else serde.dumps(doc), b"k", Origin(TOPIC, p, offsets[p], T0))
        )
        offsets[p] += 1
    return out


def appended(
    messages: list[RawMessage], docs: list[dict[str, Any] | bytes], like: dict[str, Any] | None = None
) -> list[RawMessage]:
    """``messages`` then ``docs`` at the next offsets of their partitions (bytes go where ``like`` would)."""
    out = list(messages)
    for doc in docs:
        p = partition_of(doc) if not isinstance(doc, bytes) else partition_of(like) if like else 0
        offset = 1 + max((m.origin.offset for m in out if m.origin.partition == p), default=-1)
        out.append(RawMessage(doc if isinstance(doc, bytes) else serde.dumps(doc), b"k", Origin(TOPIC, p, offset, T0)))
    return out


def batches(messages: list[RawMessage], size: int = 50) -> Iterator[list[RawMessage]]:
    """The stream in engine batches."""
    for i in range(0, len(messages), size):
        yield messages[i : i + size]


def bad_batch(messages: list[RawMessage], size: int = 50) -> int:
    """Index of the batch that holds the bad event (or its stand-in)."""
    index = next(i for i, m in enumerate(messages) if (m.value and b'"' + BAD_ID.encode() + b'"' in m.value)
                 or m.value == b"{not json")  # fmt: skip
    return index // size


class InjectedFault(RuntimeError):
    """Raised by a stage after it did its work, for the bad event only."""


def _after(real: Callable[..., Any], event_of: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if event_of(*args, **kwargs).event_id == BAD_ID:
            raise InjectedFault("after partial changes")
        return result

    return wrapper


def _before(real: Callable[..., Any], event_of: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if event_of(*args, **kwargs).event_id == BAD_ID:
            raise InjectedFault("before applying, after KPIs and labels")
        return real(*args, **kwargs)

    return wrapper


def _arg(i: int) -> Callable[..., Any]:
    return lambda *args, **kwargs: args[i]


STAGES: dict[str, tuple[str, str | None]] = {
    # stage: (bad event kind, the fault's target)
    "after_kpi_and_labels": ("chat", "apply_event:before"),
    "after_learn_labels": ("survey", "online.learn_labels"),
    "after_learn_responses": ("offer_response", "responses.learn_responses"),
    "after_score_text": ("chat", "online.score_text"),
    "after_apply_event": ("chat", "apply_event:after"),
    "after_churn_labels": ("cancellation", "online.score_churn"),
    "after_fraud": ("order", "online.score_fraud"),
    "after_flags": ("delivery", "Rulebook.evaluate"),
    "after_flag_relevance": ("delivery", "responses.note_flag"),
    "inside_policy": ("delivery", "ContactPolicy.check"),
    "after_decide": ("delivery", "responses.remember"),
}
"""Every stage of applying an event, with a bad event that reaches it."""


@contextmanager
def fault(stage: str) -> Iterator[None]:
    """Make ``stage`` raise for the bad event, after (or, for ``apply_event:before``, instead of) its work."""
    _, target = STAGES[stage]
    with pytest.MonkeyPatch.context() as mp:
        import operators.engine as engine_module
        from operators.decisions import responses
        from operators.decisions.policy import ContactPolicy
        from operators.rules.rulebook import Rulebook
        from operators.scoring import online

        if target == "apply_event:before":
            mp.setattr(engine_module, "apply_event", _before(engine_module.apply_event, _arg(1)))
        elif target == "apply_event:after":
            mp.setattr(engine_module, "apply_event", _after(engine_module.apply_event, _arg(1)))
        elif target is not None and target.startswith("online."):
            name = target.split(".")[1]
            mp.setattr(online, name, _after(getattr(online, name), _arg(2)))
        elif target is not None and target.startswith("responses."):
            name = target.split(".")[1]
            index = {"learn_responses": 2, "note_flag": 1, "remember": 1}[name]
            real = getattr(responses, name)
            if name == "learn_responses":
                mp.setattr(responses, name, _after(real, _arg(index)))
            elif name == "note_flag":
                mp.setattr(responses, name, _after(real, lambda state, flag: _Id(flag.evidence[0])))
            else:
                mp.setattr(responses, name, _after(real, lambda state, decision, *a: _Id(decision.event_id)))
        elif target == "Rulebook.evaluate":
            mp.setattr(Rulebook, "evaluate", _after(Rulebook.evaluate, _arg(2)))
        elif target == "SentimentModel.learn_one":
            from models.sentiment import SentimentModel

            real_learn = SentimentModel.learn_one

            def refusing(self: Any, text: str, label: str) -> None:
                if text == BAD_EVENTS["survey"]["payload"]["comment"]:  # refuses before changing, as ours do
                    raise InjectedFault("learn_one refused the bad event's text")
                real_learn(self, text, label)

            mp.setattr(SentimentModel, "learn_one", refusing)
        elif target == "ContactPolicy.check":
            real_check = ContactPolicy.check
            mp.setattr(
                ContactPolicy, "check", _after(real_check, lambda self, state, trigger, *rest: _Id(trigger.evidence[0]))
            )
        yield


class _Id:
    """Stands for an event where only its id is known (a flag's or trigger's first evidence)."""

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id


PROBE_TEXTS = ["my order never arrived, terrible", "thanks a lot!", "where is my parcel", "still broken, awful"]
PROBE_FEATURES = [{"complaints_30d": 3.0, "mood": -0.5, "orders_30d": 0.0}, {"orders_30d": 4.0, "mood": 0.6}]


def learned(log: Any) -> Any:
    """The shared models as a worker starting now would hold them (checkpoint plus the lessons after it)."""
    from operators.scoring.learner import SharedLearner

    learner = SharedLearner(log)
    learner.catch_up()
    return learner.models


class Models:
    """A partition's models, compared by their checkpoint bytes, else by what they learned and say.

    Pickles of equal River models differ in bytes across a restart even when
    nothing else happened (object sharing), so after a restart the comparison
    falls back to every model's summary (labels, validation figures) and its
    answers to probes.
    """

    def __init__(self, models: Any) -> None:
        self.models = models

    def behaviour(self) -> Any:
        m = self.models
        return (
            m.summary(),
            [m.model("sentiment").predict_proba_one(t) for t in PROBE_TEXTS],
            [(m.model("churn").predict_proba_one(x), m.model("fraud").pipeline.score_one(x)) for x in PROBE_FEATURES],
            [m.model(k).predict_one(a, x) for k in ("offers", "flag_relevance") for a in ("retention_offer", "frustrated")
             for x in PROBE_FEATURES],
            m.model("fraud").seen, m.model("fraud")._sorted,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Models):
            return NotImplemented
        return self.models.to_bytes() == other.models.to_bytes() or self.behaviour() == other.behaviour()

    def __repr__(self) -> str:
        return f"Models({self.models.summary()})"


# --- running the engine in memory, and what a run leaves behind ---------------------------

SETTINGS = Settings.load(env={}).replace(metrics_port=0, quiet_hours="0-0")


class RecordingStore(InMemoryStore):
    """The in-memory store, keeping the timeline entries it is given (Redis would)."""

    def __init__(self) -> None:
        super().__init__()
        self.timelines: dict[str, set[bytes]] = {}

    def commit(
        self,
        states: Iterable[CustomerState],
        flags: list[Flag],
        offsets: dict[tuple[str, int], int],
        partitions: dict[tuple[str, int], PartitionAggregates] | None = None,
        notify: bool = True,
    ) -> None:
        """Keep the batch's timeline entries, then commit as the in-memory store does."""
        states = list(states)
        for s in states:
            self.timelines.setdefault(s.customer_key, set()).update(m for _, m in s.new_timeline)
        super().commit(states, flags, offsets, partitions, notify)

    def restarted(self) -> RecordingStore:
        """A new store holding only what Redis would hold: states and aggregates through their bytes."""
        fresh = RecordingStore()
        fresh.states = {k: CustomerState.from_bytes(k, s.to_bytes()) for k, s in self.states.items()}
        for pos, part in self.partitions.items():
            fields = {k.encode(): v for k, v in part.to_fields().items()}
            fresh.partitions[pos] = PartitionAggregates.from_fields(fields)
        fresh.timelines = {k: set(v) for k, v in self.timelines.items()}
        fresh.models_log = self.models_log  # the shared lesson log and checkpoint live in Redis
        return fresh


class Outputs:
    def __init__(self) -> None:
        self.records: list[OutRecord] = []

    def publish(self, records: list[OutRecord]) -> None:
        self.records.extend(records)


def run(
    messages: list[RawMessage], restart_after: int | None = None, settings: Settings = SETTINGS
) -> tuple[RecordingStore, Outputs]:
    """Run the engine over ``messages`` in batches; ``restart_after``: a new engine and store after that batch."""
    store, out = RecordingStore(), Outputs()
    engine = Engine(settings, store, out, clock=clock)
    for i, batch in enumerate(batches(messages)):
        engine.process(batch)
        if i == restart_after:
            store = store.restarted()
            engine = Engine(settings, store, out, clock=clock)
    return store, out


def persisted(store: RecordingStore, out: Outputs) -> dict[str, Any]:
    """Everything a run leaves behind, serialised (dead letters apart: the two runs differ there by design)."""
    return {
        "profiles": {k: s.to_bytes() for k, s in sorted(store.states.items())},
        "timelines": store.timelines,
        "aggregates": {pos: (p.kpi.to_json(), p.voc.to_json()) for pos, p in store.partitions.items()},
        "models": Models(learned(store.models_log)),
        "outputs": [(r.topic, r.key, r.value, r.headers) for r in out.records if r.topic != SETTINGS.dead_letter_topic],
    }


def dead_letters(out: Outputs) -> list[dict[str, Any]]:
    """The dead letters' headers."""
    return [dict(r.headers or []) for r in out.records if r.topic == SETTINGS.dead_letter_topic]
