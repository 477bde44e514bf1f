"""Every Redis key LiveSignals writes, in one place.

``<cust>`` is a customer key such as ``customer_id:c42`` (or an anonymous one,
``device_id:d9``). Inside braces it is the Redis Cluster hash tag, so every
key of one customer lives in one slot; a key that itself contains braces is
replaced by a digest inside the tag. Sizes are for the default settings.

=================================  ======  ================================================  ===================
key                                type    holds                                             bound / TTL
=================================  ======  ================================================  ===================
``ls:{<cust>}:profile``            string  the customer's facts, one compact JSON document   every list and map
                                           in sections (``profile360.profile``)              bounded (``MAX_*``);
                                                                                             no TTL
``ls:{<cust>}:timeline``           zset    every interaction, score = event time, member =   ``timeline_max_entries``
                                           compact JSON (``profile360.timeline``)            (200) and
                                                                                             ``timeline_max_age_days``
                                                                                             (90; TTL max age + 1 day)
``ls:{<ident>}:owners``            set     customers that claimed an identifier (a device,   8 members; no TTL
                                           cookie, email or phone linked to them); more
                                           than one = shared (``profile360.identity``)
``ls:agg:<topic>:<partition>``     hash    KPI and complaint-term buckets of one input       buckets bounded by
                                           partition (:mod:`operators.partition`)            tier; 400 names per
                                                                                             bucket
``ls:offsets:<topic>``             hash    partition -> next offset to read (resume point)   one field per partition
``ls:models:control``              hash    model kind -> latest promotion id                 one field per kind
``ls:flags``                       stream  every flag raised, for desktops to read/replay    MAXLEN ~
                                                                                             ``flags_stream_maxlen``
``ls:flags:live``                  pubsub  the same flags, pushed as they are raised         --
=================================  ======  ================================================  ===================
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder for one deployment prefix.

    >>> k = Keys("ls")
    >>> k.profile("customer_id:c42")
    'ls:{customer_id:c42}:profile'
    >>> k.profile("email:{weird}")[:6]
    'ls:{h:'
    """

    prefix: str = "ls"

    def tag(self, customer_key: str) -> str:
        """The hash-tagged customer part of every per-customer key."""
        if "{" in customer_key or "}" in customer_key:
            customer_key = "h:" + hashlib.blake2b(customer_key.encode(), digest_size=10).hexdigest()
        return f"{self.prefix}:{{{customer_key}}}"

    def profile(self, customer_key: str) -> str:
        """The customer's facts (hash)."""
        return f"{self.tag(customer_key)}:profile"

    def timeline(self, customer_key: str) -> str:
        """The customer's interactions (sorted set by event time)."""
        return f"{self.tag(customer_key)}:timeline"

    def owners(self, identifier: str) -> str:
        """Customers that claimed ``identifier`` (``kind:value``); same slot as its own profile."""
        return f"{self.tag(identifier)}:owners"

    def partition(self, topic: str, partition: int) -> str:
        """Shared aggregates (KPIs, voice of the customer) of one input partition."""
        return f"{self.prefix}:agg:{topic}:{partition}"

    def partition_pattern(self) -> str:
        """SCAN pattern of every partition aggregate key."""
        return f"{self.prefix}:agg:*"

    @property
    def model_control(self) -> str:
        """Hash of model kind -> the latest promotion id (``livesignals models promote``)."""
        return f"{self.prefix}:models:control"

    @property
    def flags_stream(self) -> str:
        """Stream of all raised flags (XREAD/XRANGE to replay)."""
        return f"{self.prefix}:flags"

    @property
    def flags_channel(self) -> str:
        """Pub/sub channel on which flags are pushed live."""
        return f"{self.prefix}:flags:live"

    def offsets(self, topic: str) -> str:
        """Hash of partition -> next offset to read, written with each batch."""
        return f"{self.prefix}:offsets:{topic}"
