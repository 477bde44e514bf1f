"""Every Redis key LiveSignals writes, in one place.

=========================  ======  ==============================================  ==========
key                        type    holds                                           bound, TTL
=========================  ======  ==============================================  ==========
``ls:{<cust>}:profile``    hash    the customer's live state (fields of            ~20 fields,
                                   :class:`operators.profile.CustomerState`)      no TTL
``ls:flags``               stream  every flag raised, for desktops to read/replay  MAXLEN ~
                                                                                   flags_stream_maxlen
``ls:flags:live``          pubsub  the same flags, pushed as they are raised       --
``ls:offsets:<topic>``     hash    partition -> next offset to read (resume point) one field per
                                                                                   partition
=========================  ======  ==============================================  ==========

``<cust>`` is the customer key (``customer_id:c42``); inside the braces it is
the Redis Cluster hash tag, so all keys of one customer live in one slot. A key
that itself contains braces is replaced by a digest inside the tag.
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
        """The customer's live state hash."""
        return f"{self.tag(customer_key)}:profile"

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
