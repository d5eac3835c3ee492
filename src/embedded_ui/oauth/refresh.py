"""A usable secret for a credential, refreshing its OAuth access token when it is about to
expire (or when the caller saw it rejected: ``force=True``).

Providers that rotate refresh tokens invalidate the old one at the first use, so two processes
refreshing the same credential at once would leave one of them holding a dead token (and many
providers then revoke the whole grant). So one refresh at a time per credential, across
processes: the refresh runs in a transaction that first locks the credential's row
(``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite, which has one writer, an ``UPDATE`` of the
row as the transaction's first statement takes the database write lock), then reads the row
again. If another process refreshed meanwhile, its token is used and the provider is not
called. The new access token and the rotated refresh token are saved in that same transaction.

A refresh the provider refuses (``invalid_grant``, any 4xx) marks the credential ``broken``:
the user must reconnect, and :class:`CredentialBroken` says so. A provider that is down, slow,
or answers nonsense leaves the credential as it was (:class:`ProviderUnavailable`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from litestar.datastructures import State
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from embedded_ui import audit
from embedded_ui.catalog import App, fill, fill_url
from embedded_ui.credentials import Vault, credential_aad
from embedded_ui.errors import Conflict, EmbeddedUIError, NotFound, Unprocessable
from embedded_ui.oauth.clients import OAuthClientService, how_to_configure, oauth_scheme
from embedded_ui.oauth.flows import expiry, service_values
from embedded_ui.oauth.provider import ProviderClient, ProviderError
from embedded_ui.settings import Settings
from embedded_ui.store import Credential, Scope, bind_scope, utcnow

log = structlog.get_logger(__name__)

REFRESH_MARGIN = timedelta(seconds=60)
"""Refresh an access token that expires within this margin."""


class CredentialBroken(Conflict):
    """The credential cannot be used until the user reconnects the app."""

    code = "credential_broken"


class ProviderUnavailable(EmbeddedUIError):
    """The provider's token endpoint failed for now; the credential is unchanged."""

    status_code = 502
    code = "provider_unavailable"


async def fresh_secret(
    engine: AsyncEngine,
    scope: Scope,
    credential_id: str,
    *,
    vault: Vault,
    apps: Mapping[str, App],
    settings: Settings,
    force: bool = False,
) -> dict[str, Any]:
    """The credential's secret (for OAuth: ``access_token`` and the connection values), with
    an access token valid for at least another minute. ``force``: the caller's last request
    with the current access token got a 401, so refresh even if it has not expired.

    Uses its own sessions and transactions on ``engine``, never the caller's."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session:
        bind_scope(session, scope)
        credential = await _load(session, credential_id)
        secret = _open(vault, credential)
        if credential.auth_type != "oauth2":
            return secret
        if credential.status == "broken":
            raise _broken(credential, apps)
        if not force and not _expiring(credential):
            return secret
        seen = secret.get("access_token")

    broken: CredentialBroken | None = None
    async with sessions() as session, session.begin():
        bind_scope(session, scope)
        await _lock(session, credential_id)
        credential = await _load(session, credential_id)
        secret = _open(vault, credential)
        if credential.status == "broken":
            raise _broken(credential, apps)
        if secret.get("access_token") != seen or (not force and not _expiring(credential)):
            return secret  # another process refreshed while we waited for the lock
        try:
            secret = await _refresh(session, scope, credential, secret, vault, apps, settings)
        except ProviderError as exc:
            if not exc.rejected:
                raise ProviderUnavailable(exc.message) from None
            # Commit the mark, then raise: the same refresh token would fail again.
            broken = _mark_broken(session, credential, apps, exc.reason)
    if broken is not None:
        raise broken
    return secret


async def fresh_secret_for(
    state: State, scope: Scope, credential_id: str, *, force: bool = False
) -> dict[str, Any]:
    """:func:`fresh_secret` with the engine, vault, catalog and settings of the running app
    (``request.app.state``)."""
    return await fresh_secret(
        state.engine,
        scope,
        credential_id,
        vault=state.vault,
        apps=state.apps,
        settings=state.settings,
        force=force,
    )


async def _load(session: AsyncSession, credential_id: str) -> Credential:
    credential: Credential | None = await session.scalar(
        select(Credential)
        .where(Credential.id == credential_id)
        .execution_options(populate_existing=True)
    )
    if credential is None:
        raise NotFound(f"No credential {credential_id!r}.")
    return credential


async def _lock(session: AsyncSession, credential_id: str) -> None:
    """Wait until no other transaction refreshes this credential, and keep them waiting."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(Credential.id).where(Credential.id == credential_id).with_for_update()
        )
    else:
        # SQLite: a write as the transaction's first statement takes the write lock before
        # the transaction reads anything, so the read that follows sees the latest commit.
        await session.execute(
            update(Credential)
            .where(Credential.id == credential_id)
            .values(updated_at=Credential.updated_at)
            .execution_options(synchronize_session=False)
        )


def _open(vault: Vault, credential: Credential) -> dict[str, Any]:
    aad = credential_aad(credential.workspace_id, credential.environment, credential.id)
    return vault.open(credential.key_id, credential.ciphertext, aad)


def _expiring(credential: Credential, now: datetime | None = None) -> bool:
    if credential.expires_at is None:
        return False
    return credential.expires_at <= (now or utcnow()) + REFRESH_MARGIN


def _app_name(credential: Credential, apps: Mapping[str, App]) -> str:
    app = apps.get(credential.app)
    return app.name if app is not None else credential.app


def _broken(credential: Credential, apps: Mapping[str, App]) -> CredentialBroken:
    return CredentialBroken(
        f"The connection to {_app_name(credential, apps)} stopped working: reconnect it.",
        credentialId=credential.id,
    )


def _mark_broken(
    session: AsyncSession, credential: Credential, apps: Mapping[str, App], reason: str
) -> CredentialBroken:
    credential.status = "broken"
    credential.updated_at = utcnow()
    audit.record(
        session,
        actor="refresh",
        action="credential.broken",
        workspace_id=credential.workspace_id,
        environment=credential.environment,
        target=credential.id,
        app=credential.app,
        reason=reason,
    )
    log.warning("oauth_refresh_refused", app=credential.app, reason=reason)
    return _broken(credential, apps)


async def _refresh(
    session: AsyncSession,
    scope: Scope,
    credential: Credential,
    secret: dict[str, Any],
    vault: Vault,
    apps: Mapping[str, App],
    settings: Settings,
) -> dict[str, Any]:
    app = apps.get(credential.app)
    scheme = oauth_scheme(app) if app is not None else None
    if app is None or scheme is None:
        raise Unprocessable(f"The app {credential.app!r} no longer offers OAuth.")
    refresh_token = secret.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise ProviderError(
            f"{app.name} gave no refresh token.", rejected=True, reason="no_refresh_token"
        )
    client = await OAuthClientService(session, scope, vault, apps, actor="refresh").credentials(
        app.key
    )
    if client is None:
        raise Unprocessable(how_to_configure(app.key))
    values = {**secret, **service_values(settings)}
    provider = ProviderClient(
        app_name=app.name,
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_url=fill_url(scheme.token_url or "", "", values),
        pkce=scheme.pkce,
        token_params={k: fill(v, values) for k, v in scheme.token_params.items()},
    )
    token = await provider.refresh(refresh_token)
    renewed = {**secret, "access_token": token["access_token"]}
    for name in ("refresh_token", "token_type", "scope"):
        if isinstance(token.get(name), str):
            renewed[name] = token[name]  # a rotated refresh token replaces the spent one
    aad = credential_aad(credential.workspace_id, credential.environment, credential.id)
    credential.key_id, credential.ciphertext = vault.seal(renewed, aad)
    credential.expires_at = expiry(token)
    credential.updated_at = utcnow()
    audit.record(
        session,
        actor="refresh",
        action="credential.refresh",
        workspace_id=credential.workspace_id,
        environment=credential.environment,
        target=credential.id,
        app=credential.app,
        rotated="refresh_token" in token,
    )
    return renewed
