"""POST /v1/checkins: a visitor checks in by scanning a poster (or typing its manual code)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from litestar import Controller, Request, Response, post
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.domain.checkins.schemas import CheckinOut, CheckinRequest
from tourapi.domain.checkins.services import CheckinService
from tourapi.domain.common.params import provide_lang_chain
from tourapi.domain.common.responses import PRIVATE_NO_STORE
from tourapi.runtime import Runtime
from tourapi.security.policies import Policy, access
from tourapi.security.principal import Principal
from tourapi.web.deps import Dep


def provide_checkin_service(runtime: Dep[Runtime], db_session: Dep[AsyncSession]) -> CheckinService:
    return CheckinService(runtime, db_session)


class CheckinController(Controller):
    path = "/v1/checkins"
    tags = ("Check-ins",)
    dependencies: ClassVar[dict[str, Provide]] = {
        "service": Provide(provide_checkin_service, sync_to_thread=False),
        "chain": Provide(provide_lang_chain, sync_to_thread=False),
    }

    @post(
        "/",
        **access(Policy.VISITOR),
        summary="Check in at a checkpoint: 201 with the new record, 200 with the existing one on a repeat",
        responses={200: ResponseSpec(CheckinOut, description="a repeat or retry: the existing record")},
    )
    async def check_in(
        self,
        request: Request[Principal, Any, Any],
        service: Dep[CheckinService],
        chain: Dep[tuple[str, ...]],
        data: JSONBody[CheckinRequest],
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(
                name="Idempotency-Key", required=False, description="retries with it get the same record"
            ),
        ] = None,
    ) -> Response[CheckinOut]:
        client_ip = request.client.host if request.client else None
        record, created = await service.check_in(request.user, data, idempotency_key, client_ip, chain)
        return Response(record, status_code=201 if created else 200, headers=PRIVATE_NO_STORE)
