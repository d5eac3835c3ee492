"""CORS, only where the SDK calls from the ISV's page: the user-token routes.

The API-key API is server-to-server and never sends ``Access-Control-Allow-Origin``. On the
user-token routes, a preflight (which carries no token) is answered for an origin some
environment accepts; the real response gets ``Access-Control-Allow-Origin`` only when the
token's own environment accepts that origin. No cookies are involved, so the SDK sends no
credentials and no ``Access-Control-Allow-Credentials`` is ever set.
"""

from __future__ import annotations

import re
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.types import (
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

from embedded_ui.workspaces.embedding import OriginPolicies

USER_ROUTES = re.compile(
    r"^/2024-03/(integrations(/[^/]+)?|workflows(/[^/]+)?|workflows/(activate|deactivate))/?$"
)
ALLOWED_METHODS = "GET, PUT"
ALLOWED_HEADERS = "x-alloy-user-token, authorization, content-type"
PREFLIGHT_MAX_AGE = "600"


def _origin(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"origin":
            text: str = value.decode("latin-1")
            return text
    return None


def _is_preflight(scope: Scope) -> bool:
    return scope.get("method") == "OPTIONS" and any(
        name == b"access-control-request-method" for name, _ in scope["headers"]
    )


async def handle_cors(
    scope: Scope, receive: Receive, send: Send, policies: OriginPolicies, call_next: Any
) -> None:
    """Answer preflights here; let every other request through with a ``send`` that adds the
    CORS headers once the caller is known."""
    origin = _origin(scope)
    if origin is None or not USER_ROUTES.match(scope["path"]):
        await call_next(scope, receive, send)
        return
    if _is_preflight(scope):
        headers: list[tuple[bytes, bytes]] = [(b"vary", b"Origin"), (b"content-length", b"0")]
        if await policies.any_allows(origin):
            headers += [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
                (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
            ]
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 204,
            "headers": headers,
        }
        await send(start)
        body: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": b"",
            "more_body": False,
        }
        await send(body)
        return

    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableScopeHeaders.from_message(message)
            headers.add("Vary", "Origin")
            principal = scope.get("user")
            if getattr(principal, "user_id", None) is not None:
                tenant = principal.scope
                policy = await policies.policy(tenant.workspace_id, tenant.environment)
                allowed = policy.allows(origin)
            else:
                # Authentication failed: let the SDK read why (the body holds no tenant data).
                allowed = principal is None and await policies.any_allows(origin)
            if allowed:
                headers["Access-Control-Allow-Origin"] = origin
        await send(message)

    await call_next(scope, receive, send_with_cors)
