"""Handlers resolve their dependencies one at a time, in dependency order, in the request's own task."""

from __future__ import annotations

import asyncio
from pathlib import Path

from litestar import Litestar, get
from litestar.di import Provide
from litestar.testing import TestClient

from tourapi.app import create_app
from tourapi.settings import Settings
from tourapi.web.deps import Dep, resolve_dependencies_in_order


def test_dependencies_run_in_order_without_extra_tasks() -> None:
    seen: list[tuple[str, asyncio.Task[object] | None]] = []

    async def first() -> int:
        seen.append(("first", asyncio.current_task()))
        return 1

    async def second() -> int:
        seen.append(("second", asyncio.current_task()))
        return 2

    async def total(first: Dep[int], second: Dep[int]) -> int:
        seen.append(("total", asyncio.current_task()))
        return first + second

    @get("/", dependencies={"first": Provide(first), "second": Provide(second), "total": Provide(total)})
    async def handler(total: Dep[int]) -> dict[str, int]:
        seen.append(("handler", asyncio.current_task()))
        return {"total": total}

    app = Litestar([handler])
    resolve_dependencies_in_order(app)
    with TestClient(app) as client:
        assert client.get("/").json() == {"total": 3}
    assert [name for name, _ in seen] == ["first", "second", "total", "handler"]
    assert len({task for _, task in seen}) == 1  # no task group: one task for the whole request


def test_every_tourapi_handler_resolves_one_dependency_at_a_time(tmp_path: Path) -> None:
    app = create_app(Settings.from_env(database_url=f"sqlite+aiosqlite:///{tmp_path}/deps.db"))
    orders = {
        (method, route.path): [d.key for batch in model.dependency_batches for d in batch]
        for route in app.routes
        for method, (_, model) in getattr(route, "route_handler_map", {}).items()
    }
    for (method, path), order in orders.items():
        assert len(order) == len(set(order)), (method, path, order)
    for route in app.routes:
        for _, model in getattr(route, "route_handler_map", {}).values():
            assert all(len(batch) == 1 for batch in model.dependency_batches), route.path
    nearby = orders[("GET", "/v1/pois")]
    assert set(nearby) == {"bbox_filter", "chain", "db_session", "near", "paging", "runtime", "service"}
    assert nearby[-1] == "service"  # after the runtime and the session it is built from
