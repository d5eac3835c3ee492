"""App webhook deliveries (docs/engine.md, "Webhooks in").

``POST /webhooks/{parentWorkflowId}/{userId}`` (or ``/webhooks/{userId}`` for apps that take
one URL per account) finds the installation (the ids are not secrets: an unknown or inactive
one is a 404 that says nothing more), verifies the signature — the app's own HMAC where it
signs, else the installation's secret as Standard Webhooks headers or a bearer token —
deduplicates on the delivery id, and queues one execution per matching installation in the
same transaction, before answering 202.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from embedded_ui.catalog import App, Trigger
from embedded_ui.credentials.vault import Vault
from embedded_ui.engine.signing import verify as verify_standard
from embedded_ui.engine.subscriptions import app_trigger, webhook_aad
from embedded_ui.engine.triggers import Candidate, Triggers
from embedded_ui.errors import NotFound, Unauthorized
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
    pass

log = structlog.get_logger(__name__)


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
            ids = await triggers.for_webhook([t.candidate for t in matching], user_id, payload)
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
