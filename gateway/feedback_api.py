"""The feedback route: token first, then a capped body, then the verdict checked, taken once and sent.

Order: token, role and access (401/403, audited, before a byte of the body is
read), existence (404), the body (at most ``gateway_body_max_bytes``, else
413), its shape (400), the action offered or the target known for this
customer (422, :func:`gateway.feedback.known_targets`), the Idempotency-Key and the
one-verdict and one-answer rules (:mod:`gateway.feedback_ledger`: the stored
answer, or 409), the agent's daily quota for the model the verdict teaches (429),
then the event is produced and its delivery awaited on the event loop (503
when Kafka does not confirm it: the event was not sent; the desk may retry
with the same key).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from gateway import access, feedback
from gateway.api import Granted, Service, _known, authorise, json_response, refuse
from gateway.feedback_ledger import FeedbackLedger
from gateway.limits import read_capped
from gateway.problems import Problem
from livesignals import metrics, serde
from state import reader


async def post_feedback(service: Service, request: Request) -> Response:
    """An agent's verdict on an action, a flag or a text's sentiment: produced as a contract event (202)."""
    g = await run_in_threadpool(authorise, service, request, "feedback", None, access.MAY_SEND_FEEDBACK)
    _known(g)
    raw = await read_capped(request, service.settings.gateway_body_max_bytes)
    try:
        body = serde.loads(raw)
    except serde.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise Problem(400, "Bad feedback", "the body must be a JSON object")
    if service.feedback is None:
        raise Problem(503, "Feedback unavailable", "no Kafka producer configured")
    key = request.headers.get("idempotency-key", "")
    doc, target, kind = await run_in_threadpool(_event, service, g, body, key)
    ledger = await run_in_threadpool(_ledger, service)
    agent, now_s = g.principal.subject, time.time()
    answer = await run_in_threadpool(ledger.begin, agent, g.customer, key, body, target)
    if answer is not None:
        return json_response(answer, 202)
    try:
        await run_in_threadpool(ledger.spend, agent, kind, now_s)
    except Problem as problem:
        await run_in_threadpool(ledger.release, agent, g.customer, key, target)
        if problem.status == 429:  # the agent's quota: audited as a refusal, within its refusal budget
            refuse(service, request, g.principal, "feedback", g.asked, g.customer, f"rate limited: {problem.detail}")
        raise
    try:
        await service.feedback.send(doc)
    except RuntimeError as exc:
        await run_in_threadpool(ledger.release, agent, g.customer, key, target)
        await run_in_threadpool(ledger.refund, agent, kind, now_s)
        raise Problem(503, "Feedback not delivered", str(exc)) from None
    answer = {"event_id": doc["event_id"], "type": doc["type"], "payload": doc["payload"]}
    await run_in_threadpool(ledger.done, agent, g.customer, key, body, target, answer)
    metrics.GATEWAY_FEEDBACK.labels(body["target"]).inc()
    return json_response(answer, 202)


def _ledger(service: Service) -> FeedbackLedger:
    """The feedback ledger, its digests keyed with the deployment's privacy secret."""
    settings = service.settings
    pending_s = int(2 * settings.gateway_feedback_timeout_s + feedback.FeedbackProducer.GRACE_S) + 10
    return FeedbackLedger(
        service.client, settings.key_prefix, settings.gateway_feedback_ttl_s, secret=service.audit.secret,
        pending_s=pending_s, per_agent_day=settings.gateway_feedback_per_agent_day,
    )  # fmt: skip


def _event(service: Service, g: Granted, body: dict[str, Any], key: str) -> tuple[dict[str, Any], str, str]:
    """The event for ``body``, the target of its verdict and the model it teaches (400/422 problems for
    what cannot be taken)."""
    customer, agent = g.customer, g.principal.subject
    decision = None
    if body.get("target") == "action":
        decision = reader.read_360(service.client, service.keys, customer, timeline=1)["predictions"].get(
            "next_best_actions"
        )
    try:
        doc = feedback.build_event(customer, agent, body, key, int(time.time() * 1000), decision)
    except feedback.NotOffered as exc:
        raise Problem(422, "Action not offered", str(exc)) from None
    except feedback.BadFeedback as exc:
        raise Problem(400, "Bad feedback", str(exc)) from None
    names: dict[str, str] = {}
    target_id = str(doc["payload"].get("target_id"))
    if doc["type"] == "agent_feedback":
        loaded = g.loaded if g.loaded is not None else reader.load_own(service.client, service.keys, customer)
        state = loaded.state  # the profile the access decision read: no second read
        known = feedback.known_targets(state.history, state.flags, state.predictions)
        if doc["payload"]["target_id"] not in known[doc["payload"]["kind"]]:
            raise Problem(422, "Unknown target", f"this customer has no {doc['payload']['kind']} with that id")
        named, kind = body.get("action"), doc["payload"]["kind"]
        if kind == "action" and named is not None and named != feedback.pending_action(state.predictions, target_id):
            raise Problem(422, "Not the offer sent", "not relevant applies to the action that was sent")
        names = feedback.flag_names(state.history, state.flags)
    return doc, feedback.verdict_target(body, decision), feedback.label_kind(body, names)
