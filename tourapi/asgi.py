"""ASGI entry point for servers: ``granian --interface asgi --factory tourapi.asgi:app_factory``.

Settings are read here, when the server calls the factory in each worker,
never at import time; the worker's garbage-collector settings are applied here too (gcpolicy.py).
"""

from __future__ import annotations

from litestar import Litestar

from tourapi.app import create_app
from tourapi.gcpolicy import tune_for_serving
from tourapi.settings import Settings


def app_factory() -> Litestar:
    return tune_for_serving(create_app(Settings.from_env()))
