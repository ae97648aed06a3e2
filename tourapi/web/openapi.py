"""Document the problem+json error responses on every operation of the OpenAPI document.

Litestar documents success responses from the handlers' types; errors come from one exception
table (tourapi/errors.py), so they are documented here once, for every operation.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Reference, Schema

PROBLEM = Schema(
    type=OpenAPIType.OBJECT,
    description="RFC 9457 problem details",
    required=["type", "title", "status", "detail"],
    properties={
        "type": Schema(type=OpenAPIType.STRING, description="urn:tourapi:problem:<slug>"),
        "title": Schema(type=OpenAPIType.STRING),
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING),
        "instance": Schema(type=OpenAPIType.STRING),
        "field": Schema(type=OpenAPIType.STRING, description="the offending input"),
        "errors": Schema(
            type=OpenAPIType.ARRAY,
            items=Schema(
                type=OpenAPIType.OBJECT,
                required=["field", "message"],
                properties={
                    "field": Schema(type=OpenAPIType.STRING),
                    "message": Schema(type=OpenAPIType.STRING),
                },
            ),
        ),
    },
)
ERRORS = {
    400: "Malformed request (e.g. the body is not JSON)",
    401: "Missing, invalid or expired bearer token",
    403: "The caller may not do this",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflicts with existing data",
    410: "Gone (e.g. a sync cursor too old: resync)",
    413: "Request body too large",
    422: "Invalid input; `field` names it",
    429: "Rate limited; retry after Retry-After seconds",
    500: "Unexpected error (logged with the request id)",
    503: "A backing service is briefly unavailable; retry after Retry-After seconds",
}


def document_problems(app: Litestar) -> None:
    openapi = app.openapi_schema  # built once and cached by Litestar; the served document is this object
    if openapi.components.schemas is None:
        openapi.components.schemas = {}
    openapi.components.schemas["Problem"] = PROBLEM
    content = {
        "application/problem+json": OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Problem"))
    }
    for path_item in (openapi.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(path_item, method, None)
            if operation is None:
                continue
            responses = operation.responses or {}
            if method == "get":  # JSON GETs carry an ETag (web/etag.py or the handler's own version)
                responses["304"] = OpenAPIResponse(description="Not Modified: If-None-Match matched the ETag")
            for code, description in ERRORS.items():
                responses[str(code)] = OpenAPIResponse(description=description, content=content)
            operation.responses = responses
