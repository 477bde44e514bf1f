"""Bearer tokens: who is asking, verified before anything is read.

Tokens are JWTs signed with HMAC-SHA256 by one of the configured secrets
(``gateway_token_secrets``: several during a key rotation; the first signs).
A token must name its subject (``sub``: the agent id the contact-centre events
use), its ``role`` (``agent``, ``supervisor`` or ``analyst``), the ``queues``
of the caller's teams, and expire (``exp``); the issuer must match. Anything
else -- another algorithm (``none`` included), a bad signature, a token
expired or not yet valid, a missing claim, an unknown role -- is rejected
with one of the fixed reasons of :data:`REASONS` (the 401's ``detail``):
never an exception's text or class name, so a caller learns neither the
secret, the token nor which library checks it.

>>> secret = "s" * 32
>>> token = issue_token(secret, "a7", "agent", ["billing"], ttl_s=60, now=1_000)
>>> verify_token(token, [secret], now=1_010)
Principal(subject='a7', role='agent', queues=('billing',), expires_at=1060)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeGuard

import jwt

ROLES: Final = ("agent", "supervisor", "analyst")
ALGORITHM: Final = "HS256"
ISSUER: Final = "livesignals"
MIN_SECRET_BYTES: Final = 32
"""Shortest secret accepted: HS256 needs a key as long as its hash (RFC 7518 section 3.2)."""


NO_TOKEN: Final = "no bearer token"  # noqa: S105 - a reason, not a secret
MALFORMED: Final = "token malformed"
BAD_SIGNATURE: Final = "token signature does not verify"
BAD_ALGORITHM: Final = "token algorithm not accepted"
EXPIRED: Final = "token expired"
NOT_YET_VALID: Final = "token not valid yet"
WRONG_ISSUER: Final = "token from another issuer"
WRONG_AUDIENCE: Final = "token for another audience"
MISSING_CLAIM: Final = "token lacks a required claim (sub, exp, iss)"
BAD_CLAIMS: Final = "token claims invalid (role, queues, sub, exp, nbf)"
REASONS: Final = (NO_TOKEN, MALFORMED, BAD_SIGNATURE, BAD_ALGORITHM, EXPIRED, NOT_YET_VALID, WRONG_ISSUER,
                  WRONG_AUDIENCE, MISSING_CLAIM, BAD_CLAIMS)  # fmt: skip
"""Every reason a token is refused for: a 401's ``detail`` is exactly one of these (README, *Who sees what*)."""
_LIBRARY_REASONS: Final = (
    (jwt.InvalidAlgorithmError, BAD_ALGORITHM),
    (jwt.InvalidIssuerError, WRONG_ISSUER),
    (jwt.InvalidAudienceError, WRONG_AUDIENCE),
    (jwt.MissingRequiredClaimError, MISSING_CLAIM),
    (jwt.ExpiredSignatureError, EXPIRED),
    (jwt.ImmatureSignatureError, NOT_YET_VALID),
    (jwt.DecodeError, MALFORMED),
)
"""PyJWT's refusals, most specific first, as the reason shown (anything else: :data:`BAD_CLAIMS`)."""


class TokenError(Exception):
    """A token that does not let its bearer in; the message is one of :data:`REASONS` (no token, no secret,
    no library internals). ``signed``: its signature verified (expired, not yet valid, bad claims), so it proves
    the subject it names, and its refusals count in that subject's own audit budget (break-test 12j, J6)."""

    def __init__(self, reason: str, *, signed: bool = False) -> None:
        if reason not in REASONS:
            raise ValueError(f"not a documented token refusal: {reason!r}")
        super().__init__(reason)
        self.reason = reason
        self.signed = signed


def library_reason(exc: Exception) -> str:
    """The documented reason (:data:`REASONS`) for a refusal PyJWT raised.

    >>> library_reason(jwt.InvalidAudienceError("Invalid audience"))
    'token for another audience'
    """
    for kind, reason in _LIBRARY_REASONS:
        if isinstance(exc, kind):
            return reason
    return BAD_CLAIMS


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the token's subject, role and team queues."""

    subject: str
    role: str
    queues: tuple[str, ...]
    expires_at: int


def check_secrets(secrets: Sequence[str]) -> list[str]:
    """The secrets, or ``ValueError`` when there is none or one is too short to sign with."""
    if not secrets:
        raise ValueError("gateway_token_secrets is empty: set LIVESIGNALS_GATEWAY_TOKEN_SECRETS")
    for secret in secrets:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"every gateway token secret must be at least {MIN_SECRET_BYTES} bytes")
    return list(secrets)


def issue_token(
    secret: str, subject: str, role: str, queues: Sequence[str] = (), *, ttl_s: int = 3600, now: int
) -> str:
    """A signed token for ``subject`` (``livesignals token``; demo and tests, or a login service's model)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    check_secrets([secret])
    claims = {"sub": subject, "role": role, "queues": list(queues), "iat": now, "nbf": now, "exp": now + ttl_s,
              "iss": ISSUER}  # fmt: skip
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secrets: Sequence[str], *, now: int | None = None) -> Principal:
    """The principal a token names, or :class:`TokenError` with the reason (``now``: epoch seconds)."""
    now = int(time.time()) if now is None else now
    claims = None
    for secret in secrets:
        try:
            claims = jwt.decode(
                token, secret, algorithms=[ALGORITHM], issuer=ISSUER,
                options={"require": ["exp", "sub", "iss"], "verify_exp": False, "verify_nbf": False,
                         "verify_iat": False},
            )  # fmt: skip
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidTokenError as exc:
            raise TokenError(library_reason(exc)) from None
    if claims is None:
        raise TokenError(BAD_SIGNATURE)
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not _finite(exp) or not _finite(nbf):
        raise TokenError(BAD_CLAIMS, signed=True)  # NaN, Infinity, a string: no date
    if exp <= now:
        raise TokenError(EXPIRED, signed=True)
    if nbf > now:
        raise TokenError(NOT_YET_VALID, signed=True)
    role, queues, subject = claims.get("role"), claims.get("queues", []), claims.get("sub")
    if role not in ROLES:
        raise TokenError(BAD_CLAIMS, signed=True)
    if not isinstance(subject, str) or not subject:
        raise TokenError(BAD_CLAIMS, signed=True)
    if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
        raise TokenError(BAD_CLAIMS, signed=True)
    return Principal(subject, role, tuple(queues), int(exp))


def _finite(value: object) -> TypeGuard[int | float]:
    """A JSON number a date can be (not a boolean, not NaN or infinite, within 64-bit seconds)."""
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and abs(value) < 2**62
    )


class VerifiedTokens:
    """Tokens already verified, so a desktop's every request does not pay the signature check again.

    Bounded (``size`` tokens; the oldest verified is dropped first) and keyed by the whole token: a
    token is the same token only byte for byte, and only tokens that passed :func:`verify_token` enter.
    A cached token is used only while its ``exp`` is in the future (checked on every use, as
    :func:`verify_token` would); once expired it is verified again, and refused. ``nbf`` needs no
    re-check: a token is cached only once it is valid, and time only moves on.

    >>> secret = "s" * 32
    >>> tokens = VerifiedTokens([secret], size=2)
    >>> t = issue_token(secret, "a7", "agent", ttl_s=60, now=1_000)
    >>> tokens.verify(t, now=1_010) is tokens.verify(t, now=1_020)
    True
    >>> tokens.verify(t, now=1_060)
    Traceback (most recent call last):
    ...
    gateway.auth.TokenError: token expired
    """

    def __init__(self, secrets: Sequence[str], size: int = 10_000) -> None:
        self.secrets = list(secrets)
        self.size = size
        self._verified: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def verify(self, token: str, *, now: int | None = None) -> Principal:
        """The principal ``token`` names (:func:`verify_token`), from the cache while it has not expired."""
        now = int(time.time()) if now is None else now
        principal = self._verified.get(token)
        if principal is not None and principal.expires_at > now:
            return principal
        principal = verify_token(token, self.secrets, now=now)  # raises TokenError
        with self._lock:
            self._verified.pop(token, None)
            self._verified[token] = principal
            while len(self._verified) > self.size:
                del self._verified[next(iter(self._verified))]
        return principal

    def __len__(self) -> int:
        return len(self._verified)
