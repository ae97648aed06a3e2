"""GET /v1/sync: the catalogue's delta feed (POIs, routes and every other registered source)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from litestar import Controller, Response, get
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.domain.sync.services import DEFAULT_LIMIT, MAX_LIMIT, feed
from tourapi.security.policies import Policy, access
from tourapi.web.deps import Dep

# Catalogue data anyone may cache, but it must be revalidated (ETag) before each reuse.
REVALIDATE = {"Cache-Control": "public, no-cache"}


class SyncController(Controller):
    path = "/v1/sync"
    tags: ClassVar[list[str]] = ["Sync"]

    @get(
        "/",
        **access(Policy.PUBLIC),
        summary="Changes and tombstones since a cursor (POIs, routes, anchors), paged",
        description=(
            "Omit since for a first sync (every live entity). Then pass the returned cursor as since; "
            "repeat while has_more. 410 resync-required: the cursor is older than the kept tombstones."
        ),
    )
    async def sync_feed(
        self,
        db_session: Dep[AsyncSession],
        since: Annotated[
            str | None, QueryParameter(max_length=64, description="cursor from the previous answer")
        ] = None,
        limit: Annotated[
            int, QueryParameter(ge=1, le=MAX_LIMIT, description="changes per page")
        ] = DEFAULT_LIMIT,
    ) -> Response[dict[str, Any]]:
        return Response(await feed(db_session, since, limit), headers=REVALIDATE)
