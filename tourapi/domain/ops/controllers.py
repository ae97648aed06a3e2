"""/ops: the operators' console page, its assets and its public config."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from litestar import Controller, Response, get
from litestar.params import FromPath, HeaderParameter

from tourapi.domain.ops import services
from tourapi.runtime import Runtime
from tourapi.security.policies import Policy, access
from tourapi.settings import Settings
from tourapi.web.deps import Dep
from tourapi.web.etag import matches

IfNoneMatch = Annotated[str | None, HeaderParameter(name="If-None-Match", required=False)]


def _file_response(
    file: services.StaticFile, settings: Settings, if_none_match: str | None, cache_control: str
) -> Response[bytes]:
    headers = {**services.security_headers(settings), "Cache-Control": cache_control, "ETag": file.etag}
    if matches(if_none_match, file.etag):
        return Response(b"", status_code=304, headers=headers)
    return Response(file.body, media_type=file.content_type, headers=headers)


class OpsController(Controller):
    """Static files are public: every number on the page comes from the authenticated live API."""

    path = "/ops"
    tags: ClassVar[list[str]] = ["Operators' console"]
    include_in_schema = False

    @get("/", **access(Policy.PUBLIC), summary="The operators' console (HTML)")
    async def page(self, runtime: Dep[Runtime], if_none_match: IfNoneMatch = None) -> Response[bytes]:
        return _file_response(services.page(), runtime.settings, if_none_match, "no-cache")

    @get("/assets/{name:str}", **access(Policy.PUBLIC), summary="A console script, style sheet or image")
    async def asset(
        self, runtime: Dep[Runtime], name: FromPath[str], if_none_match: IfNoneMatch = None
    ) -> Response[bytes]:
        # Revalidated on every load (cheap 304s on a LAN), so an upgrade reaches every screen at once.
        return _file_response(services.asset(name), runtime.settings, if_none_match, "no-cache")

    @get("/config.json", **access(Policy.PUBLIC), summary="Console settings: optional basemap tile URL")
    async def config(self, runtime: Dep[Runtime]) -> Response[dict[str, Any]]:
        return Response(
            services.console_config(runtime.settings),
            headers={**services.security_headers(runtime.settings), "Cache-Control": "no-cache"},
        )
