"""Errors of the sandbox's JSON routes: always ``{"message": "..."}`` with the right status."""

from __future__ import annotations

import json
from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

log = structlog.get_logger(__name__)


class SandboxError(Exception):
    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers or {}


def _respond(
    status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(
        {"message": message}, status_code=status_code, headers=headers, media_type=MediaType.JSON
    )


def _sandbox_error(_: Request[Any, Any, Any], exc: SandboxError) -> Response[Any]:
    return _respond(exc.status_code, exc.message, exc.headers)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return _respond(exc.status_code, exc.detail, exc.headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("sandbox request failed", path=request.url.path, error=type(exc).__name__)
    return _respond(500, "The sandbox failed unexpectedly.")


exception_handlers: ExceptionHandlersMap = {
    SandboxError: _sandbox_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}


async def read_json_object(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The body as a JSON object; an empty body is ``{}``; anything else is a 400."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise SandboxError(400, "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise SandboxError(400, "The body must be a JSON object.")
    return body
