"""Credential records: create (validated, sealed), list (never a secret), delete.

Rotation of every sealed column, credentials included, is :mod:`embedded_ui.rotation`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui import audit
from embedded_ui.catalog import App, AuthScheme
from embedded_ui.catalog.client import AppCallFailed, verify_credential
from embedded_ui.credentials.vault import Vault, credential_aad
from embedded_ui.errors import CredentialRejected, InvalidRequest, NotFound
from embedded_ui.store import Credential, Scope, User, bind_scope, iso_ms, new_id, utcnow

MAX_FIELD_LENGTH = 4096


def _scheme(app: App, auth_type: str) -> AuthScheme:
    for scheme in app.auth:
        if scheme.type == auth_type:
            if scheme.type == "oauth2":
                raise InvalidRequest(
                    "type: oauth2 credentials come from the OAuth flow (the modal or "
                    "`GET /headless/oauthUrl`), not from this route.",
                    field="type",
                )
            return scheme
    offered = ", ".join(s.type for s in app.auth)
    raise InvalidRequest(f"type: {app.name} takes {offered}, not {auth_type!r}.", field="type")


def check_fields(
    scheme: AuthScheme, data: Mapping[str, Any], prefix: str = "data"
) -> dict[str, str]:
    """Every declared field present, nothing else, each matching its pattern. Messages name
    the field (under ``prefix``, the body member holding them) and never repeat the value (it
    may be a secret)."""
    declared = {field.name: field for field in scheme.fields}
    unknown = sorted(set(data) - set(declared))
    if unknown:
        raise InvalidRequest(
            f"{prefix}.{unknown[0]}: not a field of this credential.", field=unknown[0]
        )
    clean: dict[str, str] = {}
    for name, field in declared.items():
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidRequest(f"{prefix}.{name}: {field.label} is required.", field=name)
        value = value.strip()
        if len(value) > MAX_FIELD_LENGTH:
            raise InvalidRequest(f"{prefix}.{name}: {field.label} is too long.", field=name)
        if field.pattern and not re.fullmatch(field.pattern, value):
            hint = f" (for example {field.example})" if field.example and not field.secret else ""
            raise InvalidRequest(
                f"{prefix}.{name}: {field.label} does not have the expected format{hint}.",
                field=name,
            )
        clean[name] = value
    return clean


class CredentialService:
    def __init__(
        self,
        session: AsyncSession,
        scope: Scope,
        vault: Vault,
        apps: Mapping[str, App],
        *,
        http: httpx.AsyncClient | None = None,
        service_values: Mapping[str, str] | None = None,
    ) -> None:
        bind_scope(session, scope)
        self._session = session
        self._scope = scope
        self._vault = vault
        self._apps = apps
        self._http = http
        self._service_values = dict(service_values or {})

    def app(self, key: str) -> App:
        app = self._apps.get(key)
        if app is None:
            raise InvalidRequest(f"app: no app {key!r} in the catalog.", field="app")
        return app

    async def create(
        self,
        user: User,
        app_key: str,
        auth_type: str,
        data: Mapping[str, Any],
        name: str | None = None,
    ) -> Credential:
        app = self.app(app_key)
        scheme = _scheme(app, auth_type)
        fields = check_fields(scheme, data)
        await self.verify(app, fields)
        return self.store(user, app, auth_type, fields, scheme, name)

    async def verify(self, app: App, secret: Mapping[str, Any]) -> None:
        """Run the app's verification request with these values; nothing is saved when the
        app refuses them, and the app's own reason is passed on (secrets scrubbed)."""
        if self._http is None:
            raise RuntimeError("CredentialService needs an HTTP client to verify credentials")
        try:
            await verify_credential(self._http, app, secret, self._service_values)
        except AppCallFailed as exc:
            raise CredentialRejected(exc.reason, appStatus=exc.status) from None

    def store(
        self,
        user: User,
        app: App,
        auth_type: str,
        secret: dict[str, Any],
        scheme: AuthScheme,
        name: str | None = None,
    ) -> Credential:
        credential_id = new_id()
        key_id, blob = self._vault.seal(
            secret, credential_aad(self._scope.workspace_id, self._scope.environment, credential_id)
        )
        public = {
            f.name: secret[f.name] for f in scheme.fields if not f.secret and f.name in secret
        }
        credential = Credential(
            id=credential_id,
            workspace_id=self._scope.workspace_id,
            environment=self._scope.environment,
            user_id=user.id,
            app=app.key,
            auth_type=auth_type,
            name=name or f"{app.name} ({auth_type.replace('_', ' ')})",
            key_id=key_id,
            ciphertext=blob,
            details=public,
            # Set here, not left to the column defaults: those apply only at flush, and the
            # caller describes the new credential before that (created_at was None → 500).
            status="active",
            created_at=(now := utcnow()),
            updated_at=now,
        )
        self._session.add(credential)
        audit.record(
            self._session,
            actor="api",
            action="credential.create",
            workspace_id=self._scope.workspace_id,
            environment=self._scope.environment,
            target=credential_id,
            app=app.key,
        )
        return credential

    async def list_for(self, user: User) -> list[Credential]:
        rows = await self._session.scalars(
            select(Credential).where(Credential.user_id == user.id).order_by(Credential.created_at)
        )
        return list(rows)

    async def get(self, user: User, credential_id: str) -> Credential:
        credential = await self._session.scalar(
            select(Credential).where(Credential.id == credential_id, Credential.user_id == user.id)
        )
        if credential is None:
            raise NotFound(f"No credential {credential_id!r} for this user.")
        return credential

    async def delete(self, user: User, credential_id: str) -> None:
        credential = await self.get(user, credential_id)
        await self._session.delete(credential)
        audit.record(
            self._session,
            actor="api",
            action="credential.delete",
            workspace_id=self._scope.workspace_id,
            environment=self._scope.environment,
            target=credential_id,
        )

    def secret(self, credential: Credential) -> dict[str, Any]:
        aad = credential_aad(credential.workspace_id, credential.environment, credential.id)
        return self._vault.open(credential.key_id, credential.ciphertext, aad)


def describe_credential(credential: Credential) -> dict[str, Any]:
    """What the API shows: never the secret, never the ciphertext."""
    return {
        "credentialId": credential.id,
        "app": credential.app,
        "type": credential.auth_type,
        "name": credential.name,
        "status": credential.status,
        "details": credential.details,
        "createdAt": iso_ms(credential.created_at),
    }
