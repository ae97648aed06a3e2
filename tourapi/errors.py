"""Errors: one table maps exception types to RFC 9457 problem+json responses.

Every 4xx/5xx leaves the API as ``application/problem+json`` with ``type``,
``title``, ``status``, ``detail`` and, when input is at fault, ``field`` plus an
``errors`` list of ``{field, message}``. Unexpected exceptions become a 500
problem without internals; the traceback goes to the log with the request id.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg.exceptions
import redis.exceptions
import sqlalchemy.exc
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    SerializationException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import ClientException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from tourapi.geo.geometry import GeometryError
from tourapi.timeutil import InvalidSchedule

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("tourapi.errors")


def problem_type(slug: str) -> str:
    return f"urn:tourapi:problem:{slug}"


class ApiError(Exception):
    """Base for errors raised on purpose by services; subclasses set status, slug and title."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        errors: list[dict[str, str]] | None = None,
        slug: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra
        if slug:
            self.slug = slug


class BadRequest(ApiError):
    pass


class NotFound(ApiError):
    status, slug, title = 404, "not-found", "Not found"


class Forbidden(ApiError):
    status, slug, title = 403, "forbidden", "Forbidden"


class Conflict(ApiError):
    status, slug, title = 409, "conflict", "Conflict"


class Unprocessable(ApiError):
    status, slug, title = 422, "invalid-input", "Invalid input"


class TooManyRequests(ApiError):
    status, slug, title = 429, "rate-limited", "Too many requests"


class ServiceUnavailable(ApiError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


def _problem(
    request: Request[Any, Any, Any] | None,
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    field: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"type": problem_type(slug), "title": title, "status": status, "detail": detail}
    if request is not None:
        body["instance"] = request.url.path
    if errors and field is None:
        field = errors[0].get("field")
    if field is not None:
        body["field"] = field
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return _problem(
        request,
        exc.status,
        exc.slug,
        exc.title,
        exc.detail,
        field=exc.field,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            source, key = item.get("source"), item.get("key")
            source = getattr(source, "value", source)  # Litestar passes a ParamType enum
            name = ".".join(str(p) for p in (source, key) if p) or "body"
            errors.append({"field": name, "message": str(item.get("message", "invalid value"))})
    malformed = "decode" in str(exc.detail).lower() or "malformed" in str(exc.detail).lower()
    if malformed and not errors:
        return _problem(
            request, 400, "malformed-body", "Malformed request body", str(exc.detail), field="body"
        )
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or str(exc.detail)
    return _problem(request, 422, "invalid-input", "Invalid input", detail, errors=errors or None)


def _geometry(request: Request[Any, Any, Any], exc: GeometryError) -> Response[Any]:
    return _problem(request, 422, "invalid-geometry", "Invalid geometry", exc.message, field=exc.field)


def _schedule(request: Request[Any, Any, Any], exc: InvalidSchedule) -> Response[Any]:
    field = getattr(exc, "field", None) or "opening_hours"
    return _problem(request, 422, "invalid-opening-hours", "Invalid opening_hours", str(exc), field=field)


def _redis_down(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.warning("redis unavailable: %s", type(exc).__name__)
    return _problem(
        request,
        503,
        "live-state-unavailable",
        "Live state unavailable",
        "the live-state store (Redis) is not reachable; retry shortly",
        headers={"Retry-After": "5"},
    )


def _database_down(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.warning("database unavailable: %s", type(exc).__name__)
    return _problem(
        request,
        503,
        "database-unavailable",
        "Database unavailable",
        "the database is not reachable; nothing was written; retry shortly",
        headers={"Retry-After": "5"},
    )


def _out_of_range(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Safety net: inputs are bounded by their schemas; a value the column cannot hold is still the caller's.
    return _problem(request, 422, "invalid-input", "Invalid input", "a value is out of range for this field")


def _integrity(request: Request[Any, Any, Any], exc: sqlalchemy.exc.IntegrityError) -> Response[Any]:
    return _problem(request, 409, "conflict", "Conflict", "the write conflicts with existing data")


_HTTP_SLUGS = {
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("body-too-large", "Request body too large"),
    429: ("rate-limited", "Too many requests"),
}


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= 500:
        return _internal(request, exc)
    if exc.status_code == 400 and isinstance(exc.__cause__, SerializationException):
        return _problem(
            request,
            400,
            "malformed-body",
            "Malformed request body",
            f"the body is not valid JSON: {exc.detail}",
            field="body",
        )
    slug, title = _HTTP_SLUGS.get(exc.status_code, ("bad-request", "Bad request"))
    detail = str(exc.detail)
    if isinstance(exc, NotAuthorizedException):
        detail = _auth_detail(detail)
    return _problem(request, exc.status_code, slug, title, detail, headers=dict(exc.headers or {}))


def _auth_detail(detail: str) -> str:
    if "No JWT token" in detail:
        return "this endpoint needs a bearer token (Authorization: Bearer <token>)"
    if detail in ("Invalid token", "Unauthorized", ""):
        return "the bearer token is invalid, expired, or signed with an unknown or retired key"
    return detail


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _problem(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal-error",
        "Internal error",
        "an unexpected error occurred; it has been logged",
    )


# Driver errors that mean "the database is going away or not there", raw or wrapped by SQLAlchemy.
DATABASE_OUTAGES = (
    ConnectionError,
    asyncpg.exceptions.PostgresConnectionError,  # class 08: connection lost or refused
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, cannot connect now
)


def _database_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # A driver error on a lost connection (e.g. the server shutting down mid-query) is an outage;
    # any other database error is a bug.
    cause: BaseException | None = exc
    for _ in range(6):
        if cause is None:
            break
        if isinstance(cause, DATABASE_OUTAGES) or getattr(cause, "connection_invalidated", False):
            return _database_down(request, exc)
        cause = getattr(cause, "orig", None) or cause.__cause__ or cause.__context__
    return _internal(request, exc)


# The one table: exception type -> handler. Litestar picks the most specific class.
EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    ApiError: _api_error,
    ValidationException: _validation,
    GeometryError: _geometry,
    InvalidSchedule: _schedule,
    redis.exceptions.ConnectionError: _redis_down,
    redis.exceptions.TimeoutError: _redis_down,
    redis.exceptions.BusyLoadingError: _redis_down,
    sqlalchemy.exc.IntegrityError: _integrity,
    sqlalchemy.exc.DataError: _out_of_range,
    OverflowError: _out_of_range,
    sqlalchemy.exc.OperationalError: _database_down,
    sqlalchemy.exc.InterfaceError: _database_down,
    sqlalchemy.exc.TimeoutError: _database_down,
    sqlalchemy.exc.DBAPIError: _database_error,
    ConnectionError: _database_down,
    asyncpg.exceptions.PostgresConnectionError: _database_down,
    asyncpg.exceptions.OperatorInterventionError: _database_down,  # refused, reset or aborted while connecting (the pool reconnects)
    ClientException: _http,
    NotAuthorizedException: _http,
    PermissionDeniedException: _http,
    HTTPException: _http,
    Exception: _internal,
}
