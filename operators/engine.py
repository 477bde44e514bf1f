"""The batch engine: one input batch in, confirmed outputs and committed state out.

For each batch, in this order:

1. decode and validate every message; bad ones become dead letters; events read on a partition that does not
   own their customer are rerouted (:mod:`operators.routing`), not applied;
2. load the touched customers' states (one round trip for cache misses);
3. fold each event into its customer's state, skipping offsets already
   applied (replays) and event ids the customer had recently (duplicates):
   learn the labels and responses it carries, score it, apply it, raise and
   clear flags, and at a decision moment choose the next-best action (checked
   by the contact policy). Each event applies all or nothing: on any failure
   its state is put back, what it staged (aggregates, lessons, outputs) is
   dropped, and it is dead-lettered (:mod:`operators.staging`);
4. send dead letters, flags, triggers and the decision log to Kafka, plan the commit (encode every write) while
   the broker writes them, then **wait for the broker's confirmation** (a failure raises, the batch is redone
   from scratch: :meth:`Engine.forget`);
5. commit flags, states and resume offsets to Redis.

Outputs go out before state is committed: a crash between 4 and 5 replays the batch, re-emitting outputs with the
same deterministic ids (at least once) while state is applied exactly once. A plan that raises after the send
(fenced, Redis unreachable) leaves the records with the producer, which may deliver them after the failure was
logged: the records the old publish-then-plan order sent, later (purged before the next send: flows.publisher).

**Event time and wall time.** Rules read a customer's windows at the
customer's *present at the event's input position* (:mod:`operators.lateness`:
its newest event time among the events that came before it in the input, so a
rerouted event is not judged by the engine's own reroute delay, and a late
event never makes the present look older). An event older than that present
by more than ``late_event_grace_s`` is *late*: it updates
windows, totals and the timeline but raises no flag and no trigger. The contact policy (quiet hours, caps) and
a trigger's staleness are judged at send time by the wall clock, read once
per batch (``policy_clock``).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from livesignals import metrics
from livesignals.contract import Event, RawMessage, decode
from livesignals.errors import DeadLetter, InvalidEvent
from livesignals.settings import Settings
from models.registry import ModelSet
from operators import erasure, lateness
from operators.batch_positions import UnreadableProfile, next_offsets, position_text, unprocessable
from operators.decisions import responses
from operators.decisions.actions import Arbiter
from operators.decisions.policy import ContactPolicy
from operators.outputs import out_records, replay_records
from operators.partition import ForgettingAggregates, PartitionAggregates, advance_watermark
from operators.ports import Publisher, Store, plan_commit, send
from operators.profile360 import kpis, voc
from operators.profile360.profile import CustomerState, Undo, fingerprint
from operators.profile360.update import apply_event, bound_flags, is_complaint
from operators.report import BatchReport, export_model_metrics
from operators.routing import Reroute, Router, is_replay, read_position
from operators.rules import failures
from operators.rules.context import ContextWindows, context
from operators.rules.dependencies import changed_by
from operators.rules.rulebook_source import RulebookSource
from operators.rules.rulebook_source import rules_path as _rules_path
from operators.rules.signals import Trigger
from operators.scoring import online, silence
from operators.scoring.features import churn_features
from operators.scoring.learner import ModelView, SharedLearner
from operators.staging import StagedAggregates
from operators.sweep import sweep_silent

log = logging.getLogger(__name__)

TextScorer = Callable[[str, str | None], float]
"""``(text, language hint) -> sentiment in [-1, 1]``: replaces the sentiment model (tests)."""


class Engine:
    """Turns batches of raw messages into state, flags and triggers."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        publisher: Publisher,
        clock: Callable[[], float] = time.time,
        sentiment: TextScorer | None = None,
        partition_counts: Mapping[str, int] | None = None,
    ) -> None:
        """``partition_counts``: topic -> partitions of the input topics and the repartition
        topic (from Kafka's metadata); ``None`` turns routing off (in-memory replays)."""
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self.sentiment = sentiment
        self._partitions: dict[tuple[str, int], PartitionAggregates] = {}
        """Aggregates of the input partitions read (one entry per partition; cleared by :meth:`forget`)."""
        self._aggregates = StagedAggregates()
        self.windows = ContextWindows(settings.context_window_s * 1000, settings.repeat_contact_window_s * 1000)
        self.arbiter = Arbiter(settings.nba_policy, settings.nba_epsilon, settings.nba_top_n, settings.nba_seed)
        self.per_event = settings.redis_mode == "per_event"
        self.router = Router.for_settings(settings, partition_counts)
        self.late_grace_ms = settings.late_event_grace_s * 1000
        self.scoring = online.ScoringConfig(
            churn_horizon_ms=int(settings.churn_horizon_days * 86_400_000),
            snapshot_every_ms=int(settings.churn_horizon_days * 86_400_000 / settings.churn_snapshots_per_horizon),
        )
        self.models_enabled = settings.models_enabled
        self.learner = SharedLearner(
            store.models_log, settings.models, settings.models_checkpoint_every, settings.models_checkpoint_every_s
        )
        # models off: an empty view (building the models would import River: seconds at start-up)
        self._view: ModelView = self.learner.view() if self.models_enabled else ModelView(ModelSet())
        self._control_checked = 0.0
        self._batch, self._batch_ms = 0, 0
        self.work_seconds = 0.0
        """Wall seconds decoding and applying events, over every batch, without the round trips any batch pays
        (loads, models' catch-up, sweep, publish, commit): what a smaller batch shortens (:mod:`flows.batch_bound`)."""
        self._waited = 0.0
        self._replaying = False
        """In a ``process(publish=False)``: a replay of what was published before a STATE LOSS."""
        self.rulebook = RulebookSource(_rules_path(settings.rules_path), settings.rules_reload_s)
        self._rules_now = self.rulebook.current()
        self.rules_dependency_aware = True  # False: every flag rule on every event (operators.rules.dependencies)
        quiet_start, quiet_end = (int(h) for h in settings.quiet_hours.split("-"))
        self.policy = ContactPolicy(
            daily_cap=settings.contact_daily_cap, weekly_cap=settings.contact_weekly_cap,
            quiet_start_hour=quiet_start, quiet_end_hour=quiet_end, max_ignored=settings.max_ignored_offers,
            max_age_ms=settings.trigger_max_age_s * 1000,
        )  # fmt: skip

    def process(self, messages: list[RawMessage], publish: bool = True, reroute: bool = False) -> BatchReport:
        """Process one batch end to end (see the module docstring for the order).

        ``publish=False``: a replay of events whose outputs Kafka already confirmed (after a STATE LOSS,
        below the offsets committed before): state is rebuilt, nothing is published again -- but with
        ``reroute`` its reroutes and dead letters, when the reroutes waiting in the repartition topic can no
        longer be verified (:attr:`state.ownership.Claim.reroute_again`)."""
        marks = [time.perf_counter()]  # where the batch's time goes: decode, apply, plan, publish, commit
        self._replaying = not publish  # contact policy judged at stream time (_send_time)
        report = BatchReport(messages=len(messages))
        self._batch += 1  # undo records replay events of their own batch only (CustomerState.undo_record)
        self._batch_ms = int(self.clock() * 1000)
        events = self._route(self._decode(messages, report), messages, report)
        marks.append(time.perf_counter())
        waited = self._waited
        learned = self.learner.catch_up() if self.models_enabled else 0  # what the log got since our last batch
        if self.models_enabled:
            self._view = self.learner.view()
        self._apply_promotions()
        self._waited += time.perf_counter() - marks[-1]
        self._rules_now = self.rulebook.current()  # a reload takes effect between batches
        touched, partitions = self._apply(events, report, messages)
        swept = time.perf_counter()
        if self.models_enabled:
            touched += sweep_silent(self._view, self.store, self.scoring, partitions, report,
                                    {s.customer_key: s for s in touched}, next_offsets(messages))  # fmt: skip
        marks.append(time.perf_counter())
        self._waited += marks[2] - swept
        self.work_seconds += marks[2] - marks[0] - (self._waited - waited)
        records = out_records if publish else replay_records if reroute else None
        confirm = send(self.publisher, records(self.settings, self.store, report)) if records else lambda: None
        if not publish:  # nor to the desks' streams: written and pushed before the loss (break-test 10g, C1)
            metrics.REPLAY_NOT_REPUBLISHED.inc(len(messages))
        commit = plan_commit(self.store, touched, report.flags if publish else [], next_offsets(messages),
                             partitions, notify=publish)  # encoded while Kafka writes the outputs  # fmt: skip
        marks.append(time.perf_counter())
        confirm()  # every output confirmed before anything is committed (a failure: the batch is redone)
        read = self.learner.publish_and_read(self._view.take()) if self.models_enabled else None  # before the commit
        marks.append(time.perf_counter())
        commit()
        marks.append(time.perf_counter())
        if self.models_enabled:  # our lessons, learned after the commit from the append's read (one round trip)
            export_model_metrics(self.learner.models, learned + self.learner.learn_read(read) > 0)
        report.export(messages, {a.name for a in self._rules_now.actions})
        metrics.BATCH_SECONDS.observe(time.perf_counter() - marks[0])
        for stage, t0, t1 in zip(("decode", "apply", "plan", "publish", "commit"), marks, marks[1:], strict=False):
            metrics.BATCH_STAGE_SECONDS.labels(stage).observe(t1 - t0)
        return report

    def forget(self) -> None:
        """Drop everything cached in memory (after a failed batch: it will be replayed)."""
        self._partitions.clear()
        forget = getattr(self.store, "forget", None)
        if forget is not None:
            forget()

    def _decode(self, messages: list[RawMessage], report: BatchReport) -> list[Event]:
        s = self.settings
        events: list[Event] = []
        for m in messages:
            try:
                events.append(
                    decode(
                        m.value,
                        m.origin,
                        now_ms=self._batch_ms,
                        max_bytes=s.max_event_bytes,
                        max_future_skew_ms=s.max_future_skew_s * 1000,
                    )
                )
            except InvalidEvent as exc:
                report.dead_letters.append(DeadLetter(m.value or b"", m.key, exc.reason, exc.detail, m.origin))
        return events

    def _apply(
        self, events: list[Event], report: BatchReport, messages: list[RawMessage]
    ) -> tuple[list[CustomerState], dict[tuple[str, int], PartitionAggregates]]:
        states: dict[str, CustomerState] = {}
        loading = time.perf_counter()
        if not self.per_event:
            states = self.store.load(e.customer_key for e in events)
        ledger = erasure.ledger_cutoffs(self.store, states)  # of the customers Redis holds no profile for
        self._waited += time.perf_counter() - loading
        touched: dict[str, CustomerState] = {}
        partitions: dict[tuple[str, int], PartitionAggregates] = {}
        effects = BatchReport()  # each applied event's own, absorbed into ``report`` once it fully applied
        for event in events:
            key = event.customer_key
            state = self.store.load([key])[key] if self.per_event else states[key]
            if state.unreadable is not None and event.type != "erase":  # never applied over a damaged document
                report.dead_letters.append(unprocessable(event, messages, UnreadableProfile(state.unreadable)))
                continue
            if is_replay(state.applied, event):  # state.already_applied, without its call and import
                report.replay_skipped += 1
                continue
            if event.type == "erase":  # the customer and what it linked (operators.erasure)
                erased = erasure.erase_all(event, state, lambda e: self._partitions_at(e, partitions), self.router,
                                           lambda k: self.store.load([k])[k], report, erasure.claimants_of(self.store),
                                           erasure.claimed_of(self.store))  # fmt: skip
                for s in erased:
                    s.unreadable = None  # erased: empty now, a newer event starts it afresh (break-test 16c, C2)
                touched.update((s.customer_key, s) for s in erased)
                continue
            cut = erasure.cutoff(state, ledger)
            if cut is not None and event.event_time_ms <= cut:
                report.erased_dropped += 1  # a replay or late event of an erased customer: never applied
                continue
            event_fingerprint = fingerprint(event.event_id)
            if state.is_duplicate(event_fingerprint):
                report.duplicates += 1
                continue
            effects.clear_event()
            if not self._apply_atomically(event, state, partitions, effects, report, messages):
                continue
            state.remember_id(event_fingerprint)  # only once applied: a dead-lettered event's retry applies
            state.note_applied(event)
            report.absorb(effects)
            if self.per_event:
                self.store.commit([state], [], {})  # benchmark baseline: a round trip per event
            else:
                touched[key] = state
        return list(touched.values()), partitions

    def _apply_atomically(
        self,
        event: Event,
        state: CustomerState,
        partitions: dict[tuple[str, int], PartitionAggregates],
        effects: BatchReport,
        report: BatchReport,
        messages: list[RawMessage],
    ) -> bool:
        """Apply one event all or nothing (see :mod:`operators.staging`); False if it was dead-lettered.

        The state is changed in place and put back from its undo record on
        failure; partition aggregates, model lessons and ``effects`` (the
        event's own report) are staged, kept only once every stage succeeded.
        """
        undo = state.undo_record(self._batch)
        self._view.at(f"{event.origin.topic}:{event.origin.partition}", event.origin.offset)
        try:
            part = self._partition(event, partitions)
            self._apply_one(event, state, part, effects)
        except Exception as exc:  # never let one event stop the flow: dead-letter it, change nothing
            self._view.discard_current()
            self._aggregates.discard()
            self._restore(state, undo, partitions)
            # no message body, no ids: the exception's text may quote the payload (it is in the dead letter)
            log.error("event at %s could not be applied: %s\n%s", position_text(event), type(exc).__name__,
                      "".join(traceback.format_tb(exc.__traceback__)))  # fmt: skip
            report.dead_letters.append(unprocessable(event, messages, exc))
            return False
        self._aggregates.commit()
        effects.applied += 1
        effects.applied_by_type[event.type] = 1
        return True

    def _restore(
        self, state: CustomerState, undo: Undo, partitions: dict[tuple[str, int], PartitionAggregates]
    ) -> None:
        """Put ``state`` back as ``undo`` found it: its document, then the events of this batch applied since,
        applied again the same way (same state, models, rules and batch time) with what they stage dropped:
        their outputs, lessons and aggregates are already kept. Raises if one fails now (the batch is retried)."""
        state.undo(undo)
        if not undo.replayed:
            return
        timeline, links = state.new_timeline, state.new_links  # as undo left them: the record's moment
        state.new_timeline, state.new_links = [], []
        with failures.uncounted():  # counted when they were first applied
            for event in undo.replay():
                self._view.at(f"{event.origin.topic}:{event.origin.partition}", event.origin.offset)
                self._apply_one(event, state, self._partition(event, partitions), BatchReport())
                state.remember_id(fingerprint(event.event_id))
                self._view.discard_current()
                self._aggregates.discard()
        state.new_timeline, state.new_links = timeline, links
        state.to_bytes()  # known again: a later failure of this customer replays from here
        state.rules_memo = None

    def _apply_one(
        self,
        event: Event,
        state: CustomerState,
        part: PartitionAggregates,
        report: BatchReport,
    ) -> None:
        """Score, apply and evaluate one event (its customer's state is loaded).

        ``report`` is the event's own; partition aggregates go through the
        engine's stage (:mod:`operators.staging`), kept by the caller on success.
        """
        if self.models_enabled:  # the silent stretch before this event, as it was (operators.scoring.silence)
            silence.take(self._view, state, event.event_time_ms, self.scoring, report.scoring)
        now = lateness.as_of(state, event)  # the present at the event's input position (operators.lateness)
        lateness.note(state, event)
        text = online.text_of(event)
        score = self._score_before(part, state, event, text, report, now)
        contributions = kpis.contributions(state, event)
        # a replayed event the stored aggregates already include (state.write_ahead) is not counted again
        counted = read_position(event).offset >= part.applied
        if counted and contributions:  # most events (browsing) contribute to no KPI: Windows.add would do nothing
            self._aggregates.add(part.kpi, event.event_time_ms, contributions)
        for name, value in contributions.items():
            report.kpi[name] += value
            if name.rsplit("|", 1)[1] in kpis.VALUE_COMPONENTS:
                report.kpi[name + "_n"] += 1
        complaint = is_complaint(event, score)  # once: the windows count it too
        apply_event(state, event, score, complaint)
        if counted:
            self._aggregates.later(advance_watermark, part, event.event_time_ms)
        if self.models_enabled:
            due = online.score_churn(self._view, state, event, self.scoring, report.scoring, is_complaint(event, None))
            if due is not None and counted:
                self._aggregates.later(part.index_due, due, state.customer_key)
            online.score_fraud(self._view, state, event, report.scoring)
        if complaint and counted:
            self._aggregates.add(part.voc, event.event_time_ms, voc.contributions(event.payload.get("topic"), text))
            report.complaints += 1
        if not (self._rules_now.flags or self._rules_now.actions) or self._late(event, now, report):
            state.rules_memo = None  # rules did not see what this event changed: all run next time
            return
        ctx = context(state, event, self.windows, now)
        aware = self.rules_dependency_aware
        changed = changed_by(event, text is not None, self.models_enabled, state) if aware else None
        flags = self._rules_now.evaluate(state, event, ctx, changed)
        bound_flags(state)
        raised = [f.name for f in flags if not f.cleared]
        for i, flag in enumerate(flags):
            if not flag.cleared:
                responses.note_flag(state, flag)
                if self.models_enabled:
                    flags[i] = replace(flag, relevance=responses.flag_relevance(self._view, state, flag.name,
                                                                                event.event_time_ms))  # fmt: skip
                    responses.note_relevance(state, flags[i])
        report.flags.extend(flags)
        if self._rules_now.actions and (ctx["event"]["inbound"] or raised):
            ctx["event"]["raised"] = raised
            self._decide(event, state, ctx, part, report, now)

    def _decide(
        self,
        event: Event,
        state: CustomerState,
        ctx: dict[str, Any],
        part: PartitionAggregates,
        report: BatchReport,
        present: int,
    ) -> None:
        """Choose the next-best action at this moment; send it if the contact policy allows."""
        now = event.event_time_ms
        model = self._view.model("offers") if self.models_enabled else None
        decision, excluded = self.arbiter.decide(state, event, ctx, self._rules_now.actions, model,
                                                 lambda: churn_features(state, now))  # fmt: skip
        report.suppressed.extend(excluded)
        if decision is None:
            return
        c = decision.chosen
        trigger = Trigger(
            decision.decision_id, event.customer_key, c.action, c.channel, (c.reason,), now, now + c.ttl_ms,
            (event.event_id,), c.purpose, round(c.score, 4), round(c.propensity, 4),
            tuple({"action": o.action, "score": round(o.score, 4), "reason": o.reason}
                  for o in decision.ranked[: self.arbiter.top_n] if o.action != c.action),
            c.item,
        )  # fmt: skip
        reason: str | None = self.policy.admit(state, trigger, self._send_time(present))
        if reason is None:
            report.triggers.append(trigger)
        else:
            report.suppressed.append((c.action, reason))
        report.decisions.append((decision, reason or "sent"))
        responses.remember(state, decision, reason is None, self.arbiter.top_n)

    def _apply_promotions(self) -> None:
        """Swap champion and challenger where ``livesignals models promote`` asked (polled)."""
        now = time.monotonic()
        if not self.models_enabled or now - self._control_checked < self.settings.model_control_poll_s:
            return
        self._control_checked = now
        promoted = False
        for kind, promotion_id in self.store.model_control().items():
            promoted |= self.learner.models.promote(kind, promotion_id)
        if promoted:
            self.learner.save_summary()

    def _score_before(
        self,
        part: PartitionAggregates,
        state: CustomerState,
        event: Event,
        text: str | None,
        report: BatchReport,
        present: int,
    ) -> float | None:
        """Sentiment of the event's text, and the labels the event carries (before it is applied)."""
        if self.sentiment is not None:
            return self.sentiment(text, event.payload.get("lang")) if text else None
        if not self.models_enabled:
            return None
        online.learn_labels(self._view, state, event, report.scoring)
        report.outcomes += responses.learn_responses(self._view, state, event, report.scoring, present,
                                                     self.late_grace_ms)  # fmt: skip
        return online.score_text(self._view, state, event, text, report.scoring) if text else None

    def _partition(self, event: Event, touched: dict[tuple[str, int], PartitionAggregates]) -> PartitionAggregates:
        # A rerouted event counts where it is read: with the offsets of the repartition partition.
        read = read_position(event)
        pos = (read.topic, read.partition)
        part = self._partitions.get(pos)
        if part is None:
            part = self._partitions[pos] = self.store.load_partition(*pos)
        touched[pos] = part
        return part

    def _partitions_at(
        self, event: Event, touched: dict[tuple[str, int], PartitionAggregates]
    ) -> list[ForgettingAggregates]:
        """The aggregates of every topic at ``event``'s partition number (an erase read on the repartition
        topic forgets a churn due index entry made on an input topic); those changed count as touched."""
        self._partition(event, touched)  # where the erase is read: committed with its offsets, as any event's
        number = read_position(event).partition
        topics = (*self.settings.input_topics, self.settings.repartition_topic)
        return [ForgettingAggregates(self._loaded((t, number)), (t, number), touched) for t in topics]

    def _loaded(self, pos: tuple[str, int]) -> PartitionAggregates:
        part = self._partitions.get(pos)
        if part is None:
            part = self._partitions[pos] = self.store.load_partition(*pos)
        return part

    # --- routing and event time ------------------------------------------------

    def _route(self, events: list[Event], messages: list[RawMessage], report: BatchReport) -> list[Event]:
        """The events this partition applies; the others are rerouted to their owner partition."""
        router = self.router
        if router is None:
            return events
        by_position = {m.origin: m for m in messages}
        kept: list[Event] = []
        for event in events:
            routed = router.route(event, by_position[event.origin])
            if isinstance(routed, Reroute):
                report.reroutes.append(routed)
            elif isinstance(routed, DeadLetter):  # a repartition record that does not verify: never applied
                report.dead_letters.append(routed)
            elif routed is not None:  # None: another deployment's reroute, skipped (counted by the router)
                kept.append(routed)
        return kept

    def _late(self, event: Event, now: int, report: BatchReport) -> bool:
        """True (and counted) when the event is older than ``now`` (its present at its input position,
        :func:`operators.lateness.as_of`) by more than the grace."""
        if not lateness.is_late(now, event, self.late_grace_ms):
            return False
        report.late += 1
        return True

    def _send_time(self, present: int) -> int:
        """*Now* for the contact policy and staleness: the present at the event's input position, or the wall
        clock read once at the batch's start (its outputs are sent together; :meth:`_restore` re-applies alike).

        A STATE LOSS replay below what was published (``process(publish=False)``) judges at stream time, the
        nearest it has to when the original batch ran (its own wall clock, hours later, forgot old triggers and
        recorded as sent what the original suppressed: break-test 10g, W1); exact for an engine that kept up."""
        return present if self.settings.policy_clock == "stream" or self._replaying else self._batch_ms
