"""Who serves a customer on each channel now: the open contacts of the 360 (``activity.open_contacts``).

Part of the 360 update (:func:`operators.profile360.update.apply_event` calls :func:`open_contact` for
every contact event); the agent desktop service grants access from what it writes.
"""

from __future__ import annotations

from typing import Any

from livesignals.contract import Event
from livesignals.settings import CONTACT_IDLE_S
from operators.profile360.profile import CustomerState

OPEN_CONTACT_ENDED = frozenset({"resolved", "unresolved", "abandoned"})
"""Outcomes that end a contact: it is no longer open with its agent or queue."""
CONTACT_END_GRACE_MS = 60_000
"""After an outcome ended a channel's contact, an event on that channel naming the same agent and queue
(or none) this soon after it is the ended contact's tail (the customer's "thanks, bye" stamped by the chat
platform's clock after the agent's "resolved" stamped by the desktop's), not a new contact."""
CONTACT_IDLE_MS = CONTACT_IDLE_S * 1000
"""A contact whose newest event is older than this is over, reported or not (the customer closed the chat
window): a message after it opens a new, unassigned contact in its queue rather than going back to the
agent who served the old one (break-test 12c, C10). :data:`livesignals.settings.CONTACT_IDLE_S`, which also
bounds the agent desktop's ``gateway_contact_open_s`` (its default)."""


def open_contact(state: CustomerState, event: Event) -> None:
    """Who serves the customer on this channel now: the newest contact naming an agent or queue.

    ``activity.open_contacts`` holds one entry per channel the contacts came on,
    ``{agent_id, queue, t, event_id, since}`` (``since``: when the contact opened);
    an outcome in :data:`OPEN_CONTACT_ENDED` removes it, and an older event never
    overrides a newer one (an earlier message of the same queue, arriving late,
    only moves ``since`` back and names the agent if none was). The agent desktop
    service grants access from it (and ages it out when read).

    An assignment stays until an outcome ends it, another agent is named, or the
    contact moves to another queue: a message without ``agent_id`` in the same
    queue (the customer writing again, as chat and telephony platforms send it)
    keeps the serving agent and does not open the customer to the whole queue.

    An outcome ends the open contact whatever the order of its time and of the
    contact's last messages (producers' clocks differ by a few hundred ms either
    way): one older than the contact's newest event still ends it when it names
    the contact's agent (or, naming none, its queue) and the contact opened at
    most :data:`CONTACT_END_GRACE_MS` after it -- else it is an earlier contact's,
    and a later contact was opened since. The end is kept per channel (``activity.contacts_ended``:
    ``{agent_id, queue, t}``), so an event of the ended contact processed after
    its outcome does not open it again: one no newer than the outcome, or one
    within :data:`CONTACT_END_GRACE_MS` after it naming the same agent and queue
    (or none). A new contact -- another agent or queue, or after the grace --
    opens as before.
    """
    p = event.payload
    agent, queue = p.get("agent_id"), p.get("queue")
    ends = p.get("outcome") in OPEN_CONTACT_ENDED
    if not (agent or queue or ends):  # an outcome ends the contact even naming neither (12c, C11)
        return
    t, channel, activity = event.event_time_ms, event.channel, state.activity
    contacts = activity.setdefault("open_contacts", {})
    current = contacts.get(channel)
    if ends:
        if current is None or current["t"] <= t or _of_contact(current, agent, queue, t):
            ended = current or {}
            contacts.pop(channel, None)
            _remember_end(activity, channel, ended.get("agent_id") or agent, ended.get("queue") or queue, t)
    elif _tail_of_ended(activity, channel, agent, queue, t):
        pass
    elif current is None or current["t"] <= t:
        if current is not None and current["t"] < t - CONTACT_IDLE_MS:
            current = None  # over long ago: this message opens a new contact
        if not agent and current is not None and queue in (None, current["queue"]):
            agent, queue = current["agent_id"], current["queue"]
        since = t if current is None else min(t, current.get("since", current["t"]))
        contacts[channel] = {"agent_id": agent, "queue": queue, "t": t, "event_id": event.event_id, "since": since}
    elif queue in (None, current["queue"]):  # an earlier message of this contact, arriving late
        current["since"] = min(t, current.get("since", current["t"]))
        if current["agent_id"] is None and agent:  # as if in order: a later message naming no agent keeps it
            current["agent_id"] = agent
    if not contacts:
        del activity["open_contacts"]


def _of_contact(current: dict[str, Any], agent: str | None, queue: str | None, t: int) -> bool:
    """Is an outcome at ``t``, older than the open contact's newest event, this contact's end? It names the
    contact's agent (or, where either names no agent, its queue), and the contact opened (its earliest event
    seen) at most :data:`CONTACT_END_GRACE_MS` after it: a contact opened later is a new one."""
    if agent and current["agent_id"]:
        same = agent == current["agent_id"]
    else:
        same = queue in (None, current["queue"]) if not agent else queue == current["queue"]
    return same and current.get("since", t) <= t + CONTACT_END_GRACE_MS


def _remember_end(activity: dict[str, Any], channel: str, agent: str | None, queue: str | None, t: int) -> None:
    ended = activity.setdefault("contacts_ended", {})
    last = ended.get(channel)
    if last is None or last["t"] <= t:
        ended[channel] = {"agent_id": agent, "queue": queue, "t": t}


def _tail_of_ended(activity: dict[str, Any], channel: str, agent: str | None, queue: str | None, t: int) -> bool:
    """Is an event at ``t`` naming ``agent``/``queue`` part of the channel's last ended contact?"""
    end = activity.get("contacts_ended", {}).get(channel)
    if end is None:
        return False
    if t <= end["t"]:
        return True  # it happened before the end: whatever contact it was in is over
    same = (not agent or agent == end["agent_id"]) and (not queue or queue == end["queue"])
    return same and t <= end["t"] + CONTACT_END_GRACE_MS
