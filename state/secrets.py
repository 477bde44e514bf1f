"""Per-deployment secrets kept in Redis: random, created once, shared by every engine of a deployment.

A secret a setting leaves empty must still be unguessable: the origin headers of rerouted events
(:func:`operators.routing.origin_key`) are signed so that whoever can write to the repartition
topic cannot make a customer's real events look like replays. Deriving the key from the
connection settings is guessable when those hold no password (the defaults, a Redis without
AUTH), so the engine takes a random one from Redis instead: ``SET NX`` makes the first engine's
choice everyone's. Whoever can read Redis can read it -- and could change any profile anyway.
If Redis loses its data under a running engine, the engine writes the secret it signs with back
(:func:`keep_secret`, at the state loss, before its replay re-routes anything): a restart then reads
the same secret and verifies the reroutes still in the topic (outside review of #10, G4: a new
secret made every reroute of the rebuild's backlog unverifiable, dead-lettered and lost).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from state.keys import Keys

log = logging.getLogger(__name__)
_warned: set[str] = set()


def deployment_secret(client: Any, keys: Keys, name: str) -> str:
    """The deployment's secret ``name``: created at random on first use, the same for every engine after."""
    key = keys.secret(name)
    client.set(key, secrets.token_hex(32), nx=True)
    value = client.get(key)
    if value is None:  # deleted between the two calls: try once more
        client.set(key, secrets.token_hex(32), nx=True)
        value = client.get(key)
    if value is None:
        raise RuntimeError(f"Redis did not keep the deployment secret {key!r}")
    return value.decode() if isinstance(value, bytes) else str(value)


def keep_secret(client: Any, keys: Keys, name: str, value: str) -> bool:
    """Put ``value`` back as the deployment's secret ``name`` unless Redis holds one (``SET NX``, after Redis lost
    its data); True if Redis now holds ``value``."""
    key = keys.secret(name)
    client.set(key, value, nx=True)
    held = client.get(key)
    return held is not None and (held.decode() if isinstance(held, bytes) else str(held)) == value


def pseudonym_secret(client: Any, keys: Keys, configured: str) -> str:
    """The key of analysts' pseudonyms (:func:`livesignals.privacy.analyst_pseudonym`): ``configured``
    (``analyst_pseudonym_secret``), else the deployment's random ``pseudonym`` secret, with a WARNING once per
    process (the value is never logged): whoever reads Redis can read that one and so reverse a pseudonym by
    trying candidate ids -- fine for a demo, not for production."""
    if configured:
        return configured
    if keys.prefix not in _warned:
        _warned.add(keys.prefix)
        log.warning("analyst_pseudonym_secret is not set: analysts' pseudonyms are keyed with a random secret kept "
                    "in Redis (%s); set LIVESIGNALS_ANALYST_PSEUDONYM_SECRET from a secret store in production",
                    keys.secret("pseudonym"))  # fmt: skip
    return deployment_secret(client, keys, "pseudonym")
