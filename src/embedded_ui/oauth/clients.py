"""The ISV's own OAuth client at each app, per environment: the client id in the clear, the
client secret sealed by the vault with associated data naming the row. The secret is never
returned by anything but :meth:`OAuthClientService.credentials`, which the OAuth flow uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui import audit
from embedded_ui.catalog import App, AuthScheme
from embedded_ui.credentials import Vault
from embedded_ui.errors import InvalidRequest, NotFound, Unprocessable
from embedded_ui.store import OAuthClient, Scope, bind_scope, iso_ms, new_id, utcnow

MAX_CLIENT_ID_LENGTH = 512
MAX_CLIENT_SECRET_LENGTH = 4096


def oauth_client_aad(workspace_id: str, environment: str, row_id: str) -> bytes:
    return f"oauth_client:{workspace_id}:{environment}:{row_id}".encode()


def oauth_scheme(app: App) -> AuthScheme | None:
    return next((scheme for scheme in app.auth if scheme.type == "oauth2"), None)


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    client_secret: str = field(repr=False)


def describe_oauth_client(row: OAuthClient) -> dict[str, Any]:
    """What the API and the CLI show: never the secret."""
    return {
        "app": row.app,
        "clientId": row.client_id,
        "createdAt": iso_ms(row.created_at),
        "updatedAt": iso_ms(row.updated_at),
    }


def how_to_configure(app_key: str) -> str:
    return (
        f"No OAuth client is configured for {app_key!r} in this environment. Register one at "
        f"the provider with the redirect URI /oauth/callback/{app_key}, then save it with "
        f"`PUT /2024-03/oauth-clients/{app_key}` or `embedded-ui oauth-clients set`."
    )


class OAuthClientService:
    def __init__(
        self,
        session: AsyncSession,
        scope: Scope,
        vault: Vault,
        apps: Mapping[str, App],
        actor: str = "api",
    ) -> None:
        bind_scope(session, scope)
        self._session = session
        self._scope = scope
        self._vault = vault
        self._apps = apps
        self._actor = actor

    def _oauth_app(self, app_key: str) -> App:
        app = self._apps.get(app_key)
        if app is None:
            raise NotFound(f"No app {app_key!r} in the catalog.")
        if oauth_scheme(app) is None:
            raise Unprocessable(
                f"{app.name} does not use OAuth 2.0; its credentials are saved per user.",
                field="app",
            )
        return app

    async def _row(self, app_key: str) -> OAuthClient | None:
        row: OAuthClient | None = await self._session.scalar(
            select(OAuthClient).where(OAuthClient.app == app_key)
        )
        return row

    async def set(self, app_key: str, client_id: str, client_secret: str) -> OAuthClient:
        """Create or replace the client for ``app_key``; the secret is sealed to the row."""
        app = self._oauth_app(app_key)
        client_id, client_secret = client_id.strip(), client_secret.strip()
        if not client_id or len(client_id) > MAX_CLIENT_ID_LENGTH:
            raise InvalidRequest(
                f"clientId: expected 1 to {MAX_CLIENT_ID_LENGTH} characters.", field="clientId"
            )
        if not client_secret or len(client_secret) > MAX_CLIENT_SECRET_LENGTH:
            raise InvalidRequest(
                f"clientSecret: expected 1 to {MAX_CLIENT_SECRET_LENGTH} characters.",
                field="clientSecret",
            )
        row = await self._row(app.key)
        now = utcnow()
        if row is None:
            row = OAuthClient(
                id=new_id(),
                workspace_id=self._scope.workspace_id,
                environment=self._scope.environment,
                app=app.key,
                created_at=now,
            )
            self._session.add(row)
        row.client_id = client_id
        row.key_id, row.ciphertext = self._vault.seal(
            {"client_secret": client_secret}, self._aad(row.id)
        )
        row.updated_at = now
        await self._session.flush()
        audit.record(
            self._session,
            actor=self._actor,
            action="oauth_client.set",
            workspace_id=self._scope.workspace_id,
            environment=self._scope.environment,
            target=row.id,
            app=app.key,
        )
        return row

    async def get(self, app_key: str) -> OAuthClient:
        row = await self._row(app_key)
        if row is None:
            raise NotFound(f"No OAuth client for {app_key!r} in this environment.")
        return row

    async def list(self) -> list[OAuthClient]:
        rows = await self._session.scalars(select(OAuthClient).order_by(OAuthClient.app))
        return list(rows)

    async def delete(self, app_key: str) -> None:
        row = await self.get(app_key)
        await self._session.delete(row)
        audit.record(
            self._session,
            actor=self._actor,
            action="oauth_client.delete",
            workspace_id=self._scope.workspace_id,
            environment=self._scope.environment,
            target=row.id,
            app=app_key,
        )

    async def configured(self, app_key: str) -> bool:
        return await self._row(app_key) is not None

    async def credentials(self, app_key: str) -> ClientCredentials | None:
        """The client id and the opened secret, for the token endpoint; None if not set."""
        row = await self._row(app_key)
        if row is None:
            return None
        secret = self._vault.open(row.key_id, row.ciphertext, self._aad(row.id))
        return ClientCredentials(row.client_id, str(secret["client_secret"]))

    def _aad(self, row_id: str) -> bytes:
        return oauth_client_aad(self._scope.workspace_id, self._scope.environment, row_id)
