"""How long personal data stays in Redis when nobody asks for it to be erased.

==================================  =====================================================================
what                                kept
==================================  =====================================================================
anonymous profile (``device_id``,   ``anonymous_ttl_s`` (30 days) after the last event applied to it:
``cookie_id``), its timeline and    every write sets the TTL again, so an idle anonymous id disappears
writer key                          by itself
identity claim set                  while a known customer (not an anonymous id) claims it: no TTL (it
(``ls:{<ident>}:owners``)           goes when its last claimant is erased); with anonymous claimants only,
                                    ``identity_claim_ttl_s`` (400 days) after its last new claim
first claimant                      the lifetime of its claim set: no TTL beside a customer's claim, the
(``ls:{<ident>}:first``)            set's TTL (set and refreshed with it) otherwise; deleted with it
analysts' pseudonym lookup          one per customer and secret used, no TTL (a customer profile has none);
(``ls:{pseudonym:<p>}``, the        deleted by the customer's erasure
customer's ``:pseudonyms`` set)
customer profile                    no TTL (a customer's 360 is the point); erased on request
customer timeline                   ``timeline_max_entries`` / ``timeline_max_age_days`` (existing bound)
flags stream ``ls:flags``           ``flags_stream_maxlen`` entries (approximate MAXLEN), erased per
                                    customer on request
updates ``{ls:flags}:updates``      the same
erasure ledger                      ``erasure_ledger_ttl_s`` (400 days; 0 = forever): at least the input
``ls:erased:<hash>``                topics' retention, so no replay can bring an erased customer back
erasure audit ``ls:erasures``       ``erasure_audit_maxlen`` entries (approximate MAXLEN)
==================================  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

ANONYMOUS_KINDS: Final = ("device_id", "cookie_id")
"""Identifier kinds whose profiles are anonymous: they expire when idle."""


@dataclass(frozen=True, slots=True)
class Retention:
    """The retention and erasure settings the state layer applies (see the module docstring)."""

    anonymous_ttl_s: int = 30 * 86_400
    identity_claim_ttl_s: int = 400 * 86_400
    erasure_ledger_ttl_s: int = 400 * 86_400
    erasure_ledger_secret: str = ""
    erasure_audit_maxlen: int = 100_000
    analyst_pseudonym_secret: str = ""
    """Keys analysts' pseudonyms (:func:`livesignals.privacy.analyst_pseudonym`): the engine records each
    customer's (``ls:{pseudonym:<p>}``) and its erasure deletes it; empty: the deployment's (Redis)."""

    @classmethod
    def from_settings(cls, settings: Any) -> Retention:
        """The retention part of :class:`livesignals.settings.Settings`."""
        return cls(
            settings.anonymous_ttl_s,
            settings.identity_claim_ttl_s,
            settings.erasure_ledger_ttl_s,
            settings.erasure_ledger_secret,
            settings.erasure_audit_maxlen,
            settings.analyst_pseudonym_secret,
        )

    def __repr__(self) -> str:
        return f"Retention(anonymous_ttl_s={self.anonymous_ttl_s}, identity_claim_ttl_s={self.identity_claim_ttl_s})"


def is_anonymous(customer_key: str) -> bool:
    """True for keys of anonymous identifiers.

    >>> is_anonymous("device_id:d1"), is_anonymous("customer_id:c1")
    (True, False)
    """
    return customer_key.partition(":")[0] in ANONYMOUS_KINDS
