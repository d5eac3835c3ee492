"""The ISV REST API, compatible with Alloy Embedded's, under every dated prefix.

Each date Alloy has published reaches the same handlers, so code written against Alloy's docs
or SDKs works by changing only the host. The handlers are registered once, under the newest
date; :func:`alias_api_version` maps the older dates onto it before routing.
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide
from litestar.types import ControllerRouterHandler, Scope

from embedded_ui.api.auth import AuthMiddleware, Principal, provide_principal
from embedded_ui.api.catalog import CatalogController, app_icon
from embedded_ui.api.credentials import CredentialsController
from embedded_ui.api.destinations import DestinationsController
from embedded_ui.api.environment import EnvironmentController
from embedded_ui.api.headless import HeadlessController
from embedded_ui.api.install_links import InstallLinksController, PageLinksController
from embedded_ui.api.integrations import (
    IntegrationsController,
    UserWorkflowsController,
    WorkflowsController,
)
from embedded_ui.api.logs import LogsController, UserLogsController
from embedded_ui.api.manage import ManageController
from embedded_ui.api.meta import health, jwks
from embedded_ui.api.oauth_clients import OAuthClientsController
from embedded_ui.api.runs import RunController
from embedded_ui.api.session import LegacyUserTokenController, SessionController
from embedded_ui.api.stream_endpoints import StreamEndpointsController
from embedded_ui.api.users import UsersController

API_VERSIONS = ("2022-09", "2023-01", "2023-03", "2023-06", "2023-12", "2024-03")
CURRENT_VERSION = API_VERSIONS[-1]

_HANDLERS: list[ControllerRouterHandler] = [
    UsersController,
    LegacyUserTokenController,
    SessionController,
    IntegrationsController,
    WorkflowsController,
    UserWorkflowsController,
    HeadlessController,
    CredentialsController,
    CatalogController,
    ManageController,
    EnvironmentController,
    InstallLinksController,
    PageLinksController,
    OAuthClientsController,
    DestinationsController,
    RunController,
    LogsController,
    UserLogsController,
    StreamEndpointsController,
]


def api_router() -> Router:
    return Router(
        path=f"/{CURRENT_VERSION}",
        route_handlers=_HANDLERS,
        middleware=[AuthMiddleware()],
        dependencies={"principal": Provide(provide_principal, sync_to_thread=False)},
        security=[{"apiKey": []}],
    )


_ALIASES = {f"/{version}/": f"/{CURRENT_VERSION}/" for version in API_VERSIONS[:-1]}


def alias_api_version(scope: Scope) -> None:
    """Rewrite an older dated prefix to the current one, in place, before routing."""
    path: str = scope["path"]
    replacement = _ALIASES.get(path[:9])
    if replacement is not None:
        scope["path"] = replacement + path[9:]
        raw_path = scope.get("raw_path")
        if raw_path:
            scope["raw_path"] = replacement.encode() + raw_path[9:]


__all__ = [
    "API_VERSIONS",
    "CURRENT_VERSION",
    "Principal",
    "alias_api_version",
    "api_router",
    "app_icon",
    "health",
    "jwks",
]
