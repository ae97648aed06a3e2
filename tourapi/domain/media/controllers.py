"""/media/{sha256}: immutable content-addressed files; /v1/media: operators upload files."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, HeaderParameter, QueryParameter

from tourapi.domain.common.responses import IMMUTABLE, PRIVATE_NO_STORE
from tourapi.domain.media.services import SHA256_RE, MediaService
from tourapi.runtime import Runtime
from tourapi.security.policies import Policy, access
from tourapi.web.deps import Dep
from tourapi.web.etag import matches

IfNoneMatch = Annotated[str | None, HeaderParameter(name="If-None-Match", required=False)]


class MediaController(Controller):
    path = "/media"
    tags: ClassVar[list[str]] = ["Media"]

    @get(
        "/{sha256:str}",
        **access(Policy.PUBLIC),
        media_type="*/*",  # each file is served with its own stored content type
        summary="A stored file, by its SHA-256 (immutable)",
        own_etag=True,  # opt: the ETag middleware steps aside
    )
    async def get_media(
        self, runtime: Dep[Runtime], sha256: FromPath[str], if_none_match: IfNoneMatch = None
    ) -> Response[bytes]:
        etag = f'"{sha256}"'
        if SHA256_RE.match(sha256) and matches(if_none_match, etag):
            # Content-addressed: whoever holds this tag holds these exact bytes.
            return Response(b"", status_code=304, headers={"ETag": etag, **IMMUTABLE})
        blob = await MediaService(runtime).fetch(sha256)
        return Response(blob.data, media_type=blob.content_type, headers={"ETag": etag, **IMMUTABLE})


class MediaUploadController(Controller):
    path = "/v1/media"
    tags: ClassVar[list[str]] = ["Media"]

    @post(
        "/",
        **access(Policy.OPERATOR),
        summary="Upload a file (the raw body, with its Content-Type); it is stored under its SHA-256",
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        runtime: Dep[Runtime],
        filename: Annotated[
            str | None, QueryParameter(max_length=255, description="original file name")
        ] = None,
    ) -> Response[dict[str, Any]]:
        data = await request.body()
        ref, created = await MediaService(runtime).upload(
            data, request.headers.get("content-type", ""), filename
        )
        return Response(
            ref, status_code=201 if created else 200, headers={"Location": ref["url"], **PRIVATE_NO_STORE}
        )
