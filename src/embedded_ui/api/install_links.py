"""``/users/{userId}/integrations/{integrationId}/install-url``: a hosted install link for
ISVs that do not embed the script (an email, a support chat)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.api.auth import Principal
from embedded_ui.api.deps import SERVICES, Installations, Users
from embedded_ui.api.schemas import error_responses
from embedded_ui.errors import NotFound
from embedded_ui.modal.links import InstallLinkService
from embedded_ui.store import iso_ms


class InstallUrlOut(msgspec.Struct, rename="camel"):
    url: str
    expires_at: str


class InstallLinksController(Controller):
    path = "/users/{user_id:str}/integrations/{integration_id:str}/install-url"
    tags = ["Integrations"]
    dependencies = SERVICES

    @get(
        "/",
        summary="Make a hosted install link",
        description="A link to the install flow as a full page: it works once and expires "
        "after 15 minutes. Treat it as a secret until used.",
        responses=error_responses(404),
    )
    async def install_url(
        self,
        user_id: FromPath[str],
        integration_id: FromPath[str],
        request: Request[Principal, Any, Any],
        user_service: Users,
        installation_service: Installations,
        db_session: NamedDependency[AsyncSession],
    ) -> InstallUrlOut:
        user = await user_service.get(user_id)
        if not await installation_service.released(integration_id):
            raise NotFound(f"No released integration {integration_id!r} in this environment.")
        token, link = await InstallLinkService(db_session).create(
            request.user.scope, user, integration_id, request.user.actor
        )
        public_url = request.app.state.settings.public_url
        return InstallUrlOut(f"{public_url}/install/{token}", iso_ms(link.expires_at))
