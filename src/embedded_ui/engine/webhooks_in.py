"""App webhooks in: subscribing at install time, and verifying, deduplicating and queueing
each delivery (docs/engine.md, "Webhooks in").

Subscriptions. When a workflow whose trigger is an app event is installed and the app's
trigger says ``registration: automatic``, we subscribe through the app's API (the catalog's
``webhooks.register`` request, with the user's credential) to our URL for that installation,
and keep the subscription ids and the signing secret the app returns (sealed). A failed
subscription fails the install, so nothing is installed that cannot trigger. For triggers the
merchant registers by hand, the installation gets its own secret, shown with the URL.

Deliveries. ``POST /webhooks/{parentWorkflowId}/{userId}`` (or ``/webhooks/{userId}`` for
apps that take one URL per account) finds the installation (the ids are not secrets: an
unknown or inactive one is a 404 that says nothing more), verifies the signature — the app's
own HMAC where it signs, else the installation's secret as Standard Webhooks headers or a
bearer token — deduplicates on the delivery id, and queues one execution per matching
installation in the same transaction, before answering 202.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as random_secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from embedded_ui.catalog import App, Trigger
from embedded_ui.catalog.client import AppCallFailed, _dig, call_app
from embedded_ui.credentials.vault import Vault
from embedded_ui.engine.signing import verify as verify_standard
from embedded_ui.engine.triggers import Candidate, Triggers
from embedded_ui.errors import NotFound, Unauthorized, Unprocessable
from embedded_ui.oauth.refresh import fresh_secret
from embedded_ui.settings import Settings
from embedded_ui.store import (
    InboundDelivery,
    Installation,
    ParentWorkflow,
    Scope,
    User,
    WorkflowVersion,
    bind_scope,
)

if TYPE_CHECKING:
    from embedded_ui.integrations.installations import ReleasedWorkflow

log = structlog.get_logger(__name__)


def webhook_aad(scope: Scope, installation_id: str) -> bytes:
    return (
        f"installation_webhook:{scope.workspace_id}:{scope.environment}:{installation_id}".encode()
    )


def webhook_url(public_url: str, trigger: Trigger, workflow_id: str, user_id: str) -> str:
    if trigger.webhook_url == "user":
        return f"{public_url}/webhooks/{user_id}"
    return f"{public_url}/webhooks/{workflow_id}/{user_id}"


def app_trigger(
    apps: Mapping[str, App], app_key: str, definition: Mapping[str, Any]
) -> Trigger | None:
    trigger = definition.get("trigger", {})
    app = apps.get(app_key)
    if trigger.get("type") != "app_event" or app is None:
        return None
    return app.trigger(str(trigger.get("event")))


@dataclass(frozen=True, slots=True)
class ManualWebhook:
    """What the merchant pastes into the app: our URL, and the secret if the app takes one.
    ``app_name`` names the app in the instructions; ``app_signs`` says the app signs its
    deliveries with a secret the merchant entered when connecting (nothing to paste then)."""

    url: str
    secret: str | None
    app_name: str = ""
    app_signs: bool = False


class WebhookRegistrar:
    """Subscribes installations to their app's webhooks (and unsubscribes them)."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        settings: Settings,
        vault: Vault,
        apps: Mapping[str, App],
        http: httpx.AsyncClient,
        service_values: Mapping[str, str],
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._vault = vault
        self._apps = apps
        self._http = http
        self._service = service_values

    async def installed(
        self,
        scope: Scope,
        installations: Sequence[Installation],
        released: Mapping[str, ReleasedWorkflow],
    ) -> None:
        for installation in installations:
            workflow = released.get(installation.workflow_id)
            if workflow is None:
                continue
            trigger = app_trigger(self._apps, workflow.app, workflow.definition)
            if trigger is None:
                continue
            app = self._apps[workflow.app]
            if trigger.registration == "automatic" and app.webhooks.register is not None:
                await self._subscribe(scope, installation, app, trigger)
            elif installation.webhook_ciphertext is None and not (
                trigger.signature and trigger.signature.get("secret_field")
            ):
                self._seal(scope, installation, ["whsec_" + _random_key()])

    async def _subscribe(
        self, scope: Scope, installation: Installation, app: App, trigger: Trigger
    ) -> None:
        await self.uninstalled(scope, installation)  # a reinstall replaces old subscriptions
        credential_id = installation.credential_ids.get(app.key)
        if credential_id is None:
            raise Unprocessable(
                f"Subscribing to {app.name} webhooks needs a {app.name} connection."
            )
        secret = await fresh_secret(
            self._engine,
            scope,
            credential_id,
            vault=self._vault,
            apps=self._apps,
            settings=self._settings,
        )
        url = webhook_url(
            self._settings.public_url, trigger, installation.workflow_id, installation.user_id
        )
        registrations, signing = [], []
        assert app.webhooks.register is not None
        for event in trigger.events:
            try:
                response = await call_app(
                    self._http,
                    app,
                    app.webhooks.register,
                    secret,
                    inputs={"webhook_url": url, "event": event},
                    service=self._service,
                )
            except AppCallFailed as exc:
                raise Unprocessable(
                    f"Could not subscribe to {app.name} webhooks: {exc.reason}"
                ) from None
            registrations.append(
                {"id": str(_dig(response.body, app.webhooks.id_path)), "event": event}
            )
            if app.webhooks.secret_path:
                value = _dig(response.body, app.webhooks.secret_path)
                if isinstance(value, str) and value:
                    signing.append(value)
        installation.webhook_registrations = registrations
        if signing:
            self._seal(scope, installation, signing)

    def _seal(self, scope: Scope, installation: Installation, secrets: list[str]) -> None:
        key_id, blob = self._vault.seal({"secrets": secrets}, webhook_aad(scope, installation.id))
        installation.webhook_key_id, installation.webhook_ciphertext = key_id, blob

    async def uninstalled(self, scope: Scope, installation: Installation) -> None:
        """Best effort: a subscription left behind only sends deliveries we refuse (404)."""
        if not installation.webhook_registrations:
            return
        app_key = next(iter(installation.credential_ids), None)
        app = self._apps.get(app_key or "")
        if app is None or app.webhooks.unregister is None:
            return
        try:
            secret = await fresh_secret(
                self._engine,
                scope,
                installation.credential_ids[app.key],
                vault=self._vault,
                apps=self._apps,
                settings=self._settings,
            )
            for registration in installation.webhook_registrations:
                await call_app(
                    self._http,
                    app,
                    app.webhooks.unregister,
                    secret,
                    inputs={"webhook_id": registration["id"]},
                    service=self._service,
                )
        except Exception as exc:
            log.info("could not unsubscribe a webhook", app=app.key, reason=str(exc)[:200])
        installation.webhook_registrations = []

    def manual(self, scope: Scope, installation: Installation, trigger: Trigger) -> ManualWebhook:
        url = webhook_url(
            self._settings.public_url, trigger, installation.workflow_id, installation.user_id
        )
        secret = None
        if installation.webhook_ciphertext is not None and installation.webhook_key_id:
            opened = self._vault.open(
                installation.webhook_key_id,
                installation.webhook_ciphertext,
                webhook_aad(scope, installation.id),
            )
            secret = str(opened["secrets"][0])
        app_signs = bool(trigger.signature and trigger.signature.get("secret_field"))
        return ManualWebhook(url, secret, app_signs=app_signs)

    def manual_for(
        self,
        scope: Scope,
        installation: Installation,
        app_key: str,
        definition: Mapping[str, Any],
    ) -> ManualWebhook | None:
        """What the merchant must register by hand for this installation of a workflow
        (``definition``: its installed version's), or None: no app trigger, or the app's
        trigger is registered automatically."""
        trigger = app_trigger(self._apps, app_key, definition)
        if trigger is None or trigger.registration != "manual":
            return None
        manual = self.manual(scope, installation, trigger)
        return replace(manual, app_name=self._apps[app_key].name)


def _random_key() -> str:
    return base64.b64encode(random_secrets.token_bytes(32)).decode()


# --- deliveries ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """An installation a delivery may be for, with what verifying it takes."""

    scope: Scope
    candidate: Candidate
    user_id: str
    app: App
    trigger: Trigger
    secrets: tuple[str, ...]


class Inbound:
    def __init__(self, engine: AsyncEngine, vault: Vault, apps: Mapping[str, App]) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._vault = vault
        self._apps = apps

    async def accept(
        self,
        user_id: str,
        workflow_id: str | None,
        headers: Mapping[str, str],
        body: bytes,
    ) -> tuple[Scope, list[str], bool]:
        """Verify, deduplicate and queue; return the scope, the queued execution ids, and
        whether the delivery was a duplicate. Raises 404 / 401 / 422."""
        async with self._sessions() as session:
            targets = await self._targets(session, user_id, workflow_id)
            if not targets:
                raise NotFound("No active installation takes webhooks at this address.")
            verified = [t for t in targets if _verified(t, headers, body)]
            if not verified:
                raise Unauthorized("The webhook's signature does not verify.")
            event = _event_of(verified[0].app, headers, body)
            matching = [t for t in verified if event is None or event in t.trigger.events]
            payload = _payload(body)
            scope = verified[0].scope
            bind_scope(session, scope)
            delivery_id = _delivery_id(verified[0].app, headers, body)
            source = workflow_id or f"user:{user_id}"
            session.add(
                InboundDelivery(
                    workspace_id=scope.workspace_id,
                    environment=scope.environment,
                    source=source,
                    delivery_id=delivery_id,
                )
            )
            try:
                await session.flush()
            except IntegrityError:
                return scope, [], True
            triggers = Triggers(session, scope)
            executions = await triggers.for_webhook(
                [t.candidate for t in matching], user_id, payload
            )
            await session.flush()
            ids = [e.id for e in executions]
            await session.commit()
        return scope, ids, False

    async def _targets(
        self, session: AsyncSession, user_id: str, workflow_id: str | None
    ) -> list[Target]:
        # The URL names no tenant: the user (and workflow) ids, unguessable but not secret,
        # lead to it, and every row read after this is of that tenant.
        statement = (
            select(
                Installation,
                WorkflowVersion.definition,
                ParentWorkflow.integration_id,
            )
            .join(User, User.id == Installation.user_id)
            .join(ParentWorkflow, ParentWorkflow.id == Installation.workflow_id)
            .join(WorkflowVersion, WorkflowVersion.id == Installation.version_id)
            .where(
                Installation.user_id == user_id,
                Installation.active.is_(True),
                ParentWorkflow.active.is_(True),
                User.workspace_id == Installation.workspace_id,
                User.environment == Installation.environment,
                ParentWorkflow.workspace_id == Installation.workspace_id,
                ParentWorkflow.environment == Installation.environment,
            )
        )
        if workflow_id is not None:
            statement = statement.where(Installation.workflow_id == workflow_id)
        rows = (await session.execute(statement)).all()
        targets = []
        for installation, definition, _ in rows:
            app_key = next(iter(installation.credential_ids), None)
            app = self._apps.get(app_key or "")
            trigger = app_trigger(self._apps, app_key or "", definition) if app else None
            if app is None or trigger is None:
                continue
            if workflow_id is None and trigger.webhook_url != "user":
                continue
            scope = Scope(installation.workspace_id, installation.environment)
            targets.append(
                Target(
                    scope,
                    Candidate(
                        installation.id,
                        installation.workflow_id,
                        installation.version_id,
                        installation.version_number,
                    ),
                    installation.user_id,
                    app,
                    trigger,
                    await self._secrets(session, scope, installation, trigger),
                )
            )
        return targets

    async def _secrets(
        self, session: AsyncSession, scope: Scope, installation: Installation, trigger: Trigger
    ) -> tuple[str, ...]:
        found: list[str] = []
        if installation.webhook_ciphertext is not None and installation.webhook_key_id:
            opened = self._vault.open(
                installation.webhook_key_id,
                installation.webhook_ciphertext,
                webhook_aad(scope, installation.id),
            )
            found += [str(s) for s in opened.get("secrets", [])]
        field = (trigger.signature or {}).get("secret_field")
        credential_id = next(iter(installation.credential_ids.values()), None)
        if field and credential_id:
            from embedded_ui.credentials.vault import credential_aad
            from embedded_ui.store import Credential

            credential = await session.get(Credential, credential_id)
            if credential is not None:
                value = self._vault.open(
                    credential.key_id,
                    credential.ciphertext,
                    credential_aad(scope.workspace_id, scope.environment, credential.id),
                ).get(field)
                if isinstance(value, str) and value:
                    found.append(value)
        return tuple(found)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _verified(target: Target, headers: Mapping[str, str], body: bytes) -> bool:
    signature = target.trigger.signature
    for secret in target.secrets:
        if signature is not None:
            given = _header(headers, signature["header"]) or ""
            digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
            expected = (
                base64.b64encode(digest).decode()
                if signature["algorithm"] == "hmac-sha256-base64"
                else digest.hex()
            )
            if given and hmac.compare_digest(given.strip(), expected):
                return True
        elif secret.startswith("whsec_"):
            if _header(headers, "webhook-signature") and verify_standard(secret, headers, body):
                return True
            bearer = _header(headers, "authorization") or ""
            if bearer.lower().startswith("bearer ") and hmac.compare_digest(
                bearer[7:].strip(), secret
            ):
                return True
    return False


def _event_of(app: App, headers: Mapping[str, str], body: bytes) -> str | None:
    if app.webhooks.event_header:
        return _header(headers, app.webhooks.event_header)
    return None


def _delivery_id(app: App, headers: Mapping[str, str], body: bytes) -> str:
    for name in (app.webhooks.delivery_id_header, "webhook-id"):
        if name and (value := _header(headers, name)):
            return value[:255]
    # No id from the app: the same body twice is the same delivery.
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _payload(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        return {"raw": body.decode("utf-8", "replace")}
    return parsed if isinstance(parsed, dict) else {"value": parsed}
