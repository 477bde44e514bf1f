"""When an event is *late*: judged at its input position, not at its arrival at the owner.

An event older than its customer's newest event time by more than
``late_event_grace_s`` is late: it is applied but raises no flag, no trigger
and no decision (:meth:`operators.engine.Engine._apply_one`). "Newest" must
mean *among the customer's events that came before it in the input*, not
"among the events the engine happened to apply first": a mis-keyed producer's
events reach their owner through the repartition topic
(:mod:`operators.routing`) a batch after the owner's own events. In a catch-up
(a backlog, a rebuild after Redis lost its data, a replay after an outage) a
batch spans hours of event time, so judged against the customer's newest event
time every rerouted event would be late: the same input would give fewer flags
and decisions when keyed by cookie than when keyed by customer (issue 10,
outside review G5: decisions 283 vs 151).

**The present at an event's input position** (:func:`as_of`). Per customer the
state keeps, per *origin* (``topic:partition`` where the event was first
published: its own partition, or the one a reroute's signed headers name), the
newest event time seen from that origin and the Kafka timestamp of the record
that carried it (section ``seen``, at most one entry per input partition, like
``applied``). An event's present is the newest of

* the newest event time from its own origin (records of one partition are read
  in order, rerouted or not: this part is exact), and
* the newest event time of every other origin whose record was published
  before this one (Kafka timestamps compared: a record produced after this one
  cannot make it late, however early the engine read it; a record of the same
  millisecond counts as after: a fast producer puts minutes of event time in
  one millisecond),

and the event itself. A genuinely late event (an app that was offline for
hours, a producer that buffered) is still late against its own partition and
against whatever other partitions had published before it.

Two approximations, both erring towards "on time": a record without a Kafka
timestamp (0) is compared with its own origin only; and only the newest event
of each origin is kept, so when that origin has since published later records
it is left out of an earlier record's comparison. A state stored before the
``seen`` section existed compares with its newest event time (``last_seen``)
until its first event is applied.

What this module gives is "now" for the event, used for all of: lateness,
the windows, RFM and ``derived`` values the rules read
(:mod:`operators.rules.context`), the contact policy's stream clock and the
expiry of offers waiting for an answer. (Reading windows at the customer's
newest event time instead gave a cookie-keyed catch-up 180 flags against 149
keyed.) For a customer whose events share one Kafka key it is the customer's
newest event time, as before.

>>> from livesignals.errors import Origin
>>> from livesignals.contract import Event
>>> from operators.profile360.profile import CustomerState
>>> s = CustomerState("customer_id:c1")
>>> def ev(t, partition, published):
...     return Event("e", "web_event", "web", {"customer_id": "c1"}, t, {}, Origin("in", partition, 0, published))
>>> note(s, ev(10_000_000, 1, 2_000))     # direct, published at 2 s: 10,000 s of event time
>>> as_of(s, ev(1_000, 3, 1_000))         # rerouted, published before it: judged on its own origin
1000
>>> as_of(s, ev(1_000, 3, 3_000))         # published after it: the other origin counts
10000000
>>> as_of(s, ev(1_000, 1, 0))             # its own origin always counts
10000000
"""

from __future__ import annotations

from livesignals.contract import Event
from operators.profile360.profile import CustomerState


def as_of(state: CustomerState, event: Event) -> int:
    """The customer's present at ``event``'s input position (this event included; see the module docstring)."""
    o = event.origin
    own = f"{o.topic}:{o.partition}"
    present = event.event_time_ms
    seen = state.seen
    if not seen:  # stored before ``seen`` existed: its newest event time, as before
        return max(present, state.identity.get("last_seen", present))
    published = o.timestamp_ms
    for origin, (newest, at) in seen.items():
        if newest > present and (origin == own or 0 < at < published):
            present = newest
    return present


def note(state: CustomerState, event: Event) -> None:
    """Remember ``event``'s time as its origin's newest, if it is (called as the event is applied)."""
    o = event.origin
    own = f"{o.topic}:{o.partition}"
    t = event.event_time_ms
    kept = state.seen.get(own)
    if kept is None or t > kept[0]:
        state.seen[own] = [t, o.timestamp_ms]


def is_late(present: int, event: Event, grace_ms: int) -> bool:
    """True when ``event`` is older than ``present`` (:func:`as_of`) by more than the grace.

    >>> from livesignals.errors import Origin
    >>> e = Event("e", "web_event", "web", {"customer_id": "c1"}, 1_000, {}, Origin("in", 0, 0))
    >>> is_late(1_000 + 3_600_000, e, 3_600_000), is_late(1_001 + 3_600_000, e, 3_600_000)
    (False, True)
    """
    return present - event.event_time_ms > grace_ms
