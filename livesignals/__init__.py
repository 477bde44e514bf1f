"""LiveSignals: live customer signals from interaction streams.

The shell package: CLI, settings, the event contract, serde, metrics and
errors. The engine lives in the top-level packages ``operators`` (pure
logic), ``state`` (Redis), ``models`` (online models) and ``flows`` (Bytewax
wiring).
"""

__version__ = "0.1.0"
