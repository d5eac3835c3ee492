"""``/environment``: what the ISV configures for its environment — the origins that may frame
the modal and the integrations page and call the user-token routes, the page's theme, and the
error URL."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.api.auth import Principal
from embedded_ui.api.schemas import error_responses
from embedded_ui.workspaces.embedding import EmbeddingService


class EnvironmentIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Fields left out keep their value."""

    allowed_origins: list[str] | msgspec.UnsetType = msgspec.UNSET
    theme: dict[str, str] | msgspec.UnsetType = msgspec.UNSET
    error_url: str | msgspec.UnsetType | None = msgspec.UNSET


class EnvironmentOut(msgspec.Struct, rename="camel"):
    environment: str
    allowed_origins: list[str]
    frame_ancestors: str
    """The CSP source list modal pages send, defaults included."""
    theme: dict[str, str]
    """The integrations page's theme options (docs/page.md); a mount call's options win."""
    error_url: str | None
    """Where workflow errors are POSTed as they happen (signed; see docs/engine.md)."""


class EnvironmentController(Controller):
    path = "/environment"
    tags = ["Environment"]

    @staticmethod
    async def _out(service: EmbeddingService, environment: str) -> EnvironmentOut:
        origins = await service.allowed_origins()
        return EnvironmentOut(
            environment,
            origins,
            service.policy(origins).frame_ancestors,
            await service.theme(),
            await service.error_url(),
        )

    @get("/", summary="Read the environment's embedding settings", responses=error_responses())
    async def read(
        self, request: Request[Principal, Any, Any], db_session: NamedDependency[AsyncSession]
    ) -> EnvironmentOut:
        service = EmbeddingService(db_session, request.user.scope, request.user.actor)
        return await self._out(service, request.user.scope.environment)

    @put(
        "/",
        summary="Set the origins allowed to embed this environment, and the page's theme",
        description="`allowedOrigins`: exact origins (`https://app.example.com`), at most 50. "
        "An empty list in development allows loopback origins on any port; in production, "
        "nothing. `theme`: the integrations page's theme options (docs/page.md). `errorUrl`: "
        "where workflow errors are POSTed as they happen (null turns it off). Fields left "
        "out keep their value.",
        responses=error_responses(400),
    )
    async def update(
        self,
        data: JSONBody[EnvironmentIn],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
    ) -> EnvironmentOut:
        service = EmbeddingService(db_session, request.user.scope, request.user.actor)
        if data.allowed_origins is not msgspec.UNSET:
            await service.set_allowed_origins(data.allowed_origins)
        if data.theme is not msgspec.UNSET:
            await service.set_theme(data.theme)
        if data.error_url is not msgspec.UNSET:
            await service.set_error_url(data.error_url)
        request.app.state.origin_policies.invalidate()
        return await self._out(service, request.user.scope.environment)
