"""Test hooks under /_sandbox, guarded by the ``X-Sandbox-Admin`` header.

They let the service's tests make the provider misbehave, read what it saw (token requests,
refreshes, API calls, webhook deliveries), and start over.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict
from typing import Any, get_args

from litestar import Request, Router, get, post
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, FromQuery

from embedded_ui.sandbox import webhooks
from embedded_ui.sandbox.config import API_KEY_PATTERN
from embedded_ui.sandbox.deps import Sandbox
from embedded_ui.sandbox.errors import SandboxError, read_json_object
from embedded_ui.sandbox.store import IssuerMode, SandboxState, TokenEndpointMode

ADMIN_HEADER = "X-Sandbox-Admin"
TOKEN_MODES: tuple[str, ...] = get_args(TokenEndpointMode)
ISSUER_MODES: tuple[str, ...] = get_args(IssuerMode)


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    state: SandboxState = connection.app.state.sandbox
    given = connection.headers.get(ADMIN_HEADER, "")
    if not given or not hmac.compare_digest(given.encode(), state.config.admin_secret.encode()):
        raise SandboxError(401, f"Send the sandbox's admin secret in the {ADMIN_HEADER} header.")


def _behaviour(sandbox: Sandbox) -> dict[str, Any]:
    return asdict(sandbox.behaviour)


def _account_filter(sandbox: Sandbox, body: dict[str, Any]) -> str | None:
    account_id = body.get("account_id")
    if account_id is not None and account_id not in sandbox.accounts:
        raise SandboxError(404, f"No account {account_id}.")
    return None if account_id is None else str(account_id)


@get("/stats")
async def stats(sandbox: Sandbox) -> dict[str, Any]:
    return {**asdict(sandbox.stats), "behaviour": _behaviour(sandbox)}


@get("/behaviour")
async def read_behaviour(sandbox: Sandbox) -> dict[str, Any]:
    return _behaviour(sandbox)


@post("/behaviour", status_code=200)
async def change_behaviour(request: Request[Any, Any, Any], sandbox: Sandbox) -> dict[str, Any]:
    """``{"token_endpoint": mode, "times"?: n, "slow_seconds"?: s, "authorize_iss"?: mode}``."""
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"token_endpoint", "times", "slow_seconds", "authorize_iss"})
    if unknown:
        raise SandboxError(422, f"Unknown behaviour setting {unknown[0]}.")
    behaviour = sandbox.behaviour
    if "token_endpoint" in body:
        mode, times = body["token_endpoint"], body.get("times")
        if mode not in TOKEN_MODES:
            raise SandboxError(422, f"token_endpoint must be one of {', '.join(TOKEN_MODES)}.")
        if times is not None and (type(times) is not int or times < 1):
            raise SandboxError(422, "times must be a whole number of at least 1, or null.")
        behaviour.token_endpoint, behaviour.times = mode, times
    elif "times" in body:
        raise SandboxError(422, "times only goes with token_endpoint.")
    if "slow_seconds" in body:
        seconds = body["slow_seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise SandboxError(422, "slow_seconds must be a number from 0 to 120.")
        if not 0 <= seconds <= 120:
            raise SandboxError(422, "slow_seconds must be a number from 0 to 120.")
        behaviour.slow_seconds = float(seconds)
    if "authorize_iss" in body:
        if body["authorize_iss"] not in ISSUER_MODES:
            raise SandboxError(422, f"authorize_iss must be one of {', '.join(ISSUER_MODES)}.")
        behaviour.authorize_iss = body["authorize_iss"]
    return _behaviour(sandbox)


@post("/reset", status_code=200)
async def reset(sandbox: Sandbox) -> dict[str, Any]:
    """Everything back to how the process started: data, grants, counters, behaviour."""
    sandbox.reset()
    return {"reset": True, **_behaviour(sandbox)}


@get("/accounts")
async def list_accounts(sandbox: Sandbox) -> dict[str, Any]:
    return {"data": [{**a.public(), "api_key": a.api_key} for a in sandbox.accounts.values()]}


@post("/accounts", status_code=201)
async def create_account(request: Request[Any, Any, Any], sandbox: Sandbox) -> dict[str, Any]:
    """``{"name", "email"?, "api_key"?}`` → a new account with its own API key (chosen by
    the caller when given, so a test can plant a known canary value)."""
    body = await read_json_object(request)
    name, email, api_key = body.get("name"), body.get("email"), body.get("api_key")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise SandboxError(422, "name is required: a string of at most 200 characters.")
    if email is not None and (not isinstance(email, str) or "@" not in email):
        raise SandboxError(422, "email must be an email address.")
    if api_key is not None and (
        not isinstance(api_key, str)
        or not API_KEY_PATTERN.fullmatch(api_key)
        or sandbox.account_by_api_key(api_key) is not None
    ):
        raise SandboxError(
            422, "api_key must be a new key of the form sbx_ + 16-64 letters/digits."
        )
    slug = "".join(ch for ch in name.lower() if ch.isalnum()) or "store"
    account = sandbox.add_account(name.strip(), email or f"owner@{slug}.test", api_key)
    return {**account.public(), "api_key": account.api_key}


@get("/deliveries")
async def list_deliveries(sandbox: Sandbox, event: FromQuery[str | None] = None) -> dict[str, Any]:
    return {"data": [d.public() for d in sandbox.deliveries if event is None or d.event == event]}


@post("/deliveries/{delivery_id:str}/redeliver", status_code=200)
async def redeliver(sandbox: Sandbox, delivery_id: FromPath[str]) -> dict[str, Any]:
    """Send a recorded delivery again, byte for byte (same id and signature): a duplicate."""
    delivery = next((d for d in sandbox.deliveries if d.id == delivery_id), None)
    if delivery is None:
        raise SandboxError(404, f"No delivery {delivery_id}.")
    await webhooks.send(sandbox, [delivery])
    return delivery.public()


@post("/tokens/expire", status_code=200)
async def expire_tokens(request: Request[Any, Any, Any], sandbox: Sandbox) -> dict[str, Any]:
    """Make access tokens expired now (refresh tokens keep working)."""
    account_id = _account_filter(sandbox, await read_json_object(request))
    return {"expired": sandbox.expire_access_tokens(account_id)}


@post("/tokens/revoke", status_code=200)
async def revoke_tokens(request: Request[Any, Any, Any], sandbox: Sandbox) -> dict[str, Any]:
    """Revoke access and refresh tokens, as when a user disconnects the app at the provider."""
    account_id = _account_filter(sandbox, await read_json_object(request))
    return {"revoked": sandbox.revoke_tokens(account_id)}


admin_router = Router(
    path="/_sandbox",
    route_handlers=[
        stats,
        read_behaviour,
        change_behaviour,
        reset,
        list_accounts,
        create_account,
        list_deliveries,
        redeliver,
        expire_tokens,
        revoke_tokens,
    ],
    guards=[admin_guard],
    include_in_schema=False,
)
