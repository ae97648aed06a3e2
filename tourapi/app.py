"""``create_app(settings)``: the only place the Litestar application is assembled.

Importing this module reads no settings and opens no connections.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from advanced_alchemy.extensions.litestar import AsyncSessionConfig, SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from litestar import Litestar
from litestar.config.compression import CompressionConfig
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

import tourapi
from tourapi.db import models  # noqa: F401  (registers every table)
from tourapi.db.base import Base
from tourapi.domain.anchors.controllers import AnchorController
from tourapi.domain.auth.controllers import AuthController
from tourapi.domain.checkins.controllers import CheckinController
from tourapi.domain.checkins.counters import register_checkin_jobs
from tourapi.domain.checkpoints.controllers import (
    CheckpointController,
    PosterLandingController,
    VenueCheckpointController,
)
from tourapi.domain.geofences.controllers import GeofenceController
from tourapi.domain.health.controllers import healthz, readyz
from tourapi.domain.itineraries.controllers import ItineraryController
from tourapi.domain.live.controllers import LiveController
from tourapi.domain.media.controllers import MediaController, MediaUploadController
from tourapi.domain.ogc.controllers import OgcController
from tourapi.domain.ops.controllers import OpsController
from tourapi.domain.pois.controllers import PoiController
from tourapi.domain.routes.controllers import RouteController, RouteManageController
from tourapi.domain.sessions.controllers import CrowdController, PrivacyController, SessionController
from tourapi.domain.sync.controllers import SyncController
from tourapi.errors import EXCEPTION_HANDLERS
from tourapi.logs import configure_logging
from tourapi.observability.plugin import ObservabilityPlugin
from tourapi.runtime import Runtime
from tourapi.security.tokens import OPENAPI_PATH
from tourapi.settings import Settings
from tourapi.web.cors import keep_vary_accept_encoding
from tourapi.web.deps import resolve_dependencies_in_order
from tourapi.web.etag import ETagMiddleware
from tourapi.web.openapi import document_problems

ROUTE_HANDLERS: list[Any] = [
    healthz,
    readyz,
    AuthController,
    PoiController,
    AnchorController,
    RouteController,
    RouteManageController,
    SyncController,
    MediaController,
    MediaUploadController,
    GeofenceController,
    OgcController,
    SessionController,
    PrivacyController,
    CrowdController,
    VenueCheckpointController,
    CheckpointController,
    CheckinController,
    PosterLandingController,
    LiveController,
    OpsController,
    ItineraryController,
]
# Streams must not be buffered or compressed; route bundles come pre-compressed from their handler.
UNCOMPRESSED_PATHS = ["/v1/live/stream", r"^/v1/routes/[^/]+/bundle$"]


def create_app(settings: Settings, runtime: Runtime | None = None) -> Litestar:
    configure_logging(settings)
    runtime = runtime or Runtime.create(settings)
    register_checkin_jobs(runtime)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    db_config = SQLAlchemyAsyncConfig(
        engine_instance=runtime.engine,
        session_dependency_key="db_session",
        session_config=AsyncSessionConfig(expire_on_commit=False),
        create_all=False,
        metadata=Base.metadata,
        set_default_exception_handler=False,
    )
    app = Litestar(
        route_handlers=ROUTE_HANDLERS,
        dependencies={"runtime": Provide(lambda: runtime, use_cache=True, sync_to_thread=False)},
        plugins=[SQLAlchemyPlugin(config=db_config), ObservabilityPlugin()],
        on_app_init=[runtime.jwt.on_app_init],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        state=State({"runtime": runtime}),  # for ASGI-level code that has no dependency injection
        middleware=[DefineMiddleware(ETagMiddleware)],
        before_send=[keep_vary_accept_encoding] if settings.cors_origins else [],
        compression_config=CompressionConfig(
            backend="gzip", minimum_size=1024, gzip_compress_level=6, exclude=UNCOMPRESSED_PATHS
        ),
        cors_config=CORSConfig(
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-None-Match",
                "Idempotency-Key",
                "Last-Event-ID",
            ],
            expose_headers=["ETag", "Retry-After", "X-Request-ID", "Location"],
        )
        if settings.cors_origins
        else None,
        openapi_config=OpenAPIConfig(
            title="tourapi",
            version=tourapi.__version__,
            description="Backend for cultural-tourism night-tour apps. See docs/api.md.",
            path=OPENAPI_PATH,
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
        ),
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )
    document_problems(app)
    resolve_dependencies_in_order(app)
    return app
