"""The install modal: Jinja2 pages in an iframe on the service's origin, and the JSON routes
its script calls with the user token (``/modal/api``)."""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, ControllerRouterHandler, Receive, Scope, Send

from embedded_ui.api.auth import AuthMiddleware, provide_principal
from embedded_ui.errors import Forbidden
from embedded_ui.modal.routes import ModalController, hosted_install, modal_page
from embedded_ui.oauth.routes import OAuthFlowsController

MODAL_API_HANDLERS: list[ControllerRouterHandler] = [ModalController, OAuthFlowsController]


class JsonWritesOnly(ASGIMiddleware):
    """A write must be ``application/json``: a cross-site form or ``text/plain`` post (the only
    kinds a browser sends without a preflight) is refused with 403 before anything else."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope.get("method") not in ("GET", "HEAD", "OPTIONS"):
            content_type = dict(scope["headers"]).get(b"content-type", b"")
            if content_type.split(b";")[0].strip().lower() != b"application/json":
                raise Forbidden("Send JSON (Content-Type: application/json) with the user token.")
        await next_app(scope, receive, send)


def modal_api_router(*extra: ControllerRouterHandler) -> Router:
    """Every route here takes only a user token (``auth="user"``): the modal never holds an
    API key. Writes need ``Authorization``/``x-alloy-user-token`` and a JSON body, which a
    cross-site form cannot send, so they are not open to CSRF. ``extra``: other user-token
    routes under the same rules (the integrations page's content route)."""
    return Router(
        path="/modal/api",
        route_handlers=[*MODAL_API_HANDLERS, *extra],
        middleware=[JsonWritesOnly(), AuthMiddleware()],
        dependencies={"principal": Provide(provide_principal, sync_to_thread=False)},
        opt={"auth": "user"},
        include_in_schema=False,
    )


__all__ = ["MODAL_API_HANDLERS", "hosted_install", "modal_api_router", "modal_page"]
