"""The engine process's garbage-collector settings, applied once its start-up is done (issue #16).

Python's cyclic collector scans every tracked object of a generation when it
collects it. An engine holds a large heap that never becomes garbage (River
and scipy's modules, the models, the rules, the compiled event validators) and
allocates many short-lived dicts and lists per event: with Python's defaults
(a young collection every 700 allocations) the collector took ~9 % of the
engine's CPU in ``bench.apply``, much of it in full collections that rescan
the whole heap, start-up heap included (0.15-0.3 s of CPU each, a stall of
the batch in flight).

:func:`settle_heap`, called once the engine is built (:func:`flows.live.build`'s
engine factory; ``bench.apply`` calls it too, so that it measures what runs
in production):

* collects once, then **freezes** what is left (``gc.freeze()``): the start-up
  heap moves to the permanent generation and no collection scans it again;
* raises the **young generation's threshold** to :data:`YOUNG_THRESHOLD`
  allocations: most of an event's temporary containers are then freed by
  reference counting before a collection sees them, and fewer survive into
  the older generations.

The README's *Benchmarks* section gives the figures (GC share of the CPU,
peak RSS) per variant. Process-global, hence here in ``flows/``, never in the
engine library (``operators/``).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Net container allocations between two young-generation collections (Python's default: 700)."""


def settle_heap() -> int:
    """Collect, freeze the objects alive now (the start-up heap), set the young threshold to
    :data:`YOUNG_THRESHOLD` (older generations keep Python's ratios); the number of frozen objects.

    Call it once the engine is built and before the first batch; calling it again (another
    worker's engine) freezes that engine too.
    """
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    gc.collect()  # garbage left by start-up is freed, not frozen for the process's life
    gc.freeze()
    return gc.get_freeze_count()
