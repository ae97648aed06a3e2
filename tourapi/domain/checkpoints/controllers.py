"""Checkpoints, their QR codes and posters (staff), and the public page behind a poster URL."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.domain.checkpoints.schemas import CheckpointCreate, CheckpointOut, CheckpointPatch
from tourapi.domain.checkpoints.services import CheckpointService
from tourapi.domain.common.params import RowId, provide_lang_chain
from tourapi.domain.common.responses import PRIVATE_NO_STORE
from tourapi.qr import landing
from tourapi.qr.posters import LAYOUTS
from tourapi.qr.render import MAX_PNG_SIZE, MIN_PNG_SIZE
from tourapi.runtime import Runtime
from tourapi.security.policies import Policy, access
from tourapi.security.principal import Principal
from tourapi.web.deps import Dep

PDF = "application/pdf"
# The landing page: no caching (a revoked poster must say so at once), nothing loaded from elsewhere.
LANDING_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
    "X-Robots-Tag": "noindex",
    "Referrer-Policy": "no-referrer",
}


def provide_checkpoint_service(runtime: Dep[Runtime], db_session: Dep[AsyncSession]) -> CheckpointService:
    return CheckpointService(runtime, db_session)


_DEPENDENCIES = {
    "service": Provide(provide_checkpoint_service, sync_to_thread=False),
    "chain": Provide(provide_lang_chain, sync_to_thread=False),
}


class VenueCheckpointController(Controller):
    path = "/v1/pois"
    tags = ("Check-ins",)
    dependencies: ClassVar[dict[str, Provide]] = _DEPENDENCIES

    @get(
        "/{poi_id:str}/checkpoints",
        **access(Policy.VENUE_READ, venue_param="poi_id"),
        summary="A venue's checkpoints with their poster URLs and manual codes (staff: own venues)",
    )
    async def list_checkpoints(
        self,
        service: Dep[CheckpointService],
        chain: Dep[tuple[str, ...]],
        poi_id: FromPath[str],
        include_inactive: Annotated[bool, QueryParameter(description="also deleted checkpoints")] = False,
    ) -> Response[list[CheckpointOut]]:
        rows = await service.list_for_poi(poi_id, include_inactive)
        return Response([service.out(c, chain) for c in rows], headers=PRIVATE_NO_STORE)

    @post(
        "/{poi_id:str}/checkpoints",
        **access(Policy.VENUE_WRITE, venue_param="poi_id"),
        summary="Create a checkpoint (a poster spot: gate, stage, pier)",
    )
    async def create_checkpoint(
        self,
        service: Dep[CheckpointService],
        chain: Dep[tuple[str, ...]],
        poi_id: FromPath[str],
        data: JSONBody[CheckpointCreate],
    ) -> Response[CheckpointOut]:
        checkpoint = await service.create(poi_id, data)
        return Response(
            service.out(checkpoint, chain),
            status_code=201,
            headers={**PRIVATE_NO_STORE, "Location": f"/v1/checkpoints/{checkpoint.id}"},
        )

    @get(
        "/{poi_id:str}/posters.pdf",
        **access(Policy.VENUE_READ, venue_param="poi_id"),
        media_type=PDF,
        summary="A4 print sheet: one poster per checkpoint (layout 1), or 2 or 4 per page",
    )
    async def posters(
        self,
        service: Dep[CheckpointService],
        poi_id: FromPath[str],
        layout: Annotated[
            int, QueryParameter(description=f"posters per page: one of {sorted(LAYOUTS)}", ge=1, le=4)
        ] = 1,
        checkpoint: Annotated[
            int | None, QueryParameter(description="only this checkpoint (e.g. to reprint after a revoke)")
        ] = None,
    ) -> Response[bytes]:
        pdf = await service.posters(poi_id, layout, checkpoint)
        return Response(
            pdf,
            media_type=PDF,
            headers={
                **PRIVATE_NO_STORE,
                "Content-Disposition": f'inline; filename="posters-{poi_id}.pdf"',
            },
        )


class CheckpointController(Controller):
    path = "/v1/checkpoints"
    tags = ("Check-ins",)
    dependencies: ClassVar[dict[str, Provide]] = _DEPENDENCIES

    @get(
        "/{checkpoint_id:int}",
        **access(Policy.VENUE_READ),
        summary="One checkpoint (staff: own venues)",
    )
    async def get_checkpoint(
        self,
        request: Request[Principal, Any, Any],
        service: Dep[CheckpointService],
        chain: Dep[tuple[str, ...]],
        checkpoint_id: RowId,
    ) -> Response[CheckpointOut]:
        checkpoint = await service.get(request.user, checkpoint_id)
        return Response(service.out(checkpoint, chain), headers=PRIVATE_NO_STORE)

    @patch(
        "/{checkpoint_id:int}",
        **access(Policy.VENUE_WRITE),
        summary="Relabel a checkpoint or change its proximity rule (printed posters stay valid)",
    )
    async def patch_checkpoint(
        self,
        request: Request[Principal, Any, Any],
        service: Dep[CheckpointService],
        chain: Dep[tuple[str, ...]],
        checkpoint_id: RowId,
        data: JSONBody[CheckpointPatch],
    ) -> Response[CheckpointOut]:
        checkpoint = await service.patch(request.user, checkpoint_id, data)
        return Response(service.out(checkpoint, chain), headers=PRIVATE_NO_STORE)

    @post(
        "/{checkpoint_id:int}/revoke",
        **access(Policy.VENUE_WRITE),
        status_code=200,
        summary="Revoke the printed posters (lost or misused): new version and manual code; print again",
    )
    async def revoke_checkpoint(
        self,
        request: Request[Principal, Any, Any],
        service: Dep[CheckpointService],
        chain: Dep[tuple[str, ...]],
        checkpoint_id: RowId,
    ) -> Response[CheckpointOut]:
        checkpoint = await service.revoke(request.user, checkpoint_id)
        return Response(service.out(checkpoint, chain), headers=PRIVATE_NO_STORE)

    @delete(
        "/{checkpoint_id:int}",
        **access(Policy.VENUE_WRITE),
        summary="Delete a checkpoint: its posters are refused from now on",
    )
    async def delete_checkpoint(
        self, request: Request[Principal, Any, Any], service: Dep[CheckpointService], checkpoint_id: RowId
    ) -> None:
        await service.delete(request.user, checkpoint_id)

    @get(
        "/{checkpoint_id:int}/qr.png",
        **access(Policy.VENUE_READ),
        media_type="image/png",
        summary="The checkpoint's QR code as a PNG (size x size pixels)",
    )
    async def qr_png(
        self,
        request: Request[Principal, Any, Any],
        service: Dep[CheckpointService],
        checkpoint_id: RowId,
        size: Annotated[
            int, QueryParameter(description="pixels per side", ge=MIN_PNG_SIZE, le=MAX_PNG_SIZE)
        ] = 512,
    ) -> Response[bytes]:
        image = await service.qr_png(request.user, checkpoint_id, size)
        return Response(image, media_type="image/png", headers=PRIVATE_NO_STORE)

    @get(
        "/{checkpoint_id:int}/qr.svg",
        **access(Policy.VENUE_READ),
        media_type="image/svg+xml",
        summary="The checkpoint's QR code as vector SVG",
    )
    async def qr_svg(
        self, request: Request[Principal, Any, Any], service: Dep[CheckpointService], checkpoint_id: RowId
    ) -> Response[bytes]:
        image = await service.qr_svg(request.user, checkpoint_id)
        return Response(image, media_type="image/svg+xml", headers=PRIVATE_NO_STORE)


class PosterLandingController(Controller):
    path = "/c"
    tags = ("Check-ins",)
    dependencies: ClassVar[dict[str, Provide]] = {
        "service": Provide(provide_checkpoint_service, sync_to_thread=False)
    }

    @get(
        "/{token:str}",
        **access(Policy.PUBLIC),
        media_type="text/html",
        summary="The page a phone camera opens from a poster when the tour app is not installed",
    )
    async def poster_landing(self, service: Dep[CheckpointService], token: FromPath[str]) -> Response[str]:
        page = await service.landing(token)
        return Response(landing.render(page), media_type="text/html; charset=utf-8", headers=LANDING_HEADERS)
