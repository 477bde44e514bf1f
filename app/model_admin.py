"""Guards and exports around the live models: refuse a promotion with no challenger, export a checkpoint.

``livesignals models export --out offers.pkl`` writes the ``offers`` challenger
from the engine's shared checkpoint in Redis, the file that
``livesignals models evaluate-policy --policy model:offers.pkl`` scores.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from app.reach import CliError
from livesignals.settings import Settings
from state.models_store import RedisModelLog


def require_challenger(client: Any, settings: Settings, kind: str) -> None:
    """:class:`CliError` unless the running models have a challenger of ``kind`` to promote.

    The engines' checkpoint summary says which roles exist; before the first
    checkpoint, the settings' ``[models.<kind>.challenger]`` table does.
    """
    rows = RedisModelLog(client, settings.key_prefix).summary()
    if rows:
        has = any(r.get("kind") == kind and r.get("role") == "challenger" for r in rows)
    else:
        has = "challenger" in (settings.models.get(kind) or {})
    if not has:
        raise CliError(
            f"models promote {kind}: there is no challenger of {kind} to promote "
            f"(configure [models.{kind}.challenger] in the settings file and restart the engine); nothing changed"
        )


def export_model(client: Any, settings: Settings, kind: str, role: str, out: str | Path) -> str:
    """Pickle the ``role`` model of ``kind`` from the checkpoint in Redis to ``out``; returns its version."""
    found = RedisModelLog(client, settings.key_prefix).load_checkpoint()
    if found is None:
        raise CliError(
            "no models checkpoint in Redis yet: the engine writes one after "
            f"{settings.models_checkpoint_every} lessons or {settings.models_checkpoint_every_s:g} s"
        )
    state = pickle.loads(found[0])  # noqa: S301 - the engine's own checkpoint in the deployment's Redis
    models = state.models
    slots = dict(models.all(kind)) if kind in models.champions else {}
    if role not in slots:
        raise CliError(f"models export: there is no {role} of {kind} in the checkpoint (roles: {sorted(slots)})")
    slot = slots[role]
    Path(out).write_bytes(pickle.dumps(slot.model, protocol=pickle.HIGHEST_PROTOCOL))
    return str(slot.version)
