"""Who serves a customer, carried in each of its flag and update stream entries (field ``contacts``).

The engine writes, with every entry of ``ls:flags`` and ``{ls:flags}:updates``, the
customer's open contacts as committed in the same pipeline as the profile: one
``[channel, agent_id, queue, t]`` per channel (a customer has at most one open
contact per channel, so the field is small and bounded). The agent desktop's
push hub routes an entry to the followers of a queue from the entry alone, with
no profile read on its one reader thread (findings-12b B5). An entry written
before this field existed has none (``None``): its reader falls back to the
profile.
"""

from __future__ import annotations

from typing import Any

from livesignals import serde

FIELD = "contacts"
"""The stream entry field that carries them."""


def encode(open_contacts: dict[str, dict[str, Any]]) -> bytes:
    """A profile's ``activity.open_contacts`` as the entry field (channels sorted: the same bytes every time).

    >>> encode({"phone": {"agent_id": None, "queue": "billing", "t": 5, "event_id": "e"}, "chat": {
    ...     "agent_id": "a1", "queue": "billing", "t": 7, "event_id": "e2"}})
    b'[["chat","a1","billing",7],["phone",null,"billing",5]]'
    """
    rows = [[ch, c.get("agent_id"), c.get("queue"), c.get("t", 0)] for ch, c in sorted(open_contacts.items())]
    return serde.dumps(rows)


def decode(customer_key: str, raw: bytes | None) -> list[dict[str, Any]] | None:
    """The entry's contacts as the access rule reads them (those of ``state.reader.read_open_contacts``, without
    the event id); ``None`` for an entry without the field, or one not written by :func:`encode`.

    >>> decode("customer_id:c1", b'[["chat","a1","billing",7]]')
    [{'key': 'customer_id:c1', 'channel': 'chat', 'agent_id': 'a1', 'queue': 'billing', 't': 7}]
    >>> decode("customer_id:c1", None), decode("customer_id:c1", b'{"x": 1}'), decode("c", b"[[1]]")
    (None, None, None)
    """
    if raw is None:
        return None
    try:
        rows = serde.loads(raw)
        if not isinstance(rows, list):
            return None
        out = []
        for channel, agent, queue, t in rows:
            if not isinstance(channel, str) or not isinstance(t, int):
                return None
            out.append({"key": customer_key, "channel": channel, "agent_id": agent, "queue": queue, "t": t})
        return out
    except (ValueError, TypeError):  # not JSON, or a row of another shape
        return None
