"""Response helpers shared by the catalogue endpoints."""

from __future__ import annotations

from typing import Any

from litestar import Request

from tourapi.domain.common.params import Paging

GEOJSON = "application/geo+json"


def public_cache(max_age_s: int) -> dict[str, str]:
    """Public catalogue data: shared caches may keep it briefly; ETag revalidation does the rest."""
    return {"Cache-Control": f"public, max-age={max_age_s}, stale-while-revalidate={max_age_s}"}


PRIVATE_NO_STORE = {"Cache-Control": "private, no-store"}
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


def page_links(request: Request[Any, Any, Any], paging: Paging, has_more: bool) -> list[dict[str, str]]:
    links = [{"rel": "self", "type": "application/geo+json", "href": str(request.url)}]
    if has_more:
        params = request.query_params.copy()
        params["offset"] = str(paging.offset + paging.limit)
        params["limit"] = str(paging.limit)
        nxt = request.url.with_replacements(query=params)
        links.append({"rel": "next", "type": "application/geo+json", "href": str(nxt)})
    return links


def feature_collection(
    request: Request[Any, Any, Any], features: list[dict[str, Any]], paging: Paging, has_more: bool
) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": features,
        "numberReturned": len(features),
        "links": page_links(request, paging, has_more),
    }
