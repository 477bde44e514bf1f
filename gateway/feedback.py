"""Agents' verdicts from the desktop, written back as contract events on the input topic.

The learning loops already exist in the engine; this closes them from the desk:

==========================  =================================================================
request ``verdict`` on      event produced (``livesignals/schemas/event-v1.json``)
==========================  =================================================================
action: accept / reject     ``offer_response`` ``accepted`` / ``rejected``; ``decision_id`` =
                            the 360's decision when the action is the one it chose and sent
                            (the offers model learns from that decision's features), else none
                            (learned as an offer made by the agent)
action: not_relevant        ``agent_feedback`` kind ``action``, label ``not_relevant``, target =
                            the decision id
flag: relevant /            ``agent_feedback`` kind ``flag``, target = the flag id
not_relevant                (teaches ``flag_relevance``)
sentiment: negative /       ``agent_feedback`` kind ``sentiment``, target = the text's event id
neutral / positive
==========================  =================================================================

Every event carries the agent (``agent_id``), is on channel ``backoffice``,
keyed by the customer like every producer's (murmur2), and its ``event_id``
is derived from the agent, the customer and the request's ``Idempotency-Key``.
Retries are answered from a record in Redis (:mod:`gateway.feedback_ledger`),
not re-sent, so a retry is applied once however late it comes. Accept and
reject are taken only for an action the customer was offered (the ranked
actions of the 360's decision): an invented action name would be taught to
the shared offers model. Every other verdict names something the customer
has (:func:`known_targets`: a recent or raised flag, a recent text, or a
pending offer -- and a not-relevant naming an action names that offer's), else 422: each verdict is an event in
the customer's bounded timeline. Each event is checked against the contract before it
is sent, so the service never writes what the engine would dead-letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from livesignals import metrics, serde
from livesignals.contract import decode, primary_key
from livesignals.errors import InvalidEvent, Origin

log = logging.getLogger(__name__)

VERDICTS: Final = {
    "action": frozenset({"accept", "reject", "not_relevant"}),
    "flag": frozenset({"relevant", "not_relevant"}),
    "sentiment": frozenset({"negative", "neutral", "positive"}),
}
"""What an agent may say, per target kind."""


class BadFeedback(ValueError):
    """A feedback request that cannot become a valid event (the message says why)."""


class NotOffered(BadFeedback):
    """Accept or reject of an action the customer was not offered."""


class UnknownTarget(BadFeedback):
    """A verdict on a flag, text or decision this customer does not have (second break-test B13)."""


def known_targets(history: dict[str, Any], flags: dict[str, Any], predictions: dict[str, Any]) -> dict[str, set[str]]:
    """What a verdict may be about for one customer, from its stored sections: the ids of its recent and
    raised flags, of its recent texts, and of its pending offers (a decision that was not sent has no
    offer the engine could learn "not relevant" on: third break-test C14).

    A verdict on anything else is refused: each verdict becomes an event folded into the customer's
    timeline and counts, so made-up ids let one agent push a customer's real history out of its
    bounded timeline.

    >>> known = known_targets({"recent_flags": [["f1", "frustrated"]]}, {"vip": {"id": "f2"}},
    ...                       {"recent_texts": [["e9", 1, "hi", [], 0.1]], "next_best_actions": {"decision_id": "d1"},
    ...                        "offers_pending": [{"id": "o1"}]})
    >>> sorted(known["flag"]), sorted(known["sentiment"]), sorted(known["action"])
    (['f1', 'f2'], ['e9'], ['o1'])
    """
    flag_ids = {str(f[0]) for f in history.get("recent_flags", []) if f}
    flag_ids |= {str(f["id"]) for f in flags.values() if isinstance(f, dict) and f.get("id")}
    texts = {str(t[0]) for t in predictions.get("recent_texts", []) if t}
    actions = {str(o["id"]) for o in predictions.get("offers_pending", []) if isinstance(o, dict) and o.get("id")}
    return {"flag": flag_ids, "sentiment": texts, "action": actions}


def pending_action(predictions: dict[str, Any], offer_id: str) -> str | None:
    """The action of the pending offer ``offer_id`` (what a not-relevant verdict on it teaches), if any.

    >>> pending_action({"offers_pending": [{"id": "d1", "action": "callback"}]}, "d1")
    'callback'
    """
    for offer in predictions.get("offers_pending", []):
        if isinstance(offer, dict) and str(offer.get("id")) == offer_id:
            action = offer.get("action")
            return action if isinstance(action, str) else None
    return None


def offered_actions(decision: dict[str, Any] | None) -> frozenset[str]:
    """The actions a decision (the 360's ``next_best_actions``) offered: its ranked actions and its choice.

    >>> sorted(offered_actions({"chosen": "a", "ranked": [["a", 0.9, 0.5, "r"], {"action": "b"}]}))
    ['a', 'b']
    >>> offered_actions(None)
    frozenset()
    """
    if not isinstance(decision, dict):
        return frozenset()
    names = {decision.get("chosen")}
    for row in decision.get("ranked") or ():
        names.add(row.get("action") if isinstance(row, dict) else (row[0] if row else None))
    return frozenset(n for n in names if isinstance(n, str) and n)


ANSWER: Final = "answer:"
"""The prefix of a verdict target that is the customer's own answer (accept or reject of a decision):
recorded once per customer, whichever desk clicks (:mod:`gateway.feedback_ledger`)."""


def verdict_target(request: dict[str, Any], decision: dict[str, Any] | None) -> str:
    """What one verdict is about: the flag, the text, or the decision an agent judged (one verdict per
    agent each), or the decision the customer answered (one answer per customer, :data:`ANSWER`).

    >>> verdict_target({"target": "flag", "target_id": "f1"}, None)
    'flag:f1'
    >>> verdict_target({"target": "action", "action": "x", "verdict": "accept"}, {"decision_id": "d9"})
    'answer:d9'
    >>> verdict_target({"target": "action", "target_id": "d9", "verdict": "not_relevant"}, {"decision_id": "d9"})
    'action:d9'
    """
    if request.get("target") == "action":
        if request.get("verdict") in ("accept", "reject"):
            decision_id = (decision or {}).get("decision_id") or "-"
            return f"{ANSWER}{decision_id}"
        return f"action:{request.get('target_id')}"
    return f"{request.get('target')}:{request.get('target_id')}"


def label_kind(request: dict[str, Any], flag_names: dict[str, str]) -> str:
    """Which shared model's labels a verdict feeds, for the per-agent daily quota: ``flag:<name>``
    (``flag_relevance`` learns per flag name), ``sentiment``, ``action`` or ``answer`` (the offers model).

    >>> label_kind({"target": "flag", "target_id": "f1"}, {"f1": "frustrated"})
    'flag:frustrated'
    >>> label_kind({"target": "action", "verdict": "accept"}, {})
    'answer'
    """
    target = request.get("target")
    if target == "flag":
        return f"flag:{flag_names.get(str(request.get('target_id')), '?')}"
    if target == "action" and request.get("verdict") in ("accept", "reject"):
        return "answer"
    return str(target)


def flag_names(history: dict[str, Any], flags: dict[str, Any]) -> dict[str, str]:
    """Flag id -> flag name, from a customer's recent and raised flags (what :func:`known_targets` accepts).

    >>> flag_names({"recent_flags": [["f1", "frustrated"]]}, {"vip": {"id": "f2"}})
    {'f1': 'frustrated', 'f2': 'vip'}
    """
    names = {str(f[0]): str(f[1]) for f in history.get("recent_flags", []) if isinstance(f, list) and len(f) > 1}
    names.update({str(f["id"]): str(name) for name, f in flags.items() if isinstance(f, dict) and f.get("id")})
    return names


def event_id(agent: str, idempotency_key: str, customer_key: str = "") -> str:
    """The event id of a feedback request: the same agent, customer and key give the same id.

    >>> event_id("a7", "k1", "customer_id:c1") == event_id("a7", "k1", "customer_id:c1")
    True
    >>> len({event_id("a7", "k1", "customer_id:c1"), event_id("a8", "k1", "customer_id:c1"),
    ...      event_id("a7", "k1", "customer_id:c2")})
    3
    """
    digest = hashlib.blake2b(f"{agent}\x1f{customer_key}\x1f{idempotency_key}".encode(), digest_size=16).hexdigest()
    return f"fb-{digest}"


def build_event(
    customer_key: str,
    agent: str,
    request: dict[str, Any],
    idempotency_key: str,
    now_ms: int,
    decision: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The contract event for one feedback request on ``customer_key``, or :class:`BadFeedback`.

    ``request``: ``{"target": "action"|"flag"|"sentiment", "target_id": ..., "verdict": ...}``
    (``action`` the action's name for accept/reject); ``decision`` is the 360's
    ``next_best_actions`` (which action was chosen and sent under which id).

    >>> e = build_event("customer_id:c1", "a7", {"target": "flag", "target_id": "f1", "verdict": "relevant"},
    ...                 "k1", 1000)
    >>> e["type"], e["payload"]
    ('agent_feedback', {'target_id': 'f1', 'kind': 'flag', 'label': 'relevant', 'agent_id': 'a7'})
    """
    target, verdict = request.get("target"), request.get("verdict")
    if not isinstance(target, str) or target not in VERDICTS:  # a list or an object is not hashable
        raise BadFeedback(f"target must be one of {sorted(VERDICTS)}")
    if not isinstance(verdict, str) or verdict not in VERDICTS[target]:
        raise BadFeedback(f"verdict for {target} must be one of {sorted(VERDICTS[target])}")
    if not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 200:
        raise BadFeedback("an Idempotency-Key header of 1-200 characters is required")
    target_id = request.get("target_id")
    payload: dict[str, Any]
    if target == "action" and verdict in ("accept", "reject"):
        action = request.get("action")
        if not isinstance(action, str) or not action:
            raise BadFeedback("accept/reject needs the action's name (action)")
        if action not in offered_actions(decision):
            raise NotOffered(f"action {action[:64]!r} was not offered to this customer")
        payload = {"action": action, "response": "accepted" if verdict == "accept" else "rejected"}
        if decision and decision.get("chosen") == action and decision.get("sent") and decision.get("decision_id"):
            payload["decision_id"] = decision["decision_id"]
        etype = "offer_response"
    else:
        if not isinstance(target_id, str) or not target_id:
            raise BadFeedback("target_id is required")
        payload = {"target_id": target_id, "kind": target, "label": verdict}
        etype = "agent_feedback"
    payload["agent_id"] = agent
    kind, _, value = customer_key.partition(":")
    doc = {
        "schema_version": 1, "event_id": event_id(agent, idempotency_key, customer_key), "type": etype,
        "channel": "backoffice", "customer": {kind: value}, "event_time": now_ms, "payload": payload,
    }  # fmt: skip
    try:
        decode(serde.dumps(doc), Origin("gateway", 0, 0), now_ms=now_ms)
    except InvalidEvent as exc:
        raise BadFeedback(f"not a valid event: {exc}") from None
    return doc


class FeedbackProducer:
    """Produces feedback events to the input topic and waits, on the event loop, for this event's delivery.

    It never flushes the producer (that would wait for every request's events)
    and holds no worker thread while it waits (reads keep their pool): it polls
    the producer for delivery reports without blocking and sleeps between polls.
    The producer gives an event up after ``message.timeout.ms``, which
    :func:`producer_config` sets to the wait (``timeout_s``); the wait lasts a
    little longer, so a failure reported to the desk is an event librdkafka no
    longer holds and will not send later.

    A producer that hit a fatal error (``UNKNOWN_PRODUCER_ID`` after the broker
    lost its log), whose epoch the broker refuses (``PRODUCER_FENCED``,
    ``INVALID_PRODUCER_EPOCH``), or that failed :data:`RENEW_AFTER` sends in a
    row, refuses every later event for good: with ``renew`` (a factory) it is
    replaced, counted in ``livesignals_kafka_producer_renewed_total``, and the
    desk's retry (same idempotency key) goes out on the new one (break-test 10e,
    J2: feedback stayed refused until the service was restarted).
    """

    RENEW_AFTER: Final = 3
    """Failed sends in a row after which the producer is replaced even without a fatal error."""

    GRACE_S: Final = 2.0
    """How much longer than twice the producer's own timeout a request waits for the delivery report
    (librdkafka scans for timed-out events about once a second, later on a loaded host)."""

    def __init__(
        self, producer: Any, topic: str, timeout_s: float = 10.0, renew: Callable[[], Any] | None = None
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.timeout_s = timeout_s
        self.renew = renew
        self._failures = 0

    async def send(self, doc: dict[str, Any]) -> None:
        """Produce ``doc`` keyed by its customer; raises ``RuntimeError`` unless Kafka confirms it."""
        try:
            await self._send(doc)
        except RuntimeError as exc:
            self._failures += 1
            dead = isinstance(exc.__cause__, Exception) and _dead_producer(exc.__cause__)
            if self.renew is not None and (dead or self._failures >= self.RENEW_AFTER):
                self._replace(exc)
            raise
        self._failures = 0

    async def _send(self, doc: dict[str, Any]) -> None:
        outcome: list[Any] = []
        key = primary_key(doc["customer"]).encode()
        producer = self.producer
        try:
            producer.produce(self.topic, serde.dumps(doc), key=key, on_delivery=lambda err, _m: outcome.append(err))
        except BufferError:
            raise RuntimeError("feedback not sent: the producer's queue is full") from None
        except Exception as exc:  # a fatal producer refuses at once (KafkaException _FATAL)
            raise RuntimeError(f"feedback not sent: {exc}") from exc
        deadline = time.monotonic() + 2 * self.timeout_s + self.GRACE_S
        delay = 0.002
        while not outcome:
            try:
                producer.poll(0)
            except Exception as exc:  # confluent-kafka raises a fatal error out of poll
                raise RuntimeError(f"feedback not confirmed: {exc}") from exc
            if outcome:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("feedback not confirmed by Kafka in time (it may still be delivered)")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        if outcome[0] is not None:
            raise RuntimeError(f"feedback not delivered by Kafka: {outcome[0]}") from _Refused(outcome[0])

    def _replace(self, why: Exception) -> None:
        if self.renew is None:
            return
        old, self.producer, self._failures = self.producer, self.renew(), 0
        metrics.KAFKA_PRODUCER_RENEWED.inc()
        log.error("feedback producer replaced after %s", why)
        with contextlib.suppress(Exception):  # a dead producer may refuse even this; it is dropped either way
            old.purge(in_queue=True, in_flight=True)


class _Refused(Exception):
    """The Kafka error a delivery report carried (the cause of a failed send)."""

    def __init__(self, err: Any) -> None:
        super().__init__(str(err))
        self.err = err


def _dead_producer(cause: Exception) -> bool:
    """Whether ``cause`` says the producer can never send again (fatal, or its epoch refused)."""
    err = getattr(cause, "err", None) or (cause.args[0] if getattr(cause, "args", None) else None)
    code = getattr(err, "code", None)
    if not callable(code):
        return isinstance(cause, SystemError)
    fatal = getattr(err, "fatal", None)
    from confluent_kafka import KafkaError

    return bool(fatal and fatal()) or code() in (KafkaError._FATAL, KafkaError.PRODUCER_FENCED,
                                                 KafkaError.INVALID_PRODUCER_EPOCH)  # fmt: skip


def producer_config(timeout_s: float) -> dict[str, Any]:
    """Producer settings for feedback: idempotent, no lingering, an event given up after ``timeout_s``.

    >>> producer_config(5.0)["message.timeout.ms"]
    5000
    """
    return {"enable.idempotence": True, "linger.ms": 0, "message.timeout.ms": int(timeout_s * 1000)}
