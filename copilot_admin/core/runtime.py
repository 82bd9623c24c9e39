"""Start-up tuning of the long-running processes (the web workers, the Celery worker's children).

Python's garbage collector runs when allocations outnumber deallocations by the first
threshold (700 by default), and every collection of an older generation walks all the objects
in it. A web worker with hundreds of copilot calls in flight keeps tens of thousands of live
objects per call (requests, coroutines, futures, response buffers): at the default thresholds
the young generation was collected several times per call, each promoting the live calls'
objects, and the full collections that followed walked those and the whole of Django's
start-up state (about 120,000 objects) again. `make bench` measured that as a quarter of a
web worker's CPU at 500 calls in flight (docs/SCALING.md).

`gc_tune` runs once a process has loaded everything it will keep: it collects once, freezes
what is left (`gc.freeze`: never scanned again; in a forked child also never written to, so
its memory pages stay shared) and sets `settings.GC_THRESHOLDS`. Reference counting still frees
almost every object at once; the collector is only for cycles, which now wait for 50,000
allocations instead of 700.
"""

from __future__ import annotations

import gc

from django.conf import settings


def gc_tune() -> None:
    """Freeze what this process has loaded and set the collector's thresholds (`settings.GC_THRESHOLDS`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*settings.GC_THRESHOLDS)
