"""/v1/live: the operators' live API (operators and admins only)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, ClassVar, Literal

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.domain.common.params import RowId
from tourapi.domain.common.responses import PRIVATE_NO_STORE
from tourapi.domain.live import services
from tourapi.runtime import Runtime
from tourapi.security.policies import Policy, access
from tourapi.security.principal import Principal
from tourapi.web.deps import Dep


class LiveController(Controller):
    path = "/v1/live"
    tags: ClassVar[list[str]] = ["Operators' live view"]

    @get("/summary", **access(Policy.OPERATOR), summary="Active sessions and per-venue occupancy right now")
    async def summary(self, runtime: Dep[Runtime]) -> Response[dict[str, Any]]:
        return Response(await services.summary(runtime), headers=PRIVATE_NO_STORE)

    @get(
        "/pois/{poi_id:str}/history",
        **access(Policy.OPERATOR),
        summary="Five-minute occupancy series from the persisted snapshots, with the live value",
    )
    async def history(
        self,
        runtime: Dep[Runtime],
        db_session: Dep[AsyncSession],
        poi_id: FromPath[str],
        hours: Annotated[float, QueryParameter(gt=0, le=48, description="how far back")] = 2.0,
    ) -> Response[dict[str, Any]]:
        return Response(await services.history(runtime, db_session, poi_id, hours), headers=PRIVATE_NO_STORE)

    @get("/alerts", **access(Policy.OPERATOR), summary="Crowd alerts, newest first")
    async def alerts(
        self,
        db_session: Dep[AsyncSession],
        status: Annotated[
            Literal["open", "all"], QueryParameter(description="open = not acknowledged")
        ] = "open",
    ) -> Response[list[dict[str, Any]]]:
        return Response(await services.alerts(db_session, status), headers=PRIVATE_NO_STORE)

    @post(
        "/alerts/{alert_id:int}/ack",
        **access(Policy.OPERATOR),
        status_code=200,
        summary="Acknowledge an alert",
    )
    async def ack(
        self,
        request: Request[Principal, Any, Any],
        runtime: Dep[Runtime],
        db_session: Dep[AsyncSession],
        alert_id: RowId,
    ) -> dict[str, Any]:
        who = request.user.username or request.user.subject
        return await services.acknowledge(runtime, db_session, alert_id, who)

    @get("/stream", **access(Policy.OPERATOR), summary="Server-Sent Events: a snapshot, then live aggregates")
    async def stream(
        self,
        runtime: Dep[Runtime],
        last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID", required=False)] = None,
    ) -> ServerSentEvent:
        resume = services.check_last_event_id(last_event_id)

        async def messages() -> AsyncIterator[ServerSentEventMessage]:
            async for item in services.stream(runtime, resume):
                if "comment" in item:
                    # data=None: without it the comment would carry an empty "data:" line, which
                    # makes it an (empty) message event instead of a comment.
                    yield ServerSentEventMessage(comment=item["comment"], data=None)
                else:
                    data = json.dumps(item["data"], separators=(",", ":"), ensure_ascii=False)
                    yield ServerSentEventMessage(data=data, event=item["event"], id=item["id"])

        return ServerSentEvent(messages(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
