"""The server workers' garbage-collector policy (tourapi/gcpolicy.py), applied by the ASGI factory."""

from __future__ import annotations

import gc
from types import SimpleNamespace

from conftest import lifespan

from tourapi import asgi
from tourapi.gcpolicy import YOUNG_COLLECTION_AFTER


def tracked(obj: object) -> bool:
    """Whether later collections walk this object (frozen objects are in no generation)."""
    return any(o is obj for o in gc.get_objects())


async def test_a_server_worker_keeps_its_startup_heap_out_of_later_collections(settings, monkeypatch) -> None:
    monkeypatch.setattr(asgi, "Settings", SimpleNamespace(from_env=lambda: settings))
    thresholds = gc.get_threshold()
    try:
        app = asgi.app_factory()
        assert gc.get_threshold() == (YOUNG_COLLECTION_AFTER, *thresholds[1:])
        async with lifespan(app):
            index = app.state.runtime.fences.index
            assert len(index.sources) > 0  # the fixtures' geofences were loaded before the freeze
            assert gc.get_freeze_count() > 0
            assert not tracked(index.sources)
            later = [object(), {}]
            assert tracked(later)  # what comes after startup is collected as usual
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
