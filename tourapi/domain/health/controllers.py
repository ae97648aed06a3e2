"""/healthz (the process answers) and /readyz (database and Redis answer)."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Response, get
from sqlalchemy import text

from tourapi.errors import PROBLEM_JSON, problem_type
from tourapi.runtime import Runtime
from tourapi.security.policies import Policy, access
from tourapi.web.deps import Dep


@get("/healthz", **access(Policy.PUBLIC), tags=["Health"], summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _check(probe: Any, timeout: float) -> str | None:  # noqa: ASYNC109 - one bound for every probe
    try:
        await asyncio.wait_for(probe, timeout)
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the kind is reported
        return type(exc).__name__


async def _ping_db(runtime: Runtime) -> None:
    async with runtime.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


@get("/readyz", **access(Policy.PUBLIC), tags=["Health"], summary="Readiness: database and Redis reachable")
async def readyz(runtime: Dep[Runtime]) -> Response[dict[str, Any]]:
    timeout = max(runtime.settings.redis_timeout_s, 1.0)
    db_error, redis_error = await asyncio.gather(
        _check(_ping_db(runtime), runtime.settings.db_timeout_s), _check(runtime.redis.ping(), timeout)
    )
    checks = {
        "database": "ok" if db_error is None else f"down ({db_error})",
        "redis": "ok" if redis_error is None else f"down ({redis_error})",
        "geofence_index": {"fences": len(runtime.fences.index), "version": runtime.fences.index.version},
    }
    if db_error is None and redis_error is None:
        return Response({"status": "ready", "checks": checks}, headers={"Cache-Control": "no-store"})
    down = [name for name, err in (("database", db_error), ("redis", redis_error)) if err]
    return Response(
        {
            "type": problem_type("not-ready"),
            "title": "Not ready",
            "status": 503,
            "detail": f"not reachable: {', '.join(down)}",
            "checks": checks,
        },
        status_code=503,
        media_type=PROBLEM_JSON,
        headers={"Cache-Control": "no-store", "Retry-After": "5"},
    )
