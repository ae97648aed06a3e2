"""Dependency injection: ``Dep[T]`` and resolving each handler's dependencies one at a time."""

from __future__ import annotations

from typing import Annotated, TypeAlias, TypeVar

from litestar import Litestar
from litestar.di import Dependency
from litestar.params import SkipValidationMarker
from litestar.routes import HTTPRoute

T = TypeVar("T")

Dep: TypeAlias = Annotated[T, Dependency(kind="named"), SkipValidationMarker()]


def resolve_dependencies_in_order(app: Litestar) -> None:
    """Make every HTTP handler resolve its dependencies one at a time, level by level.

    Litestar resolves each level of a handler's dependency graph that holds two or more providers in an
    anyio task group (litestar-org/litestar#4563). Our providers are non-blocking (query parsing, the
    runtime, a lazily connecting session), so concurrency buys nothing, while the task group was 40 % of
    the nearby-POI list's CPU (docs/performance.md). Each level's providers still run before the next
    level's, which is the only order Litestar promises. Call it after every route is registered
    (``app.register`` rebuilds a route's batches). ``tests/test_dependencies.py`` fails if a Litestar
    upgrade changes the structure this relies on.
    """
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for _, kwargs_model in route.route_handler_map.values():
            kwargs_model.dependency_batches = [
                {dependency}
                for level in kwargs_model.dependency_batches
                for dependency in sorted(level, key=lambda d: d.key)
            ]
