"""One error tree and one error body.

    EmbeddedUIError                400 (base; never raised bare)
    ├── InvalidRequest             400 invalid_request
    ├── Unauthorized               401 unauthorized
    ├── Forbidden                  403 forbidden
    ├── NotFound                   404 not_found
    ├── Conflict                   409 conflict
    ├── PayloadTooLarge            413 payload_too_large
    ├── Unprocessable              422 unprocessable
    └── RateLimited                429 rate_limited

Services raise these; one handler renders every error, ours or Litestar's, as
``{"message": "...", "code": "snake_case", ...extra}`` — ``message`` is the field Alloy's SDKs
read. Unexpected exceptions become a 500 whose body says nothing about the cause.
"""

from __future__ import annotations

from typing import Any, ClassVar

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

__all__ = [
    "Conflict",
    "EmbeddedUIError",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Unauthorized",
    "Unprocessable",
    "exception_handlers",
]

log = structlog.get_logger(__name__)


class EmbeddedUIError(Exception):
    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.extra = extra


class InvalidRequest(EmbeddedUIError):
    status_code = 400
    code = "invalid_request"


class Unauthorized(EmbeddedUIError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"}, **extra)


class Forbidden(EmbeddedUIError):
    status_code = 403
    code = "forbidden"


class NotFound(EmbeddedUIError):
    status_code = 404
    code = "not_found"


class Conflict(EmbeddedUIError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(EmbeddedUIError):
    status_code = 413
    code = "payload_too_large"


class Unprocessable(EmbeddedUIError):
    status_code = 422
    code = "unprocessable"


class CredentialRejected(Unprocessable):
    """The app refused a credential at verification; the message carries the app's reason."""

    code = "credential_rejected"


class RateLimited(EmbeddedUIError):
    status_code = 429
    code = "rate_limited"


_CODES_BY_STATUS = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
}


def _body(message: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"message": message, "code": code, **extra}


def _render_ours(_: Request[Any, Any, Any], exc: EmbeddedUIError) -> Response[Any]:
    return Response(
        _body(exc.message, exc.code, **exc.extra),
        status_code=exc.status_code,
        headers=exc.headers,
        media_type=MediaType.JSON,
    )


def _validation_message(exc: ValidationException) -> tuple[str, list[dict[str, str]]]:
    """Turn Litestar/msgspec validation detail into one sentence that names the field."""
    problems: list[dict[str, str]] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        key = str(item.get("key") or "").removeprefix("$.")
        text = str(item.get("message", "invalid value"))
        if " - at `$." in text:  # msgspec appends the JSON path; lift it into `field`
            text, _, path = text.partition(" - at `$.")
            key = key or path.rstrip("`")
        source = str(item.get("source") or "body")
        problems.append({"field": key or source, "message": text, "source": source})
    if not problems:
        detail = exc.detail if isinstance(exc.detail, str) else "Invalid request"
        if "Malformed JSON" in detail or "JSON" in detail:
            return "The request body is not valid JSON.", []
        return detail, []
    first = problems[0]
    where = f"{first['field']}: " if first["field"] else ""
    return f"Invalid request: {where}{first['message']}", problems


def _render_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        return _render_unexpected(request, exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationException):
        message, problems = _validation_message(exc)
        if problems:
            extra["errors"] = problems
    elif status == 413:
        message = "The request body is too large."
    elif status == 404:
        message = f"No route matches {request.method} {request.url.path}."
    else:
        message = exc.detail or "Request refused."
    code = _CODES_BY_STATUS.get(status, "http_error")
    return Response(
        _body(message, code, **extra),
        status_code=status,
        headers=exc.headers or {},
        media_type=MediaType.JSON,
    )


def _render_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # The cause goes to the log with its type only: exception text can carry user data.
    log.error("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    return Response(
        _body("Internal server error.", "internal_error"),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
        media_type=MediaType.JSON,
    )


exception_handlers: ExceptionHandlersMap = {
    EmbeddedUIError: _render_ours,
    HTTPException: _render_http,
    Exception: _render_unexpected,
}
