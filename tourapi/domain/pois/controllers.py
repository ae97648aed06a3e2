"""/v1/pois: thin handlers; the work is in PoiService."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.domain.common.params import (
    CrsParam,
    Paging,
    parse_moment,
    provide_bbox,
    provide_lang_chain,
    provide_near,
    provide_paging,
)
from tourapi.domain.common.responses import GEOJSON, feature_collection, public_cache
from tourapi.domain.pois.schemas import CATEGORIES, PoiCreate, PoiPatch, PoiWrite
from tourapi.domain.pois.services import PoiQuery, PoiService, now, poi_feature
from tourapi.errors import Unprocessable
from tourapi.geo.backend import Near
from tourapi.geo.crs import Crs
from tourapi.runtime import Runtime
from tourapi.security.policies import Policy, access
from tourapi.web.deps import Dep


def provide_poi_service(runtime: Dep[Runtime], db_session: Dep[AsyncSession]) -> PoiService:
    return PoiService(runtime, db_session)


class PoiController(Controller):
    path = "/v1/pois"
    tags: ClassVar[list[str]] = ["POIs"]
    dependencies: ClassVar[dict[str, Provide]] = {
        "service": Provide(provide_poi_service, sync_to_thread=False),
        "chain": Provide(provide_lang_chain, sync_to_thread=False),
    }

    @get(
        "/",
        **access(Policy.PUBLIC),
        media_type=GEOJSON,
        dependencies={
            "bbox_filter": Provide(provide_bbox, sync_to_thread=False),
            "near": Provide(provide_near, sync_to_thread=False),
            "paging": Provide(provide_paging, sync_to_thread=False),
        },
        summary="List POIs as a GeoJSON FeatureCollection",
    )
    async def list_pois(
        self,
        request: Request[Any, Any, Any],
        service: Dep[PoiService],
        chain: Dep[tuple[str, ...]],
        bbox_filter: Dep[tuple[float, float, float, float] | None],
        near: Dep[Near | None],
        paging: Dep[Paging],
        crs: CrsParam = Crs.WGS84,
        category: Annotated[
            str | None, QueryParameter(description=f"one of: {', '.join(CATEGORIES)}")
        ] = None,
        open_at: Annotated[
            str | None, QueryParameter(description="ISO date-time; only POIs open then")
        ] = None,
        updated_since: Annotated[
            str | None, QueryParameter(description="ISO date-time; changed and deleted POIs since then")
        ] = None,
    ) -> Response[dict[str, Any]]:
        if category is not None and category not in CATEGORIES:
            raise Unprocessable(f"unknown category; one of: {', '.join(CATEGORIES)}", field="category")
        moment = parse_moment(open_at, "open_at") if open_at else now()
        since = parse_moment(updated_since, "updated_since") if updated_since else None
        query = PoiQuery(bbox_filter, near, category, moment if open_at else None, since)
        rows, distances, has_more = await service.search(query, paging)
        features = [poi_feature(p, chain, crs, moment, distance_m=d) for p, d in zip(rows, distances)]
        return Response(feature_collection(request, features, paging, has_more), headers=public_cache(60))

    @get("/{poi_id:str}", **access(Policy.PUBLIC), media_type=GEOJSON, summary="One POI as a GeoJSON Feature")
    async def get_poi(
        self,
        service: Dep[PoiService],
        chain: Dep[tuple[str, ...]],
        poi_id: FromPath[str],
        crs: CrsParam = Crs.WGS84,
        at: Annotated[
            str | None, QueryParameter(description="evaluate open_now at this ISO date-time")
        ] = None,
    ) -> Response[dict[str, Any]]:
        moment = parse_moment(at, "at") if at else now()
        poi = await service.get(poi_id)
        return Response(poi_feature(poi, chain, crs, moment), headers=public_cache(60))

    @post("/", **access(Policy.ADMIN), media_type=GEOJSON, summary="Create a POI")
    async def create_poi(
        self, service: Dep[PoiService], chain: Dep[tuple[str, ...]], data: JSONBody[PoiCreate]
    ) -> Response[dict[str, Any]]:
        poi = await service.create(data)
        return Response(
            poi_feature(poi, chain, data.crs, now()),
            status_code=201,
            headers={"Location": f"/v1/pois/{poi.id}"},
        )

    @put(
        "/{poi_id:str}",
        **access(Policy.VENUE_WRITE, venue_param="poi_id"),
        media_type=GEOJSON,
        summary="Replace a POI",
    )
    async def replace_poi(
        self,
        service: Dep[PoiService],
        chain: Dep[tuple[str, ...]],
        poi_id: FromPath[str],
        data: JSONBody[PoiWrite],
    ) -> dict[str, Any]:
        return poi_feature(await service.replace(poi_id, data), chain, data.crs, now())

    @patch(
        "/{poi_id:str}",
        **access(Policy.VENUE_WRITE, venue_param="poi_id"),
        media_type=GEOJSON,
        summary="Change some fields of a POI",
    )
    async def patch_poi(
        self,
        service: Dep[PoiService],
        chain: Dep[tuple[str, ...]],
        poi_id: FromPath[str],
        data: JSONBody[PoiPatch],
    ) -> dict[str, Any]:
        return poi_feature(await service.patch(poi_id, data), chain, data.crs, now())

    @delete("/{poi_id:str}", **access(Policy.ADMIN), summary="Soft-delete a POI (clients sync the tombstone)")
    async def delete_poi(self, service: Dep[PoiService], poi_id: FromPath[str]) -> None:
        await service.delete(poi_id)
