"""OAuth authorization-code flows, from the modal's request to the stored credential.

The modal creates a flow (:class:`OAuthFlowService`, user token), opens ``/oauth/start/{id}``
in a popup, and polls the flow. The popup's two public pages are :class:`OAuthPopup`:

* ``start`` makes the single-use ``state`` (256 bits from ``secrets``; only its SHA-256 is
  stored), the PKCE S256 verifier (sealed in the flow row) and a binding cookie (only its
  SHA-256 is stored), then redirects to the provider's authorize URL built from the catalog;
* ``finish`` (the callback) checks state, app, cookie, expiry, then consumes the state with a
  conditional UPDATE (one winner, whatever races), then checks ``iss``, the provider's answer
  and its own rules, exchanges the code, seals the tokens into a credential and records the
  outcome on the flow.

Nothing before the consumption writes anything, and no check failure reaches the token
endpoint. Messages recorded on a flow or shown on the page never contain a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui import audit
from embedded_ui.catalog import App, AuthScheme, MissingValue, fill, fill_url
from embedded_ui.credentials import CredentialService, Vault
from embedded_ui.credentials.service import check_fields
from embedded_ui.errors import InvalidRequest, NotFound, Unprocessable
from embedded_ui.oauth.checks import CallbackCheckFailed, check_callback
from embedded_ui.oauth.clients import (
    ClientCredentials,
    OAuthClientService,
    how_to_configure,
    oauth_scheme,
)
from embedded_ui.oauth.provider import ProviderClient, ProviderError
from embedded_ui.settings import Settings
from embedded_ui.store import Credential, OAuthFlow, Scope, User, bind_scope, new_id, utcnow

log = structlog.get_logger(__name__)

FLOW_TTL = timedelta(minutes=10)
PURPOSES = ("install", "authenticate", "reconnect")
UNFINISHED = ("created", "started")
SECURE_COOKIE = "__Host-eui_oauth"
DEVELOPMENT_COOKIE = "eui_oauth"
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def flow_aad(workspace_id: str, environment: str, flow_id: str) -> bytes:
    return f"oauth_flow:{workspace_id}:{environment}:{flow_id}".encode()


def redirect_uri(settings: Settings, app_key: str) -> str:
    """The one callback URL per app, byte for byte the same at authorize and token time."""
    return f"{settings.public_url.rstrip('/')}/oauth/callback/{app_key}"


def binding_cookie_name(settings: Settings) -> str:
    """``__Host-`` needs Secure, which needs https; plain-http development gets a plain name."""
    return SECURE_COOKIE if settings.public_url.startswith("https://") else DEVELOPMENT_COOKIE


def service_values(settings: Settings) -> dict[str, str]:
    """The catalog placeholders the service fills from its own settings."""
    return {"sandbox_url": settings.sandbox_url.rstrip("/")}


def effective_status(flow: OAuthFlow, now: datetime | None = None) -> tuple[str, str | None]:
    """An unfinished flow past its expiry reads as failed, whether or not a write said so."""
    if flow.status in UNFINISHED and flow.expires_at <= (now or utcnow()):
        return "failed", "The sign-in took longer than 10 minutes. Start again."
    return flow.status, flow.error


def describe_flow(flow: OAuthFlow) -> dict[str, Any]:
    """``{status, credentialId?, message?}``: what the modal polls (docs/sdk.md)."""
    status, message = effective_status(flow)
    body: dict[str, Any] = {"status": status}
    if flow.credential_id and status == "succeeded":
        body["credentialId"] = flow.credential_id
    if message and status != "succeeded":
        body["message"] = message
    return body


class OAuthFlowService:
    """The modal's side: create, read and cancel the flows of one user."""

    def __init__(
        self,
        session: AsyncSession,
        scope: Scope,
        vault: Vault,
        apps: Mapping[str, App],
        settings: Settings,
    ) -> None:
        bind_scope(session, scope)
        self._session = session
        self._scope = scope
        self._vault = vault
        self._apps = apps
        self._settings = settings

    def start_url(self, flow: OAuthFlow) -> str:
        return f"{self._settings.public_url.rstrip('/')}/oauth/start/{flow.id}"

    async def create(
        self, user_id: str, app_key: str, purpose: str, connection: Mapping[str, Any]
    ) -> OAuthFlow:
        app = self._apps.get(app_key)
        if app is None:
            raise InvalidRequest(f"app: no app {app_key!r} in the catalog.", field="app")
        scheme = oauth_scheme(app)
        if scheme is None:
            raise Unprocessable(
                f"app: {app.name} does not use OAuth 2.0; save its credential instead.",
                field="app",
            )
        if purpose not in PURPOSES:
            raise InvalidRequest(
                f"purpose: expected one of {', '.join(PURPOSES)}.", field="purpose"
            )
        values = check_fields(scheme, connection, prefix="connection")
        clients = OAuthClientService(
            self._session, self._scope, self._vault, self._apps, actor=f"user:{user_id}"
        )
        if not await clients.configured(app.key):
            raise Unprocessable(how_to_configure(app.key), field="app")
        flow_id, now = new_id(), utcnow()
        key_id, blob = self._vault.seal({"connection": values}, self._aad(flow_id))
        flow = OAuthFlow(
            id=flow_id,
            workspace_id=self._scope.workspace_id,
            environment=self._scope.environment,
            user_id=user_id,
            app=app.key,
            purpose=purpose,
            key_id=key_id,
            ciphertext=blob,
            status="created",
            created_at=now,
            expires_at=now + FLOW_TTL,
        )
        self._session.add(flow)
        audit.record(
            self._session,
            actor=f"user:{user_id}",
            action="oauth.flow_create",
            workspace_id=self._scope.workspace_id,
            environment=self._scope.environment,
            target=flow_id,
            app=app.key,
            purpose=purpose,
        )
        return flow

    async def get(self, user_id: str, flow_id: str) -> OAuthFlow:
        flow: OAuthFlow | None = await self._session.scalar(
            select(OAuthFlow).where(OAuthFlow.id == flow_id, OAuthFlow.user_id == user_id)
        )
        if flow is None:
            raise NotFound(f"No OAuth flow {flow_id!r} for this user.")
        return flow

    async def cancel(self, user_id: str, flow_id: str) -> OAuthFlow:
        """Cancel an unfinished flow; a finished one is left as it is (idempotent)."""
        flow = await self.get(user_id, flow_id)
        if flow.status in UNFINISHED:
            await self._session.execute(
                update(OAuthFlow)
                .where(OAuthFlow.id == flow.id, OAuthFlow.status.in_(UNFINISHED))
                .values(status="cancelled", state_hash=None, finished_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            await self._session.refresh(flow)
        return flow

    def _aad(self, flow_id: str) -> bytes:
        return flow_aad(self._scope.workspace_id, self._scope.environment, flow_id)


class PopupRejected(Exception):
    """The popup's request is refused (HTTP 400). ``flow_id`` is set when the outcome was
    recorded on a flow of this browser, so the page may tell the opener to look."""

    def __init__(self, message: str, flow_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.flow_id = flow_id


class _FlowFailed(Exception):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StartedFlow:
    location: str
    cookie_name: str
    cookie_value: str
    secure: bool


@dataclass(frozen=True, slots=True)
class FlowRef:
    """A flow's identity, kept apart from the ORM row: a rollback expires the row, and an
    expired attribute cannot be loaded lazily in an async session."""

    id: str
    user_id: str
    workspace_id: str
    environment: str
    app: str

    @classmethod
    def of(cls, flow: OAuthFlow) -> FlowRef:
        return cls(flow.id, flow.user_id, flow.workspace_id, flow.environment, flow.app)


_USED = "This sign-in was already used or is unknown. Start again from the app."


class OAuthPopup:
    """The two public pages of the popup. Not scoped by a principal: the flow row names its
    tenant, and the session is bound to it as soon as the row is found."""

    def __init__(
        self, session: AsyncSession, vault: Vault, apps: Mapping[str, App], settings: Settings
    ) -> None:
        self._session = session
        self._vault = vault
        self._apps = apps
        self._settings = settings

    # start ------------------------------------------------------------------------------

    async def start(self, flow_id: str) -> StartedFlow:
        flow: OAuthFlow | None = await self._session.scalar(
            select(OAuthFlow).where(OAuthFlow.id == flow_id)
        )
        if flow is None:
            raise PopupRejected("This sign-in link is not valid. Start again from the app.")
        scope = self._bind(flow)
        if flow.status != "created":
            raise PopupRejected("This sign-in link was already used. Start again from the app.")
        if flow.expires_at <= utcnow():
            raise PopupRejected("This sign-in link has expired. Start again from the app.")
        app, scheme = self._app(flow)
        client = await self._client(scope, app)
        if client is None:
            raise PopupRejected(how_to_configure(app.key))
        connection = self._open(flow)["connection"]
        values = {**connection, **service_values(self._settings)}
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64) if scheme.pkce else None
        binding = secrets.token_urlsafe(32)
        try:
            location = self._provider(app, scheme, client, values).authorize_url(
                fill_url(scheme.authorize_url or "", "", values),
                state=state,
                code_verifier=verifier,
                redirect_uri=redirect_uri(self._settings, app.key),
                scope=scheme.scope_separator.join(scheme.scopes) or None,
                params={k: str(fill(v, values)) for k, v in scheme.authorize_params.items()},
            )
        except MissingValue as exc:  # the catalog's checks make this unreachable
            raise PopupRejected(f"{app.name}'s sign-in needs {exc.name}.") from None
        key_id, blob = self._vault.seal(
            {"connection": connection, "code_verifier": verifier}, self._aad(flow)
        )
        started = await self._session.execute(
            update(OAuthFlow)
            .where(OAuthFlow.id == flow.id, OAuthFlow.status == "created")
            .values(
                status="started",
                state_hash=sha256_hex(state),
                binding_hash=sha256_hex(binding),
                key_id=key_id,
                ciphertext=blob,
            )
            .execution_options(synchronize_session=False)
        )
        if _rowcount(started) != 1:
            raise PopupRejected("This sign-in link was already used. Start again from the app.")
        self._audit(FlowRef.of(flow), "oauth.flow_start")
        await self._session.commit()
        name = binding_cookie_name(self._settings)
        return StartedFlow(location, name, binding, secure=name == SECURE_COOKIE)

    # callback ---------------------------------------------------------------------------

    async def finish(
        self, app_key: str, params: Mapping[str, str], binding: str | None
    ) -> OAuthFlow:
        """Check, consume, exchange, store. Returns the succeeded flow or raises
        :class:`PopupRejected`."""
        state = params.get("state")
        if not state:
            raise PopupRejected("The sign-in response has no state. Start again from the app.")
        state_hash = sha256_hex(state)
        flow: OAuthFlow | None = await self._session.scalar(
            select(OAuthFlow).where(OAuthFlow.state_hash == state_hash)
        )
        if flow is None:
            raise PopupRejected(_USED)
        scope = self._bind(flow)
        ref = FlowRef.of(flow)
        if flow.app != app_key:
            raise PopupRejected("This sign-in response was sent to another app's callback.")
        if flow.status != "started":
            raise PopupRejected(_USED)
        expected_binding = flow.binding_hash or ""
        if not binding or not hmac.compare_digest(sha256_hex(binding), expected_binding):
            raise PopupRejected(
                "This sign-in response did not come back to the browser window that started "
                "it. Start again from the app."
            )
        # From here the browser is the one that started the flow: consume the state (one
        # winner, even under a replay race) and record every outcome on the flow.
        consumed = await self._session.execute(
            update(OAuthFlow)
            .where(
                OAuthFlow.id == flow.id,
                OAuthFlow.status == "started",
                OAuthFlow.state_hash == state_hash,
            )
            .values(state_hash=None)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(consumed) != 1:
            await self._session.rollback()
            raise PopupRejected(_USED)
        await self._session.commit()
        try:
            if flow.expires_at <= utcnow():
                raise _FlowFailed(
                    "The sign-in took longer than 10 minutes. Start again.", "expired"
                )
            credential = await self._exchange(scope, flow, params)
        except _FlowFailed as failure:
            await self._fail(ref, failure)
            raise PopupRejected(failure.message, flow_id=ref.id) from None
        await self._session.refresh(flow)
        log.info("oauth_connected", app=flow.app, flow_id=flow.id, credential_id=credential.id)
        return flow

    async def _exchange(
        self, scope: Scope, flow: OAuthFlow, params: Mapping[str, str]
    ) -> Credential:
        app, scheme = self._app(flow)
        sealed = self._open(flow)
        connection: dict[str, str] = sealed["connection"]
        values = {**connection, **service_values(self._settings)}
        if scheme.issuer:
            expected = fill_url(scheme.issuer, "", values)
            if params.get("iss") != expected:
                raise _FlowFailed(
                    f"The sign-in response did not come from {app.name}'s authorization server.",
                    "issuer_mismatch",
                )
        error = params.get("error")
        if error:
            if error == "access_denied":
                raise _FlowFailed(f"Access to {app.name} was declined.", "access_denied")
            named = error if _ERROR_CODE.match(error) else "an error"
            raise _FlowFailed(f"{app.name} could not complete the sign-in ({named}).", "error")
        code = params.get("code")
        if not code:
            raise _FlowFailed(f"{app.name} sent no authorization code.", "no_code")
        client = await self._client(scope, app)
        if client is None:
            raise _FlowFailed(how_to_configure(app.key), "no_client")
        try:
            check_callback(app.key, params, connection, client.client_secret)
        except CallbackCheckFailed as exc:
            raise _FlowFailed(exc.message, "provider_check") from None
        provider = self._provider(app, scheme, client, values)
        try:
            token = await provider.exchange_code(
                code,
                redirect_uri=redirect_uri(self._settings, app.key),
                code_verifier=sealed.get("code_verifier"),
            )
        except ProviderError as exc:
            log.warning("oauth_exchange_failed", app=app.key, flow_id=flow.id, reason=exc.reason)
            raise _FlowFailed(exc.message, exc.reason) from None
        return await self._store(scope, flow, app, scheme, connection, token)

    async def _store(
        self,
        scope: Scope,
        flow: OAuthFlow,
        app: App,
        scheme: AuthScheme,
        connection: dict[str, str],
        token: Mapping[str, Any],
    ) -> Credential:
        user = await self._session.scalar(select(User).where(User.id == flow.user_id))
        if user is None:
            raise _FlowFailed("The user of this sign-in no longer exists.", "no_user")
        secret = token_secret(scheme, connection, token)
        credentials = CredentialService(self._session, scope, self._vault, self._apps)
        credential = credentials.store(user, app, "oauth2", secret, scheme)
        credential.expires_at = expiry(token)
        credential.details = {**credential.details, "scopes": granted_scopes(scheme, token)}
        finished = await self._session.execute(
            update(OAuthFlow)
            .where(OAuthFlow.id == flow.id, OAuthFlow.status == "started")
            .values(status="succeeded", credential_id=credential.id, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        ref = FlowRef.of(flow)
        if _rowcount(finished) != 1:  # cancelled while the provider answered: keep nothing
            await self._session.rollback()
            raise PopupRejected("This sign-in was cancelled.", flow_id=ref.id)
        self._audit(ref, "oauth.connect", credential_id=credential.id)
        await self._session.commit()
        return credential

    async def _fail(self, flow: FlowRef, failure: _FlowFailed) -> None:
        await self._session.rollback()
        await self._session.execute(
            update(OAuthFlow)
            .where(OAuthFlow.id == flow.id, OAuthFlow.status.in_(UNFINISHED))
            .values(
                status="failed", error=failure.message[:500], state_hash=None, finished_at=utcnow()
            )
            .execution_options(synchronize_session=False)
        )
        self._audit(flow, "oauth.fail", reason=failure.reason)
        await self._session.commit()

    # helpers ----------------------------------------------------------------------------

    def _bind(self, flow: OAuthFlow) -> Scope:
        scope = Scope(flow.workspace_id, flow.environment)
        bind_scope(self._session, scope)
        return scope

    def _app(self, flow: OAuthFlow) -> tuple[App, AuthScheme]:
        app = self._apps.get(flow.app)
        scheme = oauth_scheme(app) if app is not None else None
        if app is None or scheme is None:
            raise PopupRejected(f"The app {flow.app!r} no longer offers OAuth.")
        return app, scheme

    async def _client(self, scope: Scope, app: App) -> ClientCredentials | None:
        clients = OAuthClientService(self._session, scope, self._vault, self._apps, actor="oauth")
        return await clients.credentials(app.key)

    def _provider(
        self, app: App, scheme: AuthScheme, client: ClientCredentials, values: Mapping[str, Any]
    ) -> ProviderClient:
        return ProviderClient(
            app_name=app.name,
            client_id=client.client_id,
            client_secret=client.client_secret,
            token_url=fill_url(scheme.token_url or "", "", values),
            pkce=scheme.pkce,
            token_params={k: fill(v, values) for k, v in scheme.token_params.items()},
        )

    def _aad(self, flow: OAuthFlow) -> bytes:
        return flow_aad(flow.workspace_id, flow.environment, flow.id)

    def _open(self, flow: OAuthFlow) -> dict[str, Any]:
        return self._vault.open(flow.key_id, flow.ciphertext, self._aad(flow))

    def _audit(self, flow: FlowRef, action: str, **details: Any) -> None:
        audit.record(
            self._session,
            actor=f"user:{flow.user_id}",
            action=action,
            workspace_id=flow.workspace_id,
            environment=flow.environment,
            target=flow.id,
            app=flow.app,
            **details,
        )


def token_secret(
    scheme: AuthScheme, connection: Mapping[str, str], token: Mapping[str, Any]
) -> dict[str, Any]:
    """What the vault keeps for an OAuth credential: the tokens, the connection values the
    API templates need (a shop), and the token fields the catalog asks to keep."""
    secret: dict[str, Any] = {**connection, "access_token": token["access_token"]}
    for name in ("refresh_token", "token_type", "scope"):
        if isinstance(token.get(name), str):
            secret[name] = token[name]
    for name, key in scheme.token_fields.items():
        value = token.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            secret[name] = value
    return secret


def expiry(token: Mapping[str, Any], now: datetime | None = None) -> datetime | None:
    seconds = token.get("expires_in")
    if isinstance(seconds, str) and seconds.isdigit():
        seconds = int(seconds)
    if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0:
        return (now or utcnow()) + timedelta(seconds=seconds)
    return None


def granted_scopes(scheme: AuthScheme, token: Mapping[str, Any]) -> list[str]:
    """The scopes the provider says it granted (a string), else the ones asked for."""
    scope = token.get("scope")
    if isinstance(scope, str) and scope.strip():
        separator = "," if "," in scope and " " not in scope.strip() else None
        return [s for s in (p.strip() for p in scope.split(separator)) if s][:50]
    return list(scheme.scopes)


def _rowcount(result: Any) -> int:
    count: int = result.rowcount
    return count
