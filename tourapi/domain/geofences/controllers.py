"""/v1/geofences: containment and the phone's monitoring plan, served from memory."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from litestar import Controller, Response, get
from litestar.params import FromQuery, QueryParameter

from tourapi.domain.common.params import CrsParam, parse_moment, point_in
from tourapi.domain.common.responses import PRIVATE_NO_STORE
from tourapi.domain.geofences.services import containing, monitor_plan
from tourapi.domain.pois.services import now
from tourapi.geo.crs import Crs
from tourapi.runtime import Runtime
from tourapi.security.policies import Policy, access
from tourapi.web.deps import Dep


class GeofenceController(Controller):
    path = "/v1/geofences"
    tags: ClassVar[list[str]] = ["Geofences"]

    @get("/containing", **access(Policy.PUBLIC), summary="POIs whose geofence contains a point")
    async def containing(
        self,
        runtime: Dep[Runtime],
        lon: FromQuery[float],
        lat: FromQuery[float],
        crs: CrsParam = Crs.WGS84,
    ) -> Response[dict[str, Any]]:
        wlon, wlat = point_in(lon, lat, crs)
        index = runtime.fences.index
        return Response(
            {"poi_ids": containing(index, wlon, wlat), "index_version": index.version},
            headers=PRIVATE_NO_STORE,
        )

    @get("/monitor", **access(Policy.PUBLIC), summary="Circular regions a phone should monitor now")
    async def monitor(
        self,
        runtime: Dep[Runtime],
        lon: FromQuery[float],
        lat: FromQuery[float],
        platform: Annotated[Literal["ios", "android"], QueryParameter(description="the phone's OS")],
        crs: CrsParam = Crs.WGS84,
        at: Annotated[str | None, QueryParameter(description="ISO date-time (default now)")] = None,
    ) -> Response[dict[str, Any]]:
        wlon, wlat = point_in(lon, lat, crs)
        moment = parse_moment(at, "at") if at else now()
        plan = monitor_plan(runtime.fences.index, wlon, wlat, platform, moment, crs)
        return Response(plan, headers=PRIVATE_NO_STORE)
