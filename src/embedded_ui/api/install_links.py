"""Hosted links for ISVs that do not embed the script (an email, a support chat, a plain
iframe): ``/users/{userId}/integrations/{integrationId}/install-url`` (the install flow) and
``/users/{userId}/integrations-page-url`` (the user's integrations page)."""

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


class PageUrlOut(msgspec.Struct, rename="camel"):
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


class PageLinksController(Controller):
    path = "/users/{user_id:str}/integrations-page-url"
    tags = ["Integrations"]
    dependencies = SERVICES

    @get(
        "/",
        summary="Make a hosted integrations-page link",
        description="A link to the user's integrations page as a full page (or a plain iframe "
        "on one of the environment's allowed origins): it works once and expires after 15 "
        "minutes. Treat it as a secret until used. Append the page's query options (theme, "
        "`integrations`, `categories`) to the URL as you need.",
        responses=error_responses(404),
    )
    async def page_url(
        self,
        user_id: FromPath[str],
        request: Request[Principal, Any, Any],
        user_service: Users,
        db_session: NamedDependency[AsyncSession],
    ) -> PageUrlOut:
        user = await user_service.get(user_id)
        token, link = await InstallLinkService(db_session).create(
            request.user.scope, user, None, request.user.actor
        )
        public_url = request.app.state.settings.public_url
        return PageUrlOut(f"{public_url}/integrations-page/{token}", iso_ms(link.expires_at))
