"""/ogc: OGC API - Features Part 1 Core, so QGIS and GDAL (OAPIF driver) can load the POIs."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from litestar import Controller, Request, Response, get
from litestar.di import Provide
from litestar.params import FromPath, QueryParameter

from tourapi.domain.common.params import Paging, provide_bbox, provide_lang_chain, provide_paging
from tourapi.domain.common.responses import GEOJSON, page_links, public_cache
from tourapi.domain.ogc import services as ogc
from tourapi.domain.pois.controllers import provide_poi_service
from tourapi.domain.pois.services import PoiService
from tourapi.security.policies import Policy, access
from tourapi.web.deps import Dep


def _base(request: Request[Any, Any, Any]) -> str:
    return str(request.base_url).rstrip("/")


class OgcController(Controller):
    path = "/ogc"
    tags: ClassVar[list[str]] = ["OGC API - Features"]
    dependencies: ClassVar[dict[str, Provide]] = {
        "service": Provide(provide_poi_service, sync_to_thread=False),
        "chain": Provide(provide_lang_chain, sync_to_thread=False),
    }

    @get("/", **access(Policy.PUBLIC), summary="Landing page")
    async def landing(
        self,
        request: Request[Any, Any, Any],
        f: Annotated[str | None, QueryParameter(description="json")] = None,
    ) -> dict[str, Any]:
        return ogc.landing(_base(request))

    @get("/conformance", **access(Policy.PUBLIC), summary="Conformance classes")
    async def conformance(
        self, f: Annotated[str | None, QueryParameter(description="json")] = None
    ) -> dict[str, Any]:
        return {"conformsTo": ogc.CONFORMANCE}

    @get("/collections", **access(Policy.PUBLIC), summary="Feature collections")
    async def collections(
        self,
        request: Request[Any, Any, Any],
        service: Dep[PoiService],
        f: Annotated[str | None, QueryParameter(description="json")] = None,
    ) -> dict[str, Any]:
        base = _base(request)
        described = [await ogc.describe(service, base, c) for c in ogc.COLLECTIONS.values()]
        return {
            "links": [{"rel": "self", "type": "application/json", "href": f"{base}/ogc/collections"}],
            "collections": described,
        }

    @get("/collections/{collection_id:str}", **access(Policy.PUBLIC), summary="One collection")
    async def collection(
        self,
        request: Request[Any, Any, Any],
        service: Dep[PoiService],
        collection_id: FromPath[str],
        f: Annotated[str | None, QueryParameter(description="json")] = None,
    ) -> dict[str, Any]:
        return await ogc.describe(service, _base(request), ogc.collection(collection_id))

    @get(
        "/collections/{collection_id:str}/items",
        **access(Policy.PUBLIC),
        media_type=GEOJSON,
        dependencies={
            "bbox_filter": Provide(provide_bbox, sync_to_thread=False),
            "paging": Provide(provide_paging, sync_to_thread=False),
        },
        summary="Features of a collection",
    )
    async def items(
        self,
        request: Request[Any, Any, Any],
        service: Dep[PoiService],
        chain: Dep[tuple[str, ...]],
        collection_id: FromPath[str],
        bbox_filter: Dep[tuple[float, float, float, float] | None],
        paging: Dep[Paging],
        f: Annotated[str | None, QueryParameter(description="json")] = None,
    ) -> Response[dict[str, Any]]:
        item = ogc.collection(collection_id)
        body, has_more = await ogc.items(service, item, bbox_filter, paging, chain)
        body["links"] = page_links(request, paging, has_more) + [
            {
                "rel": "collection",
                "type": "application/json",
                "href": str(request.base_url).rstrip("/") + f"/ogc/collections/{item.id}",
            },
        ]
        return Response(body, headers=public_cache(60))

    @get(
        "/collections/{collection_id:str}/items/{feature_id:str}",
        **access(Policy.PUBLIC),
        media_type=GEOJSON,
        summary="One feature",
    )
    async def item(
        self,
        service: Dep[PoiService],
        chain: Dep[tuple[str, ...]],
        collection_id: FromPath[str],
        feature_id: FromPath[str],
        f: Annotated[str | None, QueryParameter(description="json")] = None,
    ) -> Response[dict[str, Any]]:
        return Response(
            await ogc.one(service, ogc.collection(collection_id), feature_id, chain), headers=public_cache(60)
        )
