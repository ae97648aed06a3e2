"""/v1/sessions: anonymous visitor sessions and their ping batches; public crowd levels."""

from __future__ import annotations

from typing import Any, ClassVar

from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.domain.common.responses import PRIVATE_NO_STORE
from tourapi.domain.sessions import services
from tourapi.domain.sessions.schemas import (
    Crowd,
    Erased,
    EraseRequest,
    PingBatch,
    PingResult,
    SessionStart,
    SessionStarted,
)
from tourapi.runtime import Runtime
from tourapi.security.policies import Policy, access
from tourapi.security.principal import Principal
from tourapi.web.deps import Dep


class SessionController(Controller):
    path = "/v1/sessions"
    tags: ClassVar[list[str]] = ["Live sessions"]

    @post("/", **access(Policy.PUBLIC), summary="Start an anonymous visitor session")
    async def start(
        self,
        request: Request[Any, Any, Any],
        runtime: Dep[Runtime],
        db_session: Dep[AsyncSession],
        data: JSONBody[SessionStart],
    ) -> Response[SessionStarted]:
        client_ip = request.client.host if request.client else None
        started = await services.start_session(runtime, db_session, data, client_ip)
        return Response(started, status_code=201, headers=PRIVATE_NO_STORE)

    @delete("/{session_id:str}", **access(Policy.VISITOR), summary="End a session and erase its live state")
    async def end(
        self, request: Request[Principal, Any, Any], runtime: Dep[Runtime], session_id: FromPath[str]
    ) -> None:
        await services.end_session(runtime, request.user, session_id)

    @post(
        "/{session_id:str}/pings",
        **access(Policy.VISITOR),
        status_code=200,
        summary="Send a batch of 1-100 location pings; get geofence transitions back",
    )
    async def pings(
        self,
        request: Request[Principal, Any, Any],
        runtime: Dep[Runtime],
        session_id: FromPath[str],
        data: JSONBody[PingBatch],
    ) -> Response[PingResult]:
        result = await services.ingest_pings(runtime, request.user, session_id, data)
        return Response(result, headers=PRIVATE_NO_STORE)


class PrivacyController(Controller):
    path = "/v1/privacy"
    tags: ClassVar[list[str]] = ["Live sessions"]

    @post(
        "/erase",
        **access(Policy.PUBLIC),
        status_code=200,
        summary="Erase every live session of an app install (the install id is the app's secret)",
    )
    async def erase(self, runtime: Dep[Runtime], data: JSONBody[EraseRequest]) -> Response[Erased]:
        erased = await services.erase_install(runtime, data.install_id)
        return Response(Erased(sessions_erased=erased), headers=PRIVATE_NO_STORE)


class CrowdController(Controller):
    path = "/v1/pois"
    tags: ClassVar[list[str]] = ["Live sessions"]

    @get("/{poi_id:str}/crowd", **access(Policy.PUBLIC), summary="Public crowd level of a venue (no counts)")
    async def crowd(self, runtime: Dep[Runtime], poi_id: FromPath[str]) -> Response[Crowd]:
        level, as_of = await services.public_crowd(runtime, poi_id)
        return Response(
            Crowd(poi_id=poi_id, level=level, as_of=as_of),  # type: ignore[arg-type]
            headers={"Cache-Control": "public, max-age=15"},
        )
