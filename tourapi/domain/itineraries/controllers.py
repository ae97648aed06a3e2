"""/v1/itineraries: personal night itineraries (anonymous; nothing is stored)."""

from __future__ import annotations

import time
from typing import Annotated, Any, ClassVar

from litestar import Controller, Request, Response, post
from litestar.di import Provide
from litestar.params import HeaderParameter, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.domain.common.responses import PRIVATE_NO_STORE
from tourapi.domain.itineraries.schemas import PlanRequest
from tourapi.domain.itineraries.services import PlannerService
from tourapi.runtime import Runtime
from tourapi.security.policies import Policy, access
from tourapi.web.deps import Dep
from tourapi.web.ratelimit import ip_subject

AcceptLanguage = Annotated[str | None, HeaderParameter(name="Accept-Language", required=False)]


def provide_planner_service(runtime: Dep[Runtime], db_session: Dep[AsyncSession]) -> PlannerService:
    return PlannerService(runtime, db_session)


class ItineraryController(Controller):
    path = "/v1/itineraries"
    tags: ClassVar[list[str]] = ["Itineraries"]
    dependencies: ClassVar[dict[str, Provide]] = {
        "service": Provide(provide_planner_service, sync_to_thread=False),
    }

    @post(
        "/plan",
        **access(Policy.PUBLIC),
        status_code=200,
        summary="Plan a personal night: venues, order, arrival times, shows and boats (crowd-aware)",
    )
    async def plan(
        self,
        request: Request[Any, Any, Any],
        runtime: Dep[Runtime],
        service: Dep[PlannerService],
        data: JSONBody[PlanRequest],
        accept_language: AcceptLanguage = None,
    ) -> Response[dict[str, Any]]:
        # Each plan runs the solver: bounded per IP (tourapi/web/ratelimit.py LIMITS["plan"]).
        client = ip_subject(request.client.host if request.client else None)
        await runtime.limiter.acquire_or_skip("plan", {"ip": client}, time.time(), "itinerary plans")
        body, solver_s = await service.plan(data, accept_language)
        headers = {**PRIVATE_NO_STORE, "Server-Timing": f"solver;dur={solver_s * 1000:.1f}"}
        return Response(body, headers=headers)
