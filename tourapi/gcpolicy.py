"""Garbage-collector settings for a server worker (the ASGI factory applies them; tests and the CLI do not).

A worker keeps a large long-lived heap (the geofence index, routes, keys, caches: ~250,000 tracked
objects with the synthetic city) and serves dozens of requests at once. With CPython's default
thresholds (700, 10, 10) every young collection promotes the objects of the requests in flight, so under
load a full collection ran about once a second and walked the whole heap for ~140 ms: the ping's p99.
Two standard remedies:

* a young collection only after 50,000 net allocations: a request's objects are freed by reference
  counting long before, so far fewer in-flight objects are promoted (at most 50,000 objects of cyclic
  garbage wait for a collection);
* ``gc.freeze()`` once the worker has started: the heap as it stands then (modules, settings, the first
  index) is left out of every later collection. Structures replaced later are still freed by reference
  counting; the geofence index has no reference cycles (a replaced, frozen cycle would stay until exit).

docs/performance.md has the measurement (GC pauses and the ping before and after).
"""

from __future__ import annotations

import gc

from litestar import Litestar

YOUNG_COLLECTION_AFTER = 50_000  # net allocations of tracked objects (CPython's default is 700)


def tune_for_serving(app: Litestar) -> Litestar:
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_AFTER, older, oldest)
    app.on_startup.append(_freeze_startup_heap)  # after the lifespan: the runtime has loaded its data
    return app


def _freeze_startup_heap() -> None:
    gc.collect()
    gc.freeze()
