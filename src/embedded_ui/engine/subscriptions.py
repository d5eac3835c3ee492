"""Subscribing installations to their app's webhooks (docs/engine.md, "Webhooks in").

When a workflow whose trigger is an app event is installed and the app's trigger says
``registration: automatic``, we subscribe through the app's API (the catalog's
``webhooks.register`` request, with the user's credential) to our URL for that installation,
and keep the subscription ids and the signing secret the app returns (sealed). A failed
subscription fails the install, so nothing is installed that cannot trigger. For triggers the
merchant registers by hand, the installation gets its own secret, shown with the URL
(:meth:`WebhookRegistrar.manual`).
"""

from __future__ import annotations

import base64
import secrets as random_secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from embedded_ui.catalog import App, Trigger
from embedded_ui.catalog.client import AppCallFailed, call_app, dig
from embedded_ui.credentials.vault import Vault
from embedded_ui.errors import Unprocessable
from embedded_ui.oauth.refresh import fresh_secret
from embedded_ui.settings import Settings
from embedded_ui.store import (
    Installation,
    Scope,
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
                {"id": str(dig(response.body, app.webhooks.id_path)), "event": event}
            )
            if app.webhooks.secret_path:
                value = dig(response.body, app.webhooks.secret_path)
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
