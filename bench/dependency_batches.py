"""Which route handlers make Litestar resolve dependencies in an anyio task group on every request.

Litestar resolves a handler's dependencies level by level; a level with more than one dependency runs
in an anyio task group (a task, a cancel scope and an event per dependency). For the nearby POI list
that was ~40 % of the worker's CPU (docs/performance.md, "What limits each missed target").

    python -m bench.dependency_batches
"""

from __future__ import annotations

import tempfile

from tourapi.app import create_app
from tourapi.settings import Settings


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings.from_env(database_url=f"sqlite+aiosqlite:///{tmp}/batches.db"))
        parallel = 0
        for route in app.routes:
            for method, (_, kwargs_model) in getattr(route, "route_handler_map", {}).items():
                levels = [sorted(d.key for d in batch) for batch in kwargs_model.dependency_batches]
                if method != "OPTIONS" and any(len(level) > 1 for level in levels):
                    parallel += 1
                    print(f"{method:6} {route.path:60} {levels}")
        print(f"{parallel} handlers resolve dependencies in a task group")


if __name__ == "__main__":
    main()
