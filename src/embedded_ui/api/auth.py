"""Who is calling: every route under a dated prefix authenticates here, before its handler.

Routes take an ISV API key by default. A route whose ``opt`` has ``auth="user"`` takes a user
token instead, and ``auth="api_key_or_user"`` takes either (Alloy's user-scoped routes). The
rate limit is counted before the database is touched, keyed by the credential's hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from litestar import Request
from litestar.datastructures import State
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.errors import RateLimited, Unauthorized
from embedded_ui.security import RateLimiter, UserTokens, api_keys
from embedded_ui.store import Scope as TenantScope
from embedded_ui.store import bind_scope
from embedded_ui.users import UserService
from embedded_ui.workspaces import authenticate_key

AuthMode = Literal["api_key", "user", "api_key_or_user"]
USER_TOKEN_HEADER = "x-alloy-user-token"  # noqa: S105 (a header name)
RATE_COUNTED = "embedded_ui.rate_counted"
"""Scope key set by the hot path (api/hot.py) when it counted this request against the API
key's limit before falling through: its value is that count's answer (``Retry-After`` seconds
or ``None``), so the request is counted once."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. ``user_id`` is set only for user tokens."""

    scope: TenantScope
    actor: str
    user_id: str | None = None


class AuthMiddleware(ASGIMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        app = scope["litestar_app"]
        request: Request[Any, Any, Any] = app.request_class(scope)
        mode: AuthMode = scope["route_handler"].opt.get("auth", "api_key")
        state = app.state
        session: AsyncSession = state.db_config.provide_session(state, scope)
        principal = await _authenticate(request, mode, session, state)
        # From here on, every ORM query of this request sees only this tenant's rows.
        bind_scope(session, principal.scope)
        scope["user"] = principal
        await next_app(scope, receive, send)


async def _authenticate(
    request: Request[Any, Any, Any], mode: AuthMode, session: AsyncSession, state: State
) -> Principal:
    tokens: UserTokens = state.tokens
    limiter: RateLimiter = state.limiter
    user_token = request.headers.get(USER_TOKEN_HEADER)
    authorization = request.headers.get("authorization")
    if mode != "api_key" and user_token is None and _looks_like_jwt(authorization):
        user_token = api_keys.bearer_credential(authorization)
    if user_token is not None and mode != "api_key":
        claims = tokens.verify(user_token)
        await _count(limiter, f"user:{claims.user_id}")
        tenant = TenantScope(claims.workspace_id, claims.environment)
        users = UserService(session, tenant, actor="auth", reader=state.inline_reader)
        if not await users.exists(claims.user_id):
            raise Unauthorized("The user token's user no longer exists.")
        return Principal(scope=tenant, actor=f"user:{claims.user_id}", user_id=claims.user_id)
    if mode == "user":
        raise Unauthorized(f"Missing user token: send the `{USER_TOKEN_HEADER}` header.")
    environment, key_hash = api_keys.parse(api_keys.bearer_credential(authorization))
    if RATE_COUNTED in request.scope:
        _refuse_if_limited(request.scope[RATE_COUNTED])  # type: ignore[literal-required]
    else:
        await _count(limiter, f"key:{key_hash[:32]}")
    principal = await authenticate_key(session, environment, key_hash, state.inline_reader)
    return Principal(scope=principal.scope, actor=f"api_key:{principal.key_id}")


def _looks_like_jwt(authorization: str | None) -> bool:
    if not authorization:
        return False
    credential = authorization.strip().partition(" ")[2].strip()
    return credential.startswith("eyJ") and credential.count(".") == 2


async def _count(limiter: RateLimiter, identifier: str) -> None:
    _refuse_if_limited(await limiter.hit(identifier))


def _refuse_if_limited(retry_after: float | None) -> None:
    if retry_after is not None:
        raise RateLimited(
            f"Too many requests for this credential; retry in {int(retry_after)} seconds.",
            headers={"Retry-After": str(int(retry_after))},
        )


def provide_principal(request: Request[Principal, Any, Any]) -> Principal:
    return request.user
