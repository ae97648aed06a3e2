"""/v1/anchors and /v1/pois/{poi_id}/anchors: thin handlers; the work is in AnchorService."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Any, ClassVar

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import Provide
from litestar.exceptions import SerializationException
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.domain.anchors import hooks as _hooks  # noqa: F401  (registers sync + bundle)
from tourapi.domain.anchors.frames import Frame
from tourapi.domain.anchors.schemas import AnchorCreate, AnchorPatch, AnchorWrite
from tourapi.domain.anchors.services import (
    MAX_NEARBY_RADIUS_M,
    AnchorService,
    anchor_json,
    geopose_item,
)
from tourapi.domain.common.params import (
    CrsParam,
    Paging,
    parse_moment,
    point_in,
    provide_lang_chain,
    provide_paging,
)
from tourapi.domain.common.responses import public_cache
from tourapi.domain.pois.services import now
from tourapi.errors import Unprocessable
from tourapi.geo.backend import Near
from tourapi.geo.crs import Crs
from tourapi.runtime import Runtime
from tourapi.security.policies import Policy, access
from tourapi.timeutil import TZ
from tourapi.web.deps import Dep

JSON = "application/json"
GEOPOSE_JSON = "application/geopose+json"
DEFAULT_RADIUS_M = 300.0
FrameParam = Annotated[
    Frame,
    QueryParameter(
        description="quaternion convention: enu (GeoPose, default), arcore or arkit (East-Up-South)"
    ),
]
AtParam = Annotated[
    str | None, QueryParameter(description="ISO date-time for the visibility schedule (default now)")
]


class LenientJsonRequest(Request[Any, Any, Any]):
    """Reads JSON bodies with the standard library, which accepts NaN and Infinity literals, so a
    non-finite pose number is answered with a 422 naming the field instead of a generic 400."""

    async def json(self) -> Any:
        body = await self.body()
        try:
            return json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise SerializationException(str(exc)) from exc


def provide_anchor_service(runtime: Dep[Runtime], db_session: Dep[AsyncSession]) -> AnchorService:
    return AnchorService(runtime, db_session)


def provide_anchor_near(
    lon: Annotated[float | None, QueryParameter(description="longitude of the visitor (required)")] = None,
    lat: Annotated[float | None, QueryParameter(description="latitude of the visitor (required)")] = None,
    radius: Annotated[
        float, QueryParameter(description=f"metres, at most {MAX_NEARBY_RADIUS_M:.0f}")
    ] = DEFAULT_RADIUS_M,
    crs: CrsParam = Crs.WGS84,
) -> Near:
    if lon is None or lat is None:
        raise Unprocessable("lon and lat are required", field="lon" if lon is None else "lat")
    for name, value, limit in (("lon", lon, 180.0), ("lat", lat, 90.0)):
        if not (math.isfinite(value) and -limit <= value <= limit):
            raise Unprocessable(f"{name} must be a number in -{limit:g}..{limit:g}", field=name)
    if not math.isfinite(radius) or radius <= 0 or radius > MAX_NEARBY_RADIUS_M:
        raise Unprocessable(
            f"radius must be a number of metres in (0, {MAX_NEARBY_RADIUS_M:.0f}]", field="radius"
        )
    wlon, wlat = point_in(lon, lat, crs)
    return Near(wlon, wlat, radius)


def _wants_geopose(request: Request[Any, Any, Any], frame: Frame) -> bool:
    wanted = request.accept.best_match([JSON, GEOPOSE_JSON], default=JSON) == GEOPOSE_JSON
    if wanted and frame is not Frame.ENU:
        raise Unprocessable(
            "application/geopose+json is always East-North-Up; drop frame or ask for application/json",
            field="frame",
        )
    return wanted


def _headers() -> dict[str, str]:
    return {**public_cache(60), "Vary": "Accept, Accept-Language"}


def _moment(at: str | None) -> datetime:
    return parse_moment(at, "at") if at else now()


class AnchorController(Controller):
    path = "/v1"
    tags: ClassVar[list[str]] = ["AR anchors"]
    request_class = LenientJsonRequest
    dependencies: ClassVar[dict[str, Provide]] = {
        "service": Provide(provide_anchor_service, sync_to_thread=False),
        "chain": Provide(provide_lang_chain, sync_to_thread=False),
    }

    @get(
        "/anchors",
        **access(Policy.PUBLIC),
        dependencies={
            "near": Provide(provide_anchor_near, sync_to_thread=False),
            "paging": Provide(provide_paging, sync_to_thread=False),
        },
        summary="AR anchors near a point that are visible at a moment, nearest first",
    )
    async def nearby_anchors(
        self,
        request: Request[Any, Any, Any],
        service: Dep[AnchorService],
        chain: Dep[tuple[str, ...]],
        near: Dep[Near],
        paging: Dep[Paging],
        at: AtParam = None,
        frame: FrameParam = Frame.ENU,
    ) -> Response[Any]:
        moment = _moment(at)
        geopose = _wants_geopose(request, frame)
        page = await service.nearby(near, moment, paging)
        if geopose:
            return Response([geopose_item(a) for a in page.rows], media_type=GEOPOSE_JSON, headers=_headers())
        anchors = [
            anchor_json(a, chain, frame=frame, moment=moment, distance_m=d)
            for a, d in zip(page.rows, page.distances)
        ]
        body: dict[str, Any] = {
            "anchors": anchors,
            "numberReturned": len(anchors),
            "at": moment.astimezone(TZ).isoformat(),
            "frame": frame.value,
            "next_offset": paging.offset + paging.limit if page.has_more else None,
        }
        return Response(body, media_type=JSON, headers=_headers())

    @get("/anchors/{anchor_id:str}", **access(Policy.PUBLIC), summary="One AR anchor")
    async def get_anchor(
        self,
        request: Request[Any, Any, Any],
        service: Dep[AnchorService],
        chain: Dep[tuple[str, ...]],
        anchor_id: FromPath[str],
        at: AtParam = None,
        frame: FrameParam = Frame.ENU,
    ) -> Response[Any]:
        moment = _moment(at)
        geopose = _wants_geopose(request, frame)
        anchor = await service.get(anchor_id)
        if geopose:
            return Response(geopose_item(anchor), media_type=GEOPOSE_JSON, headers=_headers())
        return Response(anchor_json(anchor, chain, frame=frame, moment=moment), headers=_headers())

    @get("/pois/{poi_id:str}/anchors", **access(Policy.PUBLIC), summary="The AR anchors of one POI")
    async def poi_anchors(
        self,
        request: Request[Any, Any, Any],
        service: Dep[AnchorService],
        chain: Dep[tuple[str, ...]],
        poi_id: FromPath[str],
        at: AtParam = None,
        frame: FrameParam = Frame.ENU,
    ) -> Response[Any]:
        moment = _moment(at)
        geopose = _wants_geopose(request, frame)
        anchors = await service.for_poi(poi_id)
        if geopose:
            return Response([geopose_item(a) for a in anchors], media_type=GEOPOSE_JSON, headers=_headers())
        body = {
            "poi_id": poi_id,
            "anchors": [anchor_json(a, chain, frame=frame, moment=moment) for a in anchors],
            "numberReturned": len(anchors),
            "at": moment.astimezone(TZ).isoformat(),
            "frame": frame.value,
        }
        return Response(body, media_type=JSON, headers=_headers())

    @post("/anchors", **access(Policy.EDITOR), summary="Create an AR anchor")
    async def create_anchor(
        self,
        request: Request[Any, Any, Any],
        service: Dep[AnchorService],
        chain: Dep[tuple[str, ...]],
        data: JSONBody[AnchorCreate],
    ) -> Response[dict[str, Any]]:
        anchor = await service.create(data, request.user)
        return Response(
            anchor_json(anchor, chain, moment=now()),
            status_code=201,
            headers={"Location": f"/v1/anchors/{anchor.id}"},
        )

    @put("/anchors/{anchor_id:str}", **access(Policy.EDITOR), summary="Replace an AR anchor")
    async def replace_anchor(
        self,
        request: Request[Any, Any, Any],
        service: Dep[AnchorService],
        chain: Dep[tuple[str, ...]],
        anchor_id: FromPath[str],
        data: JSONBody[AnchorWrite],
    ) -> dict[str, Any]:
        return anchor_json(await service.replace(anchor_id, data, request.user), chain, moment=now())

    @patch("/anchors/{anchor_id:str}", **access(Policy.EDITOR), summary="Change some fields of an AR anchor")
    async def patch_anchor(
        self,
        request: Request[Any, Any, Any],
        service: Dep[AnchorService],
        chain: Dep[tuple[str, ...]],
        anchor_id: FromPath[str],
        data: JSONBody[AnchorPatch],
    ) -> dict[str, Any]:
        return anchor_json(await service.patch(anchor_id, data, request.user), chain, moment=now())

    @delete(
        "/anchors/{anchor_id:str}",
        **access(Policy.EDITOR),
        summary="Soft-delete an AR anchor (clients sync the tombstone)",
    )
    async def delete_anchor(
        self, request: Request[Any, Any, Any], service: Dep[AnchorService], anchor_id: FromPath[str]
    ) -> None:
        await service.delete(anchor_id, request.user)
