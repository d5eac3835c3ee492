"""The ISV REST API, compatible with Alloy Embedded's, under every dated prefix.

Each date Alloy has published reaches the same handlers, so code written against Alloy's docs
or SDKs works by changing only the host. The newest date is the one in the OpenAPI document.
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from embedded_ui.api.auth import AuthMiddleware, Principal, provide_principal
from embedded_ui.api.catalog import CatalogController, app_icon
from embedded_ui.api.credentials import CredentialsController
from embedded_ui.api.headless import HeadlessController
from embedded_ui.api.integrations import (
    IntegrationsController,
    UserWorkflowsController,
    WorkflowsController,
)
from embedded_ui.api.manage import ManageController
from embedded_ui.api.meta import health, jwks
from embedded_ui.api.session import LegacyUserTokenController, SessionController
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
]


def dated_routers() -> list[Router]:
    return [
        Router(
            path=f"/{version}",
            route_handlers=_HANDLERS,
            middleware=[AuthMiddleware()],
            dependencies={"principal": Provide(provide_principal, sync_to_thread=False)},
            include_in_schema=version == CURRENT_VERSION,
            security=[{"apiKey": []}],
        )
        for version in API_VERSIONS
    ]


__all__ = [
    "API_VERSIONS",
    "CURRENT_VERSION",
    "Principal",
    "app_icon",
    "dated_routers",
    "health",
    "jwks",
]
