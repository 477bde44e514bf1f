"""The HTTP routes: the customer 360, its timeline, flags and actions, feedback; every one authorised and audited.

A customer is named by any identifier, ``kind:value`` (``customer_id:c42``,
``email:ann@example.com``, ``phone:+44...``, ``device_id:d9``, ``cookie_id:k1``;
a bare value means ``customer_id``), resolved to the customer it belongs to
(:func:`state.reader.resolve`) before the access rule (:mod:`gateway.access`)
is applied to that customer. Order of checks, the same on every route: token
(401), identifier (400), access (403: the same answer whether the customer
exists or not), existence (404), then the read. Each decision is audited
before anything is returned.

A denial costs the same whether the customer exists or not, has linked
identifiers or not: the same Redis commands in the same round trips, the
same number of profiles decoded (a stand-in for one that does not exist,
:func:`state.reader.load_own`, :func:`state.reader.load_linked`), the same
access rule and audit entry; only the size of what Redis returns differs.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import redis
from starlette.requests import Request
from starlette.responses import Response

from gateway import access, feedback, positions
from gateway.access import Decision
from gateway.audit import AuditLog, refused_token
from gateway.audit_writer import AuditWriter
from gateway.auth import NO_TOKEN, Principal, TokenError, VerifiedTokens
from gateway.problems import Problem
from gateway.queue_audit import OverflowNames
from gateway.refusals import AuditedInWindow, CallerRate, RefusalBudget, record_refusal
from livesignals import serde
from livesignals.contract import IDENTIFIER_KINDS
from livesignals.identifiers import canonical_identifier
from livesignals.privacy import AnalystPseudonyms
from livesignals.settings import Settings
from state import reader
from state.reader import Keys

CURSOR = re.compile(r"^\d{1,16}:\d{1,6}$")
MAX_PAGE = 200


@dataclass
class Service:
    """What every route needs: settings, Redis, key builder, audit log, the feedback producer, the tokens
    already verified (:class:`~gateway.auth.VerifiedTokens`), the refused callers' audit budget, each
    caller's rate of push subscriptions and of audited customer decisions, and, per queue this minute, the
    customers audited as shown through it and the desks in its roster (:mod:`gateway.queue_audit`)."""

    settings: Settings
    client: Any
    keys: Keys
    audit: AuditLog
    feedback: feedback.FeedbackProducer | None = None
    tokens: VerifiedTokens = field(init=False)

    refusals: RefusalBudget = field(init=False)
    subscribes: CallerRate = field(init=False)
    decisions: CallerRate = field(init=False)
    queue_audited: AuditedInWindow = field(init=False)
    queue_roster: AuditedInWindow = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = VerifiedTokens(self.settings.gateway_token_secrets)
        self.refusals = RefusalBudget(self.settings.gateway_audit_refusals_per_min)
        self.subscribes = CallerRate(self.settings.gateway_push_subscribes_per_min)
        self.decisions = CallerRate(self.settings.gateway_audited_per_min)
        self.queue_audited = AuditedInWindow()
        self.queue_roster = AuditedInWindow()
        self.queue_deliveries = CallerRate(self.settings.gateway_queue_audited_per_min)
        self.queue_overflow = OverflowNames()
        self.audit_writer = AuditWriter(AuditLog.queues_from_settings(self.client, self.settings))

    @functools.cached_property
    def pseudonym_secret(self) -> str:
        """The key of analysts' pseudonyms, the engine's (read from Redis once when the setting is empty)."""
        return reader.analysts_pseudonym_secret(self.client, self.keys, self.settings.analyst_pseudonym_secret)

    @functools.cached_property
    def pseudonym(self) -> AnalystPseudonyms:
        """What analysts see of a ``customer_id`` key (called with it: :func:`livesignals.privacy.analyst_pseudonym`)
        and of every other id made from customer data (``of_id``: :func:`livesignals.privacy.analyst_id`)."""
        return AnalystPseudonyms(self.pseudonym_secret)


@dataclass(frozen=True, slots=True)
class Granted:
    """A customer the caller may see: who asked, the key asked and resolved, what access said."""

    principal: Principal
    asked: str
    customer: str
    decision: Decision
    known: bool
    loaded: reader.Loaded | None = None
    """What was read to decide (profile, timeline, linked identifiers): the route answers from it."""


def json_response(doc: Any, status: int = 200) -> Response:
    """A JSON response (orjson)."""
    return Response(serde.dumps(doc), status_code=status, media_type="application/json")


def principal_of(service: Service, request: Request, action: str, asked: str) -> Principal:
    """The caller, or a 401 problem (audited: a bad token is an attempt too)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    reason, signed = NO_TOKEN, False
    if scheme.lower() == "bearer" and token:
        try:
            return service.tokens.verify(token.strip())
        except TokenError as exc:
            reason, signed = exc.reason, exc.signed
    asked = audit_name(asked)
    refuse(service, request, None, action, asked, None, reason, signed=signed,
           **refused_token(request, token.strip()))  # fmt: skip
    raise Problem(401, "Unauthorized", reason)


def audit_name(asked: str) -> str:
    """The customer of a refused-token attempt as the trail names it: canonical as a read would resolve
    it (``x2``, ``customer_id:x2`` and ``email:BOB@x.com``/``email:bob@x.com`` share one pseudonym, so
    ``ErasureLedger.subject`` finds every attempt), or as sent when it is no identifier. Not resolved: a
    caller without a valid token gets no Redis read.

    >>> audit_name("x2"), audit_name("email:BOB.X2@Example.com"), audit_name("queue:billing")
    ('customer_id:x2', 'email:bob.x2@example.com', 'queue:billing')
    """
    if asked.startswith("queue:") or asked == "-":
        return asked
    try:
        return customer_key(asked)
    except Problem:
        return asked


def refuse(
    service: Service,
    request: Request,
    principal: Principal | None,
    action: str,
    asked: str,
    resolved: str | None,
    reason: str,
    signed: bool = False,
    **extra: str,
) -> None:
    """Audit a refusal within its caller's budget (:mod:`gateway.refusals`: by address and by subject);
    ``signed``: a refused token whose signature verified (:class:`gateway.auth.TokenError`)."""
    client = request.client
    source = extra.pop("source", client[0] if client else "-")
    who, role = (principal.subject, principal.role) if principal is not None else ("-", "-")
    record_refusal(service.audit, service.refusals, source, who, role, action, asked, resolved, reason,
                   signed=signed, **extra)  # fmt: skip


def rate_limited(
    service: Service, request: Request, principal: Principal, action: str, asked: str, what: str = ""
) -> Problem:
    """The 429 problem of a caller past one of its rates (``what``: the default is the customer requests' rate),
    audited first as a refusal within the caller's refusal budget (:func:`refuse`), like a malformed id: a caller
    cannot flood the trail with them, nor go past its rates unrecorded (break-test 12k: a 429 left no entry)."""
    per_min = service.settings.gateway_audited_per_min
    detail = what or f"at most {per_min} customer requests a minute per caller"
    refuse(service, request, principal, action, asked, None, f"rate limited: {detail}")
    title = (
        "Too many push connections"
        if "connections" in detail
        else ("Too many subscriptions" if "subscriptions" in detail else "Too many requests")
    )
    return Problem(429, title, detail)


def printable(text: str) -> str:
    r"""``text`` as it may be written to the audit: control and format characters (terminal escapes, CR, NUL,
    direction overrides) escaped, so a reader of the trail sees what was sent, not what it would do.

    >>> printable("c1\x1b[2K\u202eFAKE")
    'c1\\x1b[2K\\u202eFAKE'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else (f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
                   for c in text)  # fmt: skip


def customer_key(raw: str) -> str:
    """``kind:value`` from a path segment, checked and normalised, or a 400 problem.

    >>> customer_key("c42"), customer_key("email:Ann@Example.com")
    ('customer_id:c42', 'email:ann@example.com')
    """
    kind, sep, value = raw.partition(":")
    if not sep:
        kind, value = "customer_id", raw
    if kind not in IDENTIFIER_KINDS:
        raise Problem(400, "Bad identifier", f"identifier kind must be one of {', '.join(IDENTIFIER_KINDS)}")
    if not value or len(value) > 128:
        raise Problem(400, "Bad identifier", "an identifier holds 1-128 characters")
    try:
        return f"{kind}:{canonical_identifier(kind, value)}"
    except ValueError as exc:
        raise Problem(400, "Bad identifier", f"identifier {exc}") from None


def authorise(
    service: Service,
    request: Request,
    action: str,
    raw: str | None = None,
    roles: frozenset[str] | None = None,
    timeline: int = 0,
    already: Collection[str] = (),
    ahead: Callable[[Any], int] | None = None,
) -> Granted:
    """Token, identifier, access rule, audit: the caller may see this customer, or a problem is raised
    (``roles``: the only roles that may do ``action`` at all). A verified caller's denial on a customer is
    always written (like its allowed reads, at most ``gateway_audited_per_min`` a minute); the refusal
    budget (:mod:`gateway.refusals`) bounds only the cheap refusals -- tokens, roles, malformed ids -- so a
    caller cannot spend it first to probe customers unrecorded (break-test 12d, D5). The customer is read once, with its
    ``timeline`` newest entries, for the decision and for the answer (``Granted.loaded``). A customer in
    ``already`` (granted earlier in the same request, under another of its identifiers) is neither read
    nor audited again: ``Granted.loaded`` is then ``None``. ``ahead``: commands to run before the profile
    read, in its round trip (:func:`state.reader.load_own`)."""
    raw = request.path_params["key"] if raw is None else raw
    shown = printable(raw[:200])
    principal = principal_of(service, request, action, shown)
    if not service.decisions.allow(principal.subject):  # before anything is read: audited as a refusal (budgeted)
        raise rate_limited(service, request, principal, action, shown)
    if roles is not None and principal.role not in roles:
        refuse(service, request, principal, action, shown, None, f"role {principal.role} may not {action}")
        raise Problem(403, "Forbidden", f"role {principal.role} may not {action}")
    try:
        asked = customer_key(raw)
    except Problem as problem:
        refuse(service, request, principal, action, shown, None, problem.detail)
        raise
    target: str | None = asked
    if principal.role == "analyst":  # analysts name a customer by the pseudonym they see (break-test 12k, K2)
        pseudonym = access.pseudonym_asked(asked)
        refused = access.analyst_lookup_refused(asked)
        target = None if refused else asked
        if pseudonym is not None:
            target = reader.resolve_pseudonym(service.client, service.keys, pseudonym)
    if target is None:
        resolved = asked  # no lookup by PII nor by a raw customer id for analysts, nor by an unknown pseudonym
        seen: dict[str, Any] = {"known": False, "open_contacts": []}
        loaded = None
    else:
        resolved = reader.resolve(service.client, service.keys, target)
        if resolved in already:
            return Granted(principal, asked, resolved, Decision(True, "named twice"), True)
        loaded = reader.load_own(service.client, service.keys, resolved, timeline, ahead)
        by_own = _decide(service, principal, asked, reader.access_of(loaded))
        # not granted by its own contacts: a denial is likely, and must cost the same for every customer
        slots = 0 if by_own.allowed else reader.DENIAL_SLOTS
        reader.load_linked(service.client, service.keys, loaded, timeline, slots)
        seen = reader.access_of(loaded)
    decision = _decide(service, principal, asked, seen)
    if loaded is None and decision.allowed:  # an analyst naming a raw customer id, or a pseudonym of nobody: refused
        # on every route, push included, and audited as refused (break-test 12k, K5: a 404 on the 360 but a live
        # stream of the person's flags; K6: audited as allowed)
        why = (
            "no customer has this pseudonym"
            if access.pseudonym_asked(asked)
            else ("analysts look customers up by pseudonym, not by customer id")
        )
        service.audit.record(principal.subject, principal.role, action, asked, None, False, why)
        raise Problem(404, "Not Found", "no such customer")
    if not decision.allowed:  # written whatever the refusal budget: bounded by gateway_audited_per_min above
        client = request.client
        source = client[0] if client else "-"
        service.audit.record(principal.subject, principal.role, action, asked, resolved, False, decision.reason,
                             source=source)  # fmt: skip
        raise Problem(403, "Forbidden", "this customer is not assigned to you, or does not exist")
    service.audit.record(principal.subject, principal.role, action, asked, resolved, True, decision.reason)
    return Granted(principal, asked, resolved, decision, seen["known"], loaded)


def _decide(service: Service, principal: Principal, asked: str, seen: dict[str, Any]) -> Decision:
    return access.decide(principal, asked, seen["open_contacts"], now_ms=int(time.time() * 1000),
                         max_age_ms=service.settings.gateway_contact_open_s * 1000)  # fmt: skip


def _known(granted: Granted) -> reader.Loaded:
    if not granted.known or granted.loaded is None:
        raise Problem(404, "Not Found", "no such customer")
    return granted.loaded


def get_360(service: Service, request: Request) -> Response:
    """The customer's 360: every section, the three tenses, why now, context carried for ``?channel=``.
    The token is checked before the query string is parsed (break-test 12f, F4: a 60 KB query cost a tokenless
    caller ~16 refusals' CPU); :func:`authorise` finds it verified (``VerifiedTokens``)."""
    principal_of(service, request, "read_360", printable(request.path_params["key"][:200]))
    channel = request.query_params.get("channel") or None
    try:
        shown, bad = _int(request.query_params.get("timeline"), 20, 1, MAX_PAGE), None
    except Problem as problem:  # reported after the token and access checks, as on every route
        shown, bad = 20, problem
    # where a page subscribes from to miss no flag raised after this read: taken before the profile is read,
    # in its round trip on a single Redis (one connection's commands run in order), separately on a cluster
    streams = (service.keys.flags_stream, service.keys.updates_stream)
    if isinstance(service.client, redis.RedisCluster):
        position = positions.stream_position(service.client, *streams)
        g = authorise(service, request, "read_360", timeline=shown)
    else:
        ahead = lambda pipe: positions.queue_position(pipe, *streams)  # noqa: E731
        g = authorise(service, request, "read_360", timeline=shown, ahead=ahead)
        position = positions.position_of(g.loaded.ahead) if g.loaded is not None else "0-0.0-0"
    loaded = _known(g)
    if bad is not None:
        raise bad
    doc = reader.view_360(loaded, channel=channel, timeline=shown)
    shown_doc = access.mask(doc, g.principal.role, service.pseudonym)
    shown_doc["customer"] = access.mask_key(g.customer, g.principal.role, service.pseudonym)  # masked once
    shown_doc["access"] = {"role": g.principal.role, "why": g.decision.reason}  # the service's own words
    shown_doc["stream_id"] = position  # after masking: an id, never scrubbed as if it were a number of a person
    return json_response(shown_doc)


def get_timeline(service: Service, request: Request) -> Response:
    """One page of the timeline, newest first; ``?cursor=`` from the previous page's ``next``."""
    g = authorise(service, request, "read_timeline")
    _known(g)
    cursor = request.query_params.get("cursor") or None
    if cursor is not None and not CURSOR.match(cursor):
        raise Problem(400, "Bad cursor", "use the 'next' value of the previous page")
    limit = _int(request.query_params.get("limit"), 50, 1, MAX_PAGE)
    page = reader.read_timeline(service.client, service.keys, g.customer, cursor, limit)
    shown = access.mask(page, g.principal.role, service.pseudonym)
    shown["customer"] = access.mask_key(g.customer, g.principal.role, service.pseudonym)
    if isinstance(shown, dict) and "next" in page:
        shown["next"] = page["next"]  # after masking: a time and a count, never a person's (break-test 12e, E5)
    return json_response(shown)


def get_flags(service: Service, request: Request) -> Response:
    """The flags currently raised, with their evidence and relevance."""
    g = authorise(service, request, "read_flags")
    flags = reader.active_flags(_known(g), int(time.time() * 1000))
    customer = access.mask_key(g.customer, g.principal.role, service.pseudonym)
    return json_response({"customer": customer, **access.mask({"flags": flags}, g.principal.role, service.pseudonym)})


def get_actions(service: Service, request: Request) -> Response:
    """The ranked next-best actions with their reasons (the last decision's), or ``null`` before any."""
    g = authorise(service, request, "read_actions")
    actions = reader.next_best_actions(_known(g))
    customer = access.mask_key(g.customer, g.principal.role, service.pseudonym)
    shown = access.mask({"next_best_actions": actions}, g.principal.role, service.pseudonym)
    return json_response({"customer": customer, **shown})


def _int(raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:  # '²' is a digit to str.isdigit, not to int()
        raise Problem(400, "Bad parameter", f"expected a whole number {low}-{high}")
    return max(low, min(high, int(raw)))
