"""OGC API - Features Part 1 (Core) over the POI catalogue: collections ``pois`` and ``geofences``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from tourapi.db.models import Poi
from tourapi.domain.common.params import Paging
from tourapi.domain.pois.services import GEOFENCE_COLUMNS, POI_COLUMNS, PoiQuery, PoiService, geometry_out
from tourapi.errors import NotFound
from tourapi.geo.backend import SpatialColumns
from tourapi.geo.crs import Crs
from tourapi.i18n import pick

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]


@dataclass(frozen=True, slots=True)
class Collection:
    id: str
    title: str
    description: str
    columns: SpatialColumns


COLLECTIONS = {
    "pois": Collection("pois", "Points of interest", "Night-tour venues of Suzhou as points", POI_COLUMNS),
    "geofences": Collection(
        "geofences", "Geofences", "The area of each venue, as used for enter/exit detection", GEOFENCE_COLUMNS
    ),
}


def collection(collection_id: str) -> Collection:
    try:
        return COLLECTIONS[collection_id]
    except KeyError:
        raise NotFound(
            f"no collection {collection_id!r}; try: {', '.join(COLLECTIONS)}", field="collectionId"
        ) from None


def landing(base: str) -> dict[str, Any]:
    return {
        "title": "tourapi OGC API - Features",
        "description": "Suzhou night-tour POIs and geofences (WGS-84).",
        "links": [
            {"rel": "self", "type": "application/json", "title": "This document", "href": f"{base}/ogc"},
            {
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.1",
                "title": "The API definition",
                "href": f"{base}/schema/openapi.json",
            },
            {
                "rel": "service-doc",
                "type": "text/html",
                "title": "API documentation",
                "href": f"{base}/schema",
            },
            {
                "rel": "conformance",
                "type": "application/json",
                "title": "Conformance",
                "href": f"{base}/ogc/conformance",
            },
            {
                "rel": "data",
                "type": "application/json",
                "title": "Collections",
                "href": f"{base}/ogc/collections",
            },
        ],
    }


async def describe(service: PoiService, base: str, item: Collection) -> dict[str, Any]:
    extent = await service.session.execute(
        select(
            func.min(item.columns.min_lon),
            func.min(item.columns.min_lat),
            func.max(item.columns.max_lon),
            func.max(item.columns.max_lat),
        ).where(Poi.deleted_at.is_(None))
    )
    bounds = list(extent.one())
    spatial = {"bbox": [bounds] if None not in bounds else [[-180, -90, 180, 90]], "crs": CRS84}
    href = f"{base}/ogc/collections/{item.id}"
    return {
        "id": item.id,
        "title": item.title,
        "description": item.description,
        "itemType": "feature",
        "crs": [CRS84],
        "extent": {"spatial": spatial},
        "links": [
            {"rel": "self", "type": "application/json", "href": href},
            {"rel": "items", "type": "application/geo+json", "href": f"{href}/items"},
        ],
    }


def ogc_feature(poi: Poi, item: Collection, chain: tuple[str, ...]) -> dict[str, Any]:
    name, _ = pick(poi.name, chain)
    props: dict[str, Any] = {"name": name, "category": poi.category, "updated_at": poi.updated_at.isoformat()}
    if item.id == "pois":
        props.update(
            {
                "name_zh": poi.name.get("zh-Hans"),
                "name_en": poi.name.get("en"),
                "opening_hours": poi.opening_hours,
                "capacity": poi.capacity,
            }
        )
        geometry = geometry_out(poi.location, Crs.WGS84)
    else:
        geometry = geometry_out(poi.geofence, Crs.WGS84)
    return {"type": "Feature", "id": poi.id, "geometry": geometry, "properties": props}


async def items(
    service: PoiService,
    item: Collection,
    bbox: tuple[float, float, float, float] | None,
    paging: Paging,
    chain: tuple[str, ...],
) -> tuple[dict[str, Any], bool]:
    rows, _, has_more = await service.search(PoiQuery(bbox=bbox), paging, item.columns)
    body: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": [ogc_feature(p, item, chain) for p in rows],
        "timeStamp": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "numberReturned": len(rows),
    }
    if bbox is None:
        body["numberMatched"] = int(
            await service.session.scalar(
                select(func.count()).select_from(Poi).where(Poi.deleted_at.is_(None))
            )
            or 0
        )
    return body, has_more


async def one(
    service: PoiService, item: Collection, feature_id: str, chain: tuple[str, ...]
) -> dict[str, Any]:
    return ogc_feature(await service.get(feature_id), item, chain)
