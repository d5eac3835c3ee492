"""``/environment``: what the ISV configures for its environment's browser side — the origins
that may frame the modal and the integrations page and call the user-token routes."""

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
    allowed_origins: list[str]


class EnvironmentOut(msgspec.Struct, rename="camel"):
    environment: str
    allowed_origins: list[str]
    frame_ancestors: str
    """The CSP source list modal pages send, defaults included."""


class EnvironmentController(Controller):
    path = "/environment"
    tags = ["Environment"]

    @staticmethod
    def _out(service: EmbeddingService, environment: str, origins: list[str]) -> EnvironmentOut:
        return EnvironmentOut(environment, origins, service.policy(origins).frame_ancestors)

    @get("/", summary="Read the environment's embedding settings", responses=error_responses())
    async def read(
        self, request: Request[Principal, Any, Any], db_session: NamedDependency[AsyncSession]
    ) -> EnvironmentOut:
        service = EmbeddingService(db_session, request.user.scope, request.user.actor)
        origins = await service.allowed_origins()
        return self._out(service, request.user.scope.environment, origins)

    @put(
        "/",
        summary="Set the origins allowed to embed this environment",
        description="Exact origins (`https://app.example.com`), at most 50. An empty list in "
        "development allows loopback origins on any port; in production, nothing.",
        responses=error_responses(400),
    )
    async def update(
        self,
        data: JSONBody[EnvironmentIn],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
    ) -> EnvironmentOut:
        service = EmbeddingService(db_session, request.user.scope, request.user.actor)
        origins = await service.set_allowed_origins(data.allowed_origins)
        request.app.state.origin_policies.invalidate()
        return self._out(service, request.user.scope.environment, origins)
