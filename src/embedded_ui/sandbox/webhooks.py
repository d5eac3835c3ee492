"""Webhook deliveries: the sandbox POSTs signed events to subscribed URLs, as a provider would.

Each delivery is a JSON body ``{"id", "event", "created_at", "data"}`` with the headers
``X-Sandbox-Event``, ``X-Sandbox-Delivery`` (unique per delivery; the same on a redelivery) and
``X-Sandbox-Signature``: base64 of HMAC-SHA256 over the raw body, keyed with the subscription's
secret. Loopback URLs are allowed: this is a local sandbox. One attempt per delivery, 5 s
timeout, no redirects followed; every attempt is recorded for ``GET /_sandbox/stats``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import httpx
import structlog

from embedded_ui import __version__
from embedded_ui.sandbox.store import Delivery, SandboxState, Subscription, new_id, now_iso

DELIVERY_TIMEOUT = 5.0
log = structlog.get_logger(__name__)


def new_signing_secret() -> str:
    return "sbxwh_" + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes) -> str:
    """Base64 HMAC-SHA256 of the raw body, keyed with the secret's UTF-8 bytes."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def subscribe(state: SandboxState, account_id: str, url: str, event: str) -> Subscription:
    subscription = Subscription(new_id("wh"), account_id, url, event, new_signing_secret())
    state.subscriptions[subscription.id] = subscription
    return subscription


def prepare_event(
    state: SandboxState, account_id: str, event: str, data: dict[str, Any]
) -> list[Delivery]:
    """One delivery per subscription of the account to the event, recorded before sending."""
    subscriptions = [
        s for s in state.subscriptions.values() if s.account_id == account_id and s.event == event
    ]
    if not subscriptions:
        return []
    event_id = new_id("evt")
    created_at = now_iso()
    deliveries = []
    for subscription in subscriptions:
        body = json.dumps(
            {"id": event_id, "event": event, "created_at": created_at, "data": data},
            separators=(",", ":"),
        ).encode()
        delivery = Delivery(
            id=new_id("dlv"),
            subscription_id=subscription.id,
            account_id=account_id,
            event=event,
            url=subscription.url,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"embedded-ui-sandbox/{__version__}",
                "X-Sandbox-Event": event,
                "X-Sandbox-Delivery": "",
                "X-Sandbox-Signature": sign(subscription.secret, body),
            },
        )
        delivery.headers["X-Sandbox-Delivery"] = delivery.id
        state.deliveries.append(delivery)
        deliveries.append(delivery)
    return deliveries


async def send(state: SandboxState, deliveries: list[Delivery]) -> None:
    """POST each delivery once; record the outcome. Never raises: a provider shrugs."""
    if not deliveries:
        return
    async with httpx.AsyncClient(timeout=DELIVERY_TIMEOUT, follow_redirects=False) as client:
        for delivery in deliveries:
            await _attempt(state, client, delivery)


async def _attempt(state: SandboxState, client: httpx.AsyncClient, delivery: Delivery) -> None:
    started = time.monotonic()
    attempt: dict[str, Any] = {"attempted_at": now_iso(), "status_code": None, "error": None}
    state.stats.webhook_deliveries += 1
    try:
        response = await client.post(delivery.url, content=delivery.body, headers=delivery.headers)
    except httpx.HTTPError as exc:
        attempt["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    else:
        attempt["status_code"] = response.status_code
    attempt["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    attempt["ok"] = attempt["status_code"] is not None and 200 <= attempt["status_code"] < 300
    if not attempt["ok"]:
        state.stats.webhook_failures += 1
        log.info("sandbox webhook delivery failed", delivery=delivery.id, **attempt)
    delivery.attempts.append(attempt)
