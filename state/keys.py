"""Every Redis key LiveSignals writes, in one place.

``<cust>`` is a customer key such as ``customer_id:c42`` (or an anonymous one,
``device_id:d9``). Inside braces it is the Redis Cluster hash tag, so every
key of one customer lives in one slot; a key that itself contains braces is
replaced by a digest inside the tag. Everything of partition number ``p`` (of
every input topic) shares the slot of ``{part:<p>}``, so one Lua script can
check the owner epoch and commit aggregates and resume offsets together.
Sizes are for the default settings.

=================================  ======  ================================================  ===================
key                                type    holds                                             bound / TTL
=================================  ======  ================================================  ===================
``ls:{<cust>}:profile``            string  the customer's facts, one compact JSON document   every list and map
                                           in sections (``profile360.profile``), stored      bounded (``MAX_*``);
                                           as a zstd frame with a dictionary shipped in the  no TTL; anonymous
                                           package (``livesignals.documents``; plain JSON    (device, cookie):
                                           with ``profile_compression = "off"``)             ``anonymous_ttl_s``
                                                                                             (30 days) after its
                                                                                             last write
``ls:{<cust>}:timeline``           zset    every interaction, score = event time, member =   ``timeline_max_entries``
                                           compact JSON (``profile360.timeline``), stored    (200) and
                                           as a zstd frame (``livesignals.documents``;       ``timeline_max_age_days``
                                           plain with ``timeline_compression = "off"``)      (90; TTL max age + 1 day;
                                                                                             anonymous: as its profile)
``ls:{<ident>}:owners``            set     customers that claimed an identifier (a device,   8 members; no TTL
                                                                                             while a known customer
                                                                                             claims it, else
                                                                                             ``identity_claim_ttl_s``
                                                                                             (400 days) after its
                                                                                             last new claim
                                           cookie, email or phone linked to them); more
                                           than one = shared (``profile360.identity``)
``ls:{<ident>}:first``             string  the first customer claimant of an identifier      one per claim set;
                                           (``erased:*`` once erased), so an erasure plants  its claim set's TTL
                                           its tombstone only where it claimed first         (none beside a
                                           (12j J3)                                          customer's claim;
                                                                                             12k K4); goes
                                                                                             with it
``ls:{<cust>}:claims``             set     every identifier a customer, device or cookie     ``MAX_CLAIMS`` (500)
                                           claimed (its erasure reaches them all, not only   per profile's life;
                                           the 32 newest links; break-tests 12i I1, 12j J1)  no TTL; anonymous:
                                                                                             ``identity_claim_ttl_s``
                                                                                             after its last write;
                                                                                             deleted by the erasure
``ls:{pseudonym:<p>}``             string  the customer key whose analysts' pseudonym is     one per customer;
                                           ``<p>`` (``p_`` + 16 hex, keyed HMAC:             no TTL; deleted by
                                           :func:`livesignals.privacy.analyst_pseudonym`),   the erasure
                                           written with the profile (once per load), so
                                           analysts look a customer up by what they see
                                           (12k, K2)
``ls:{<cust>}:pseudonyms``         set     the pseudonyms whose lookup keys name the         one per secret used;
                                           customer (its erasure deletes them all)           no TTL; deleted by
                                                                                             the erasure
``ls:{<cust>}:writer``             string ``<p>|<epoch>``: the partition number and owner    one per customer;
                                           epoch that last wrote the profile (Redis Cluster  Cluster only;
                                           only: a stale engine's profile write is refused)  anonymous: as its
                                                                                             profile
``ls:{part:<p>}:agg:<topic>``      hash    KPI and complaint-term buckets and model          buckets bounded by
                                           checkpoint of one input partition                 tier; 400 names per
                                           (:mod:`operators.partition`), ``applied``: the    bucket
                                           next offset they include (a retry never counts
                                           twice)
``ls:{part:<p>}:meta``             hash    ownership of partition number ``p`` of every      ``epoch``, ``store``,
                                           input topic: ``epoch`` (owner epoch, bumped by    ``owner`` and one
                                           each engine that claims it), ``store`` (random    ``offset:<topic>``
                                           id of this Redis's data, set once), ``owner``     per input topic
                                           (host and pid), ``offset:<topic>`` (next offset
                                           to read: the resume point) (:mod:`state.ownership`);
                                           Cluster, while the partition is rebuilt as a
                                           whole: ``stale_before`` and ``stale_until:<topic>``
                                           (:mod:`state.rebuild`)
``ls:{part:<p>}:wal``              hash    Redis Cluster only: the aggregates of the batch   one batch; deleted
                                           being committed (``offset|<topic>``,              by the commit's last
                                           ``f|<topic>|<field>``), written before its        step
                                           profiles (:mod:`state.write_ahead`)
``ls:{node:<i>}:store``            string  Redis Cluster only: a random id per master,       one per master
                                           recorded in each ``meta`` (``node:<i>``); gone
                                           or changed = that node lost its data
                                           (:mod:`state.node_markers`)
``ls:{node:<i>}:applied``          hash    Redis Cluster only, next to the marker: per       one per master;
                                           partition ``<p>:<topic>`` = offset up to which    two fields per
                                           its writes to that master are committed, and      partition and topic
                                           ``epoch:<p>`` = newest owner epoch seen there
                                           (:mod:`state.watermarks`)
``ls:models:control``              hash    model kind -> latest promotion id                 one field per kind
``ls:secret:<name>``               string  a per-deployment random secret created once       one per name
                                           (``SET NX``) when its setting is empty: ``origin``
                                           signs rerouted events' origin headers, ``privacy``
                                           keys erasure and dead-letter hashes
                                           (:mod:`state.secrets`)
``ls:partitions``                  string  the partition count the deployment last started   one
                                           with: a change is logged once (:mod:`state.topology`)
``ls:repartition_topic``           string  the repartition topic the deployment last started one
                                           with: reroutes waiting in it after a rename refuse
                                           the start (:mod:`flows.abandoned_reroutes`)
``livesignals:deployments``        hash    no prefix: per key prefix, its input topics,      one field per
                                           consumer group and when last seen, so that two    deployment; removed
                                           deployments on one Redis notice each other        at SIGTERM, ignored
                                           (:mod:`state.deployments`)                        30 s after its last
                                                                                             refresh
``ls:flags``                       stream  every flag raised, for desktops to read/replay    MAXLEN ~
                                                                                             ``flags_stream_maxlen``
``ls:flags:live``                  pubsub  the same flags, pushed as they are raised         --
``{ls:flags}:updates``             stream  a customer's mood changed, or a new next-best     MAXLEN ~
                                           action decision: for desktops to read/replay      ``flags_stream_maxlen``
                                           (in ``ls:flags``'s Cluster slot: one XREAD reads
                                           both)
``ls:erased:<hash>``               string  erasure ledger: the cut-off (ms) of one erased    ``erasure_ledger_ttl_s``
                                           customer key, ``<hash>`` its keyed BLAKE2b        (400 days; 0 = kept)
                                           (:mod:`state.erasure`)
``ls:erasures``                    stream  erasure audit: subject hash, request id, origin,  MAXLEN ~
                                           cut-off, time; no personal data                   ``erasure_audit_maxlen``
=================================  ======  ================================================  ===================

An erase (:mod:`operators.erasure`, :mod:`state.erasure`) deletes the customer's
profile, timeline and writer key, its claims on its linked identifiers (a claim set
goes with its last claimant)
and its entries in ``ls:flags`` and ``{ls:flags}:updates``; the retention rules are in :mod:`state.retention`
(checked by ``tests/integration/test_erase_retention.py`` and ``test_erase.py``).

Bounds inside a profile document (``tests/unit/test_bounds.py`` checks every
list and map of a profile against its bound over a long random stream; a new
container without a declared bound fails it):

==========================================  ============================================================
section                                     bound (constant)
==========================================  ============================================================
``identity.ids.<kind>``                     5 per kind, 5 kinds (``update.MAX_IDS_PER_KIND``)
``identity.linked``                         32 newest (``update.MAX_LINKED``)
``identity.merges``                         20 newest (``update.MAX_MERGES``)
``identity.attributes``                     30 names of <= 64 chars, each value <= 512 bytes of JSON
                                            (``MAX_ATTRIBUTES``, ``MAX_KEY_CHARS``, ``MAX_ITEM_BYTES``)
``relationships``                           10 types x 10 links of <= 512 bytes (``MAX_RELATIONSHIP_TYPES``)
``activity.open_orders/deliveries/...``     10 each (``update.MAX_OPEN_ITEMS``); errors 10; cart 20 items;
                                            products viewed 10 (``update.MAX_VIEWED``)
``activity.open_contacts/contacts_ended``   one per channel (the contract's enum)
``history.campaigns``                       16 actions + ``last`` (``update.MAX_CAMPAIGN_ACTIONS``)
``history.sent``                            30 (``policy.MAX_SENT_KEPT``)
``history.proposed``                        16 actions (``responses.MAX_PROPOSED``)
``history.recent_flags``                    5 (``responses.MAX_RECENT_FLAGS``)
``history.offers_by_action``                16 actions (``features.MAX_ACTIONS_REMEMBERED``)
``history.by_channel/by_type/touch``        one per channel / event type (the contract's enums)
``value.products``                          20 (``update.MAX_PRODUCTS``)
``flags``                                   32 raised (``update.MAX_FLAGS``)
``predictions.recent_texts``                3 texts of <= 200 chars (``online.MAX_RECENT_TEXTS``)
``predictions.churn_pending``               horizon / cadence + 2 snapshots (``ScoringConfig.max_pending``)
``predictions.churn_activity``              12 behaviours x 30 days (``behaviour.MAX_BEHAVIOURS``, ``KEEP_DAYS``);
                                            a new behaviour takes the least seen one's slot (``hits``)
``predictions.offers_pending``              5 offers (``responses.MAX_PENDING_OFFERS``)
``recent_contacts``                         20 (``update.MAX_RECENT_CONTACTS``)
``recent_ids``                              32 event-id fingerprints: the dedup horizon
                                            (``profile.MAX_EVENT_IDS``)
``applied``                                 one offset per input partition read
``windows``                                 3 tiers x their buckets (12, 24, 30) x 9 metrics, distinct
                                            sets <= 32 values (``windows.TIERS``, ``MAX_DISTINCT``)
==========================================  ============================================================

Bytes: every string a profile stores is at most 64 bytes of UTF-8
(``sizes.MAX_STORED_BYTES``: payload labels and ids keep a prefix, ``~`` and a
digest of the whole; window sets hold 8-hex digests), except customer
identifiers (256 characters, kept whole: they key profiles), attribute names and
relationship types (64 characters), flag reasons (``MAX_STORED_REASON``, 200
characters) and evidence (5 items of ``MAX_STORED_EVIDENCE``, 100), the top
actions' reasons (500), recent texts (200) and their event ids (128). Worst
cases, at 4 bytes a character, JSON overhead included: identity 86 KB (ids 26,
linked 33, attributes 23, merges 4), relationships 54 KB, windows 66 KB (66
buckets x 32 + 32 digests), flags 100 KB, predictions 20 KB, history 13 KB,
activity 9 KB, value, recent contacts, recent ids, applied offsets (48
partitions x 2 topics) 9 KB: about 365 KB, declared as
``sizes.MAX_PROFILE_BYTES`` = 384 KiB (before: about 530 KB reached; the undo
record encodes the profile once per event). ``tests/unit/test_bounds.py``
checks each string's bound and the document's size under an adversarial
stream of the longest, widest values the contract accepts, and of control
characters: stored strings lose their C0/DEL/C1 controls (``sizes.printable``),
since JSON writes a C0 control in 6 bytes and the arithmetic above assumes 4.

Timeline bytes: an entry (``ls:{<cust>}:timeline`` member) is at most
``timeline.MAX_ENTRY_BYTES`` = 1 KiB (summary cut to ``timeline.MAX_SUMMARY_BYTES``
= 640 bytes without controls, stored id and outcome), so one customer's timeline
holds at most ``timeline_max_entries`` (200) x 1 KiB = 200 KiB of members (before:
a snippet of controls or an uncut summary could make it several times that).

In memory, per worker: the profile cache (LRU, ``cache_size``), the time-zone
cache (LRU, ``policy.ZONE_CACHE_SIZE`` = 512), the text-token cache (LRU of
1024 texts of at most 512 characters; longer texts: the last 4), and the
engine's own maps -- one entry per input partition read
(aggregates; cleared when partitions move) and, per event, its staged
aggregate changes (emptied when the event ends). The in-memory store of
offline replays keeps every customer (it *is* the store) and the last
``MAX_FLAGS_KEPT`` flags.
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

    def first_claimant(self, identifier: str) -> str:
        """The first customer whose claim on ``identifier`` was recorded (string; same slot as its claim set): an
        erasure leaves its tombstone only where the erased customer claimed first (break-test 12j, J3)."""
        return f"{self.tag(identifier)}:first"

    def claims(self, customer_key: str) -> str:
        """Every identifier a known customer claimed (set), in the customer's slot: the erasure and the export
        reach them all, not only the profile's 32 newest links (break-test 12i, I1)."""
        return f"{self.tag(customer_key)}:claims"

    def pseudonym(self, pseudonym: str) -> str:
        """The customer key analysts' pseudonym ``pseudonym`` stands for (string), written with the profile.

        >>> Keys("ls").pseudonym("p_0123456789abcdef")
        'ls:{pseudonym:p_0123456789abcdef}'
        """
        return f"{self.prefix}:{{pseudonym:{pseudonym}}}"

    def pseudonyms(self, customer_key: str) -> str:
        """The pseudonyms whose lookup keys name ``customer_key`` (set, one per ``analyst_pseudonym_secret`` used):
        what its erasure deletes."""
        return f"{self.tag(customer_key)}:pseudonyms"

    def writer(self, customer_key: str) -> str:
        """``<p>|<epoch>`` of the engine that last wrote the customer's profile (Redis Cluster)."""
        return f"{self.tag(customer_key)}:writer"

    def part_tag(self, partition: int) -> str:
        """The hash-tagged part of every key of partition number ``partition``.

        >>> Keys("ls").partition("in", 3)
        'ls:{part:3}:agg:in'
        """
        return f"{self.prefix}:{{part:{partition}}}"

    def partition(self, topic: str, partition: int) -> str:
        """Shared aggregates (KPIs, voice of the customer, models) of one input partition."""
        return f"{self.part_tag(partition)}:agg:{topic}"

    def partition_pattern(self) -> str:
        """SCAN pattern of every partition aggregate key."""
        return f"{self.prefix}:{{part:*}}:agg:*"

    def partition_of(self, name: bytes | str) -> tuple[str, int]:
        """``(topic, partition)`` of an aggregate key.

        >>> Keys("ls").partition_of(b"ls:{part:3}:agg:in.x")
        ('in.x', 3)
        """
        text = name.decode() if isinstance(name, bytes) else name
        tag, _, topic = text[len(self.prefix) + 1 :].partition("}:agg:")
        return topic, int(tag.removeprefix("{part:"))

    def partition_meta(self, partition: int) -> str:
        """Ownership and resume offsets of partition number ``partition`` of every input topic."""
        return f"{self.part_tag(partition)}:meta"

    def write_ahead(self, partition: int) -> str:
        """Redis Cluster: the aggregates of partition ``partition``'s batch in flight (:mod:`state.write_ahead`)."""
        return f"{self.part_tag(partition)}:wal"

    def node_marker(self, index: int) -> str:
        """Redis Cluster: a store marker; index ``index`` is chosen so the key lands on a given master
        (:mod:`state.node_markers`)."""
        return f"{self.prefix}:{{node:{index}}}:store"

    def meta_pattern(self) -> str:
        """SCAN pattern of every partition's ownership hash."""
        return f"{self.prefix}:{{part:*}}:meta"

    @property
    def model_control(self) -> str:
        """Hash of model kind -> the latest promotion id (``livesignals models promote``)."""
        return f"{self.prefix}:models:control"

    @property
    def partition_count(self) -> str:
        """The partition count the deployment last started with (:mod:`state.topology`)."""
        return f"{self.prefix}:partitions"

    @property
    def repartition_topic_recorded(self) -> str:
        """The repartition topic the deployment last started with (:mod:`flows.abandoned_reroutes`)."""
        return f"{self.prefix}:repartition_topic"

    def secret(self, name: str) -> str:
        """A per-deployment random secret, created once (:mod:`state.secrets`)."""
        return f"{self.prefix}:secret:{name}"

    @property
    def flags_stream(self) -> str:
        """Stream of all raised flags (XREAD/XRANGE to replay)."""
        return f"{self.prefix}:flags"

    @property
    def updates_stream(self) -> str:
        """Stream of mood changes and new next-best-action decisions, per customer (desktops replay it);
        hash-tagged into the flags stream's Cluster slot, so one XREAD follows both."""
        return f"{{{self.prefix}:flags}}:updates"

    @property
    def flags_channel(self) -> str:
        """Pub/sub channel on which flags are pushed live."""
        return f"{self.prefix}:flags:live"
