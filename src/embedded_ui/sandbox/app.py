"""The sandbox app factory: an OAuth 2.0 provider and a commerce API in one Litestar app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders, State
from litestar.types import Message, Scope

from embedded_ui.sandbox.config import SandboxConfig
from embedded_ui.sandbox.deps import dependencies
from embedded_ui.sandbox.errors import exception_handlers
from embedded_ui.sandbox.oauth import SandboxAuthorizationServer
from embedded_ui.sandbox.routes_admin import admin_router
from embedded_ui.sandbox.routes_api import api_router
from embedded_ui.sandbox.routes_oauth import oauth_routes
from embedded_ui.sandbox.store import SandboxState

MAX_REQUEST_BYTES = 1_048_576
_JSON_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def _security_headers() -> Callable[[Message, Scope], Awaitable[None]]:
    """Defaults for every response; the HTML pages set their own stricter-fitting CSP."""

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        headers.setdefault("Content-Security-Policy", _JSON_CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")

    return add_headers


def create_sandbox_app(config: SandboxConfig) -> Litestar:
    """A fresh sandbox: its own in-memory state, one demo account, one OAuth client."""
    sandbox = SandboxState(config)
    return Litestar(
        route_handlers=[*oauth_routes, api_router, admin_router],
        dependencies=dependencies,
        state=State({"sandbox": sandbox, "oauth": SandboxAuthorizationServer(sandbox)}),
        exception_handlers=exception_handlers,
        before_send=[_security_headers()],
        request_max_body_size=MAX_REQUEST_BYTES,
        openapi_config=None,
        debug=False,
    )


def create_sandbox_app_from_env() -> Litestar:
    """The factory Granian imports: configuration from ``EMBEDDED_UI_SANDBOX_*``."""
    return create_sandbox_app(SandboxConfig.from_env())
