"""/v1/auth: password login for staff, operators and admins."""

from __future__ import annotations

from typing import Any, ClassVar

from litestar import Controller, Request, get, post
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.domain.auth.schemas import Me, TokenRequest, TokenResponse
from tourapi.domain.auth.services import login
from tourapi.runtime import Runtime
from tourapi.security.policies import Policy, access
from tourapi.security.principal import Principal
from tourapi.web.deps import Dep


class AuthController(Controller):
    path = "/v1/auth"
    tags: ClassVar[list[str]] = ["Auth"]

    @post(
        "/token", **access(Policy.PUBLIC), status_code=200, summary="Exchange username and password for a JWT"
    )
    async def token(
        self,
        request: Request[Any, Any, Any],
        runtime: Dep[Runtime],
        db_session: Dep[AsyncSession],
        data: JSONBody[TokenRequest],
    ) -> TokenResponse:
        client_ip = request.client.host if request.client else None
        return await login(runtime, db_session, data.username, data.password, client_ip)

    @get("/me", **access(Policy.VENUE_READ), summary="Who the bearer token belongs to")
    async def me(self, request: Request[Principal, Any, Any]) -> Me:
        p = request.user
        return Me(subject=p.subject, role=p.role.value, username=p.username, venues=sorted(p.venues))
