"""What the agent desktop service (gateway/) reads besides a customer's 360: when a customer claimed an
identifier, who claimed which keys, each customer's open contacts for queue routing, a paged timeline, the
privacy secret, analysts' pseudonyms. Re-exported by :mod:`state.reader`, the only module the service imports
from ``state``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from livesignals import documents, serde
from operators.profile360.profile import CustomerState
from operators.profile360.sizes import stored
from state import entry_contacts
from state.erasure import deployment_secret
from state.keys import Keys
from state.secrets import pseudonym_secret as _pseudonym_secret

TIMELINE_SHOWN = 50
"""Timeline entries a 360 shows by default (and a page of :func:`read_timeline`)."""


CLAIM_UNKNOWN = 2**63 - 1
"""The claim time of a linked identifier whose merge record was trimmed (the profile keeps
``MAX_LINKED`` links but ``MAX_MERGES`` merge records): later than any contact, so a contact on it grants
nothing -- an unknown claim time fails closed (break-test of issue 12, B9)."""


def linked_since(state: CustomerState, identifier: str) -> int:
    """When ``state``'s customer claimed ``identifier`` (its merge record's event time;
    :data:`CLAIM_UNKNOWN` when that record was trimmed). The agent desktop grants nothing from a contact on
    it older than this.

    >>> s = CustomerState("customer_id:c1")
    >>> s.identity["merges"] = [{"id": "d1", "t": 5}]
    >>> linked_since(s, "device_id:d1"), linked_since(s, "device_id:d2") == CLAIM_UNKNOWN
    (5, True)
    """
    value = identifier.partition(":")[2]
    names = (identifier, value, stored(identifier))  # a long identifier's record holds its stored form
    times = [m.get("t", 0) for m in state.identity.get("merges", []) if m.get("id") in names]
    return max(times) if times else CLAIM_UNKNOWN


def read_open_contacts(client: Any, keys: Keys, customer_keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The open contacts (channel, agent, queue, time) of each customer's own profile, in one round trip
    (the push service asks it once per batch of flags when someone follows a queue), read from the
    profile's JSON without building its state (about 2.5x cheaper than a full decode). The contacts of an
    identifier someone claimed are marked ``claimed`` (they grant nothing: :func:`state.reader.access_of`)."""
    if not customer_keys:
        return {}
    pipe = client.pipeline(transaction=False)
    for key in customer_keys:
        pipe.get(keys.profile(key))
        pipe.scard(keys.owners(key))
    replies = pipe.execute()
    out = {}
    for i, key in enumerate(customer_keys):
        row, owners = replies[2 * i], replies[2 * i + 1]
        mark = {"claimed": True} if owners and not key.startswith("customer_id:") else {}
        out[key] = [{"key": key, "channel": ch, **c, **mark} for ch, c in _open_contacts_of(row).items()]
    return out


def claimed_keys(client: Any, keys: Keys, customer_keys: Iterable[str]) -> set[str]:
    """Those of ``customer_keys`` that are identifiers a customer or a stronger identifier claimed (their
    profile is part of someone's 360, so their own contacts grant nothing): one round trip, none when every
    key is a ``customer_id``. The push service asks it for the entries it routes to queue followers from the
    contacts the entries carry (break-test 12f, F2c)."""
    anonymous = sorted({k for k in customer_keys if not k.startswith("customer_id:")})
    if not anonymous:
        return set()
    pipe = client.pipeline(transaction=False)
    for key in anonymous:
        pipe.scard(keys.owners(key))
    return {key for key, owners in zip(anonymous, pipe.execute(), strict=True) if owners}


def entry_open_contacts(customer_key: str, fields: dict[bytes, bytes]) -> list[dict[str, Any]] | None:
    """The open contacts a flag or update stream entry carries (as :func:`read_open_contacts` gives them), or
    ``None`` for an entry written without them (:mod:`state.entry_contacts`)."""
    return entry_contacts.decode(customer_key, fields.get(entry_contacts.FIELD.encode()))


def _open_contacts_of(row: bytes | None) -> dict[str, Any]:
    """A stored profile's ``activity.open_contacts``, from its JSON alone: no state is built (no windows
    decoded), since the push reader asks this of every customer in a batch while someone follows a queue."""
    try:
        doc = serde.loads(documents.decode(row)) if row else None
    except ValueError:  # damaged, an unknown dictionary, not JSON: no open contact to route by (break-test 16c)
        doc = None
    activity = doc.get("activity") if isinstance(doc, dict) else None
    contacts = activity.get("open_contacts") if isinstance(activity, dict) else None
    return contacts if isinstance(contacts, dict) else {}


def read_timeline(
    client: Any, keys: Keys, customer_key: str, cursor: str | None = None, limit: int = TIMELINE_SHOWN
) -> dict[str, Any]:
    """One page of the customer's own timeline, newest first, and the cursor of the next page (``None``
    at the end). The cursor is ``<time_ms>:<n>``: entries at or before that time, skipping the ``n`` at
    exactly that time already shown, so entries added meanwhile (newer) never shift a page.

    Linked identifiers' timelines are merged in :func:`read_360` (first page) only.
    """
    top, skip = "+inf", 0
    if cursor:
        at, _, seen = cursor.partition(":")
        top, skip = at, int(seen or 0)
    rows = client.zrevrangebyscore(keys.timeline(customer_key), top, "-inf", start=skip, num=limit, withscores=True)
    entries = [serde.loads(documents.decode(member)) for member, _ in rows]
    next_cursor = None
    if len(rows) == limit:
        last = int(rows[-1][1])
        same = sum(1 for _, score in rows if int(score) == last)
        next_cursor = f"{last}:{same + (skip if cursor and int(top) == last else 0)}"
    return {"customer": customer_key, "entries": entries, "next": next_cursor}


def privacy_secret(client: Any, keys: Keys) -> str:
    """The deployment's privacy hashing secret, the erasure ledger's (:func:`state.erasure.deployment_secret`):
    the desktop service's audit pseudonymises customers with it."""
    return deployment_secret(client, keys)


def analysts_pseudonym_secret(client: Any, keys: Keys, configured: str) -> str:
    """The key of analysts' pseudonyms, the engine's (``analyst_pseudonym_secret``, else the deployment's:
    :func:`state.secrets.pseudonym_secret`)."""
    return _pseudonym_secret(client, keys, configured)


def resolve_pseudonym(client: Any, keys: Keys, pseudonym: str) -> str | None:
    """The customer key analysts' ``pseudonym`` stands for, as the engine recorded it with the profile
    (``ls:{pseudonym:<p>}``), or None (no such customer, erased, or not written since the secret changed):
    one round trip."""
    row = client.get(keys.pseudonym(pseudonym))
    return (row.decode() if isinstance(row, bytes) else str(row)) if row else None
