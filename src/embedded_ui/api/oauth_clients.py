"""``/oauth-clients``: the ISV's own OAuth client (id and secret) at each app, per
environment. The secret is write-only: sealed at rest, never returned."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.api.auth import Principal
from embedded_ui.api.schemas import MessageOut, error_responses
from embedded_ui.oauth import OAuthClientService, describe_oauth_client


class OAuthClientIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    client_id: str
    client_secret: str


class OAuthClientOut(msgspec.Struct, rename="camel"):
    app: str
    client_id: str
    created_at: str
    updated_at: str


class OAuthClientListOut(msgspec.Struct):
    data: list[OAuthClientOut]


def _out(row: Any) -> OAuthClientOut:
    return msgspec.convert(describe_oauth_client(row), OAuthClientOut)


def provide_oauth_clients(
    db_session: NamedDependency[AsyncSession], request: Request[Principal, Any, State]
) -> OAuthClientService:
    state = request.app.state
    return OAuthClientService(
        db_session, request.user.scope, state.vault, state.apps, actor=request.user.actor
    )


OAuthClients = NamedDependency[OAuthClientService]


class OAuthClientsController(Controller):
    path = "/oauth-clients"
    tags = ["OAuth clients"]
    dependencies = {"oauth_client_service": Provide(provide_oauth_clients, sync_to_thread=False)}

    @get("/", summary="List the environment's OAuth clients", responses=error_responses())
    async def list_oauth_clients(self, oauth_client_service: OAuthClients) -> OAuthClientListOut:
        return OAuthClientListOut([_out(row) for row in await oauth_client_service.list()])

    @put(
        "/{app:str}",
        summary="Set the OAuth client for an app",
        description="`{clientId, clientSecret}` of the client you registered at the app, with "
        "the redirect URI `{public URL}/oauth/callback/{app}`. Replaces any earlier one. The "
        "secret is encrypted at rest and never returned.",
        responses=error_responses(400, 404, 413),
    )
    async def set_oauth_client(
        self, app: FromPath[str], data: JSONBody[OAuthClientIn], oauth_client_service: OAuthClients
    ) -> OAuthClientOut:
        row = await oauth_client_service.set(app, data.client_id, data.client_secret)
        return _out(row)

    @delete(
        "/{app:str}",
        summary="Delete the OAuth client for an app",
        responses=error_responses(404),
        status_code=200,
    )
    async def delete_oauth_client(
        self, app: FromPath[str], oauth_client_service: OAuthClients
    ) -> MessageOut:
        await oauth_client_service.delete(app)
        return MessageOut("OAuth client deleted.")
