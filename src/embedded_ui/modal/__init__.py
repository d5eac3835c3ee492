"""The install modal: Jinja2 pages in an iframe on the service's origin, and the JSON routes
its script calls with the user token (``/modal/api``)."""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from embedded_ui.api.auth import AuthMiddleware, provide_principal
from embedded_ui.oauth.routes import OAuthFlowsController

MODAL_API_HANDLERS: list[ControllerRouterHandler] = [OAuthFlowsController]


def modal_api_router() -> Router:
    """Every route here takes only a user token (``auth="user"``): the modal never holds an
    API key. Writes need ``Authorization``/``x-alloy-user-token`` and a JSON body, which a
    cross-site form cannot send, so they are not open to CSRF."""
    return Router(
        path="/modal/api",
        route_handlers=MODAL_API_HANDLERS,
        middleware=[AuthMiddleware()],
        dependencies={"principal": Provide(provide_principal, sync_to_thread=False)},
        opt={"auth": "user"},
        include_in_schema=False,
    )
