"""LiveSignals kernel: what every layer may import, and nothing else.

The event contract (:mod:`.contract`, with the JSON Schemas in ``schemas/``),
serialisation (:mod:`.serde`), errors and dead letters (:mod:`.errors`),
typed settings (:mod:`.settings`), the metrics registry (:mod:`.metrics`) and
the shipped rules file (``rules/``). The kernel imports no other package of
the project. Layers above it, in order: ``models``, ``operators``, ``state``,
``flows``, then the application (``app``) and the services.
"""

__version__ = "0.1.0"
