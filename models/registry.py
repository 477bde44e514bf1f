"""The models one partition runs: a champion per kind, optionally a challenger in shadow.

Model choice and hyper-parameters come from settings, never code::

    [models.churn.champion]
    learning_rate = 0.05
    [models.churn.challenger]
    learning_rate = 0.2
    l2 = 0.001

Both champion and challenger learn from every label and keep their own
progressive-validation figures; only the champion's scores reach profiles,
flags and actions. ``promote(kind)`` swaps them (``livesignals models
promote churn``). A model's version names its kind, its parameters and its
seed, so a figure can always be traced to a configuration.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from typing import Any, Protocol

from livesignals import serde
from models.churn import ChurnModel
from models.fraud import FraudModel
from models.propensity import ResponseModel
from models.sentiment import SentimentModel

KINDS: dict[str, type] = {
    "sentiment": SentimentModel, "churn": ChurnModel, "fraud": FraudModel,
    "offers": ResponseModel, "flag_relevance": ResponseModel,
}  # fmt: skip
"""``offers``: acceptance propensity per action; ``flag_relevance``: agents' verdicts per flag."""


def version_of(kind: str, params: dict[str, Any]) -> str:
    """A stable version name for a model configuration.

    >>> version_of("churn", {"learning_rate": 0.05})
    'churn-e4ee0fc5'
    """
    digest = hashlib.blake2b(serde.dumps(dict(sorted(params.items()))), digest_size=4).hexdigest()
    return f"{kind}-{digest}"


@dataclass
class Slot:
    """One model in a role, with the configuration it was built from."""

    kind: str
    params: dict[str, Any]
    model: Any

    @property
    def version(self) -> str:
        """See :func:`version_of`; remembered while ``params`` stay equal (scoring asks on every event)."""
        memo = self.__dict__.get("_version")
        if memo is not None and memo[0] == self.params and memo[1] == self.kind:
            return memo[2]
        version = version_of(self.kind, self.params)
        self.__dict__["_version"] = (dict(self.params), self.kind, version)
        return version

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the remembered version (a checkpoint's bytes do not depend on who asked)."""
        return {k: v for k, v in self.__dict__.items() if k != "_version"}

    @classmethod
    def build(cls, kind: str, params: dict[str, Any]) -> Slot:
        """A fresh model of ``kind`` with ``params``."""
        return cls(kind, dict(params), KINDS[kind](**params))


class Models(Protocol):
    """What scoring code needs from a model set: the champions, every role, and a way to teach.

    :class:`ModelSet` learns at once; the engine's shared learner hands scoring a
    view whose :meth:`teach` only records the lesson, learned later in the order
    every worker sees (:mod:`operators.scoring.learner`).
    """

    @property
    def champions(self) -> dict[str, Slot]:
        """The champion of every kind."""

    def model(self, kind: str) -> Any:
        """The champion of ``kind``."""

    def all(self, kind: str) -> list[tuple[str, Slot]]:
        """``[("champion", slot), ("challenger", slot)?]`` for ``kind``."""

    def teach(self, kind: str, args: list[Any], said: dict[str, float | None] | None = None) -> None:
        """Teach every model of ``kind`` one example (see :meth:`ModelSet.teach`)."""


@dataclass
class ModelSet:
    """Champions and challengers of every model kind (see the module docstring)."""

    champions: dict[str, Slot] = field(default_factory=dict)
    challengers: dict[str, Slot] = field(default_factory=dict)
    promotions_applied: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: dict[str, Any] | None = None) -> ModelSet:
        """Build from the ``models`` settings table (defaults for what it leaves out)."""
        config = config or {}
        unknown = set(config) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown model kinds in settings: {sorted(unknown)}")
        out = cls()
        for kind in KINDS:
            table = config.get(kind, {})
            out.champions[kind] = Slot.build(kind, table.get("champion", {}))
            if "challenger" in table:
                out.challengers[kind] = Slot.build(kind, table["challenger"])
        return out

    def model(self, kind: str) -> Any:
        """The champion of ``kind``."""
        return self.champions[kind].model

    def all(self, kind: str) -> list[tuple[str, Slot]]:
        """``[("champion", slot), ("challenger", slot)?]`` for ``kind``."""
        roles = [("champion", self.champions[kind])]
        if kind in self.challengers:
            roles.append(("challenger", self.challengers[kind]))
        return roles

    def teach(self, kind: str, args: list[Any], said: dict[str, float | None] | None = None) -> None:
        """Every model of ``kind`` learns ``learn_one(*args)``; with ``said``, each role also gets
        what it predicted at scoring time (``said.get(role)``, progressive validation).

        >>> m = ModelSet.from_config()
        >>> m.teach("sentiment", ["great service", "positive"])
        >>> m.model("sentiment").labels
        1
        """
        for role, slot in self.all(kind):
            if said is None:
                slot.model.learn_one(*args)
            else:
                slot.model.learn_one(*args, said.get(role))

    def promote(self, kind: str, promotion_id: str) -> bool:
        """Swap champion and challenger of ``kind``, once per ``promotion_id``."""
        if promotion_id in self.promotions_applied or kind not in self.challengers:
            return False
        self.champions[kind], self.challengers[kind] = self.challengers[kind], self.champions[kind]
        self.promotions_applied.append(promotion_id)
        del self.promotions_applied[:-50]
        return True

    def summary(self) -> list[dict[str, Any]]:
        """One row per model and role: version and validation figures."""
        rows = []
        for kind in KINDS:
            for role, slot in self.all(kind):
                rows.append({"kind": kind, "role": role, "version": slot.version, **slot.model.summary()})
        return rows

    def to_bytes(self) -> bytes:
        """A checkpoint (pickle: River models are picklable)."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def from_bytes(data: bytes) -> ModelSet:
        """Restore a checkpoint written by :meth:`to_bytes` (trusted: written by the engine)."""
        restored: ModelSet = pickle.loads(data)  # noqa: S301 - our own checkpoint in our own Redis
        return restored
