"""Per-deployment secrets kept in Redis: random, created once, shared by every engine of a deployment.

A secret a setting leaves empty must still be unguessable: the origin headers of rerouted events
(:func:`operators.routing.origin_key`) are signed so that whoever can write to the repartition
topic cannot make a customer's real events look like replays. Deriving the key from the
connection settings is guessable when those hold no password (the defaults, a Redis without
AUTH), so the engine takes a random one from Redis instead: ``SET NX`` makes the first engine's
choice everyone's. Whoever can read Redis can read it -- and could change any profile anyway.
If Redis loses its data the secret changes; records signed with the old one are then applied as
read (:mod:`operators.routing`), and the state loss is detected and replayed (:mod:`state.ownership`).
"""

from __future__ import annotations

import secrets
from typing import Any

from state.keys import Keys


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
