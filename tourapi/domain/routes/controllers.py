"""/v1/routes (public catalogue and operator writes) and /v1/manage/routes (operators, drafts too)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from litestar import Controller, Response, delete, get, patch, post, put
from litestar.di import Provide
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.domain.common.params import CrsParam, Paging, provide_lang_chain, provide_paging
from tourapi.domain.common.responses import GEOJSON, PRIVATE_NO_STORE, public_cache
from tourapi.domain.routes import bundle
from tourapi.domain.routes.schemas import RouteCreate, RoutePatch, RouteWrite
from tourapi.domain.routes.services import RouteService, parse_night
from tourapi.domain.routes.views import route_feature, route_list_item
from tourapi.geo.crs import Crs
from tourapi.runtime import Runtime
from tourapi.security.policies import Policy, access
from tourapi.web.deps import Dep

NightParam = Annotated[
    str | None,
    QueryParameter(
        name="date", description="YYYY-MM-DD: the night that starts that evening (default tonight)"
    ),
]
ListNightParam = Annotated[
    str | None,
    QueryParameter(
        name="date", description="YYYY-MM-DD: only routes that run that night, with start windows"
    ),
]
StartParam = Annotated[
    str | None,
    QueryParameter(description="HH:MM local; before 12:00 is after midnight (default: the first window)"),
]
PaceParam = Annotated[
    Literal["slow", "normal", "fast"],
    QueryParameter(description="walking pace: slow 3.0, normal 4.5, fast 5.5 km/h"),
]
IfNoneMatch = Annotated[str | None, HeaderParameter(name="If-None-Match", required=False)]


def provide_route_service(runtime: Dep[Runtime], db_session: Dep[AsyncSession]) -> RouteService:
    return RouteService(runtime, db_session)


async def _feature(
    service: RouteService, route_id: str, chain: tuple[str, ...], crs: Crs, drafts: bool
) -> dict:
    route = await service.get(route_id, drafts=drafts)
    return route_feature(route, await service.pois_for([route]), chain, crs)


async def _listing(
    service: RouteService, night: str | None, chain: tuple[str, ...], paging: Paging, drafts: bool
) -> dict[str, Any]:
    day = parse_night(night) if night is not None else None
    rows = await service.listing(day, drafts=drafts)
    window = rows[paging.offset : paging.offset + paging.limit]
    return {
        "night": day.isoformat() if day else None,
        "routes": [route_list_item(route, chain, windows) for route, windows in window],
        "numberReturned": len(window),
        "has_more": len(rows) > paging.offset + paging.limit,
    }


class RouteController(Controller):
    path = "/v1/routes"
    tags: ClassVar[list[str]] = ["Routes"]
    dependencies: ClassVar[dict[str, Provide]] = {
        "service": Provide(provide_route_service, sync_to_thread=False),
        "chain": Provide(provide_lang_chain, sync_to_thread=False),
    }

    @get(
        "/",
        **access(Policy.PUBLIC),
        dependencies={"paging": Provide(provide_paging, sync_to_thread=False)},
        summary="Published night routes; with date, those that run that night and their start windows",
    )
    async def list_routes(
        self,
        service: Dep[RouteService],
        chain: Dep[tuple[str, ...]],
        paging: Dep[Paging],
        night: ListNightParam = None,
    ) -> Response[dict[str, Any]]:
        return Response(await _listing(service, night, chain, paging, False), headers=public_cache(60))

    @get(
        "/{route_id:str}",
        **access(Policy.PUBLIC),
        media_type=GEOJSON,
        summary="One route as a GeoJSON Feature",
    )
    async def get_route(
        self,
        service: Dep[RouteService],
        chain: Dep[tuple[str, ...]],
        route_id: FromPath[str],
        crs: CrsParam = Crs.WGS84,
    ) -> Response[dict[str, Any]]:
        return Response(await _feature(service, route_id, chain, crs, False), headers=public_cache(60))

    @get("/{route_id:str}/schedule", **access(Policy.PUBLIC), summary="The timed itinerary for one night")
    async def get_schedule(
        self,
        service: Dep[RouteService],
        chain: Dep[tuple[str, ...]],
        route_id: FromPath[str],
        night: NightParam = None,
        start: StartParam = None,
        pace: PaceParam = "normal",
    ) -> Response[dict[str, Any]]:
        body = await service.schedule(route_id, parse_night(night), start, pace, chain)
        return Response(body, headers=public_cache(60))

    @get(
        "/{route_id:str}/bundle",
        **access(Policy.PUBLIC),
        summary="Offline bundle manifest (strong ETag = version; send If-None-Match)",
        middleware=[bundle.CachedBundleMiddleware],
        own_etag=True,  # opt: the ETag middleware steps aside
    )
    async def get_bundle(
        self,
        runtime: Dep[Runtime],
        route_id: FromPath[str],
        if_none_match: IfNoneMatch = None,
        accept_encoding: Annotated[
            str | None, HeaderParameter(name="Accept-Encoding", required=False)
        ] = None,
    ) -> Response[dict[str, Any]]:  # the JSON manifest, sent as its prebuilt canonical bytes
        built = await bundle.manifest(runtime, route_id)
        status, raw, body = bundle.reply(built, if_none_match, accept_encoding)
        headers = {k.decode(): v.decode() for k, v in raw if k not in (b"content-type", b"content-length")}
        return Response(
            body, status_code=status, headers=headers, media_type="application/json" if body else None
        )

    @post("/", **access(Policy.OPERATOR), media_type=GEOJSON, summary="Create a route")
    async def create_route(
        self, service: Dep[RouteService], chain: Dep[tuple[str, ...]], data: JSONBody[RouteCreate]
    ) -> Response[dict[str, Any]]:
        route = await service.create(data)
        feature = route_feature(route, await service.pois_for([route]), chain, Crs.WGS84)
        return Response(
            feature, status_code=201, headers={"Location": f"/v1/routes/{route.id}", **PRIVATE_NO_STORE}
        )

    @put("/{route_id:str}", **access(Policy.OPERATOR), media_type=GEOJSON, summary="Replace a route")
    async def replace_route(
        self,
        service: Dep[RouteService],
        chain: Dep[tuple[str, ...]],
        route_id: FromPath[str],
        data: JSONBody[RouteWrite],
    ) -> Response[dict[str, Any]]:
        route = await service.replace(route_id, data)
        return Response(
            route_feature(route, await service.pois_for([route]), chain, Crs.WGS84), headers=PRIVATE_NO_STORE
        )

    @patch(
        "/{route_id:str}",
        **access(Policy.OPERATOR),
        media_type=GEOJSON,
        summary="Change some fields of a route",
    )
    async def patch_route(
        self,
        service: Dep[RouteService],
        chain: Dep[tuple[str, ...]],
        route_id: FromPath[str],
        data: JSONBody[RoutePatch],
    ) -> Response[dict[str, Any]]:
        route = await service.patch(route_id, data)
        return Response(
            route_feature(route, await service.pois_for([route]), chain, Crs.WGS84), headers=PRIVATE_NO_STORE
        )

    @delete(
        "/{route_id:str}",
        **access(Policy.OPERATOR),
        summary="Soft-delete a route (clients sync the tombstone)",
    )
    async def delete_route(self, service: Dep[RouteService], route_id: FromPath[str]) -> None:
        await service.delete(route_id)


class RouteManageController(Controller):
    """Operators see drafts too; responses are private."""

    path = "/v1/manage/routes"
    tags: ClassVar[list[str]] = ["Routes"]
    dependencies: ClassVar[dict[str, Provide]] = {
        "service": Provide(provide_route_service, sync_to_thread=False),
        "chain": Provide(provide_lang_chain, sync_to_thread=False),
    }

    @get(
        "/",
        **access(Policy.OPERATOR),
        dependencies={"paging": Provide(provide_paging, sync_to_thread=False)},
        summary="Every route, drafts included",
    )
    async def list_all_routes(
        self,
        service: Dep[RouteService],
        chain: Dep[tuple[str, ...]],
        paging: Dep[Paging],
        night: ListNightParam = None,
    ) -> Response[dict[str, Any]]:
        return Response(await _listing(service, night, chain, paging, True), headers=PRIVATE_NO_STORE)

    @get(
        "/{route_id:str}", **access(Policy.OPERATOR), media_type=GEOJSON, summary="One route, drafts included"
    )
    async def get_any_route(
        self,
        service: Dep[RouteService],
        chain: Dep[tuple[str, ...]],
        route_id: FromPath[str],
        crs: CrsParam = Crs.WGS84,
    ) -> Response[dict[str, Any]]:
        return Response(await _feature(service, route_id, chain, crs, True), headers=PRIVATE_NO_STORE)

    @get("/{route_id:str}/schedule", **access(Policy.OPERATOR), summary="Preview the itinerary of any route")
    async def preview_schedule(
        self,
        service: Dep[RouteService],
        chain: Dep[tuple[str, ...]],
        route_id: FromPath[str],
        night: NightParam = None,
        start: StartParam = None,
        pace: PaceParam = "normal",
    ) -> Response[dict[str, Any]]:
        body = await service.schedule(route_id, parse_night(night), start, pace, chain, drafts=True)
        return Response(body, headers=PRIVATE_NO_STORE)
