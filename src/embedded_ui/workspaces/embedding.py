"""Which web origins may embed an environment: frame the modal and the integrations page
(CSP ``frame-ancestors``) and call the user-token routes from the browser (CORS).

An environment lists exact origins (``https://app.example.com``). A development environment
with none listed accepts loopback origins on any port (``http://localhost:*``,
``http://127.0.0.1:*``) so a newcomer's local page works at once; production accepts only what
is listed. The policy is always computed from the environment named by the page or token,
never echoed from the request's Origin or Referer.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui import audit
from embedded_ui.errors import InvalidRequest
from embedded_ui.store import EnvironmentSettings, Scope, bind_scope, utcnow

MAX_ORIGINS = 50
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
DEVELOPMENT_DEFAULT = tuple(f"http://{host}:*" for host in LOOPBACK_HOSTS)


def normalise_origin(raw: str) -> str:
    """``scheme://host[:port]``, lower-cased, or :class:`InvalidRequest` naming the value."""
    text = raw.strip()
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
        or port == -1
        or "*" in text
    ):
        raise InvalidRequest(
            f"allowedOrigins: {raw!r} is not an origin; write scheme://host[:port], "
            "e.g. https://app.example.com (no path, no wildcard).",
            field="allowedOrigins",
        )
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if parts.scheme == "https" else 80
    suffix = f":{port}" if port is not None and port != default_port else ""
    return f"{parts.scheme}://{host}{suffix}"


@dataclass(frozen=True, slots=True)
class EmbeddingPolicy:
    """The origins one environment trusts, as configured (empty) or by default."""

    origins: tuple[str, ...]
    loopback_any_port: bool
    theme: Mapping[str, str] = field(default_factory=dict)
    """The integrations page's theme options set for the environment (checked when set)."""

    @property
    def frame_ancestors(self) -> str:
        sources = list(self.origins) + (list(DEVELOPMENT_DEFAULT) if self.loopback_any_port else [])
        return " ".join(sources) if sources else "'none'"

    def allows(self, origin: str | None) -> bool:
        if not origin:
            return False
        try:
            normalised = normalise_origin(origin)
        except InvalidRequest:
            return False
        if normalised in self.origins:
            return True
        parts = urlsplit(normalised)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        return self.loopback_any_port and parts.scheme == "http" and host in LOOPBACK_HOSTS


def policy_for(
    environment: str, configured: Sequence[str], theme: Mapping[str, str] | None = None
) -> EmbeddingPolicy:
    return EmbeddingPolicy(
        origins=tuple(configured),
        loopback_any_port=not configured and environment == "development",
        theme=dict(theme or {}),
    )


class EmbeddingService:
    """The allowed origins of the caller's environment (API key or CLI)."""

    def __init__(self, session: AsyncSession, scope: Scope, actor: str = "api") -> None:
        bind_scope(session, scope)
        self._session = session
        self._scope = scope
        self._actor = actor

    async def _row(self) -> EnvironmentSettings | None:
        return await self._session.scalar(select(EnvironmentSettings))

    async def allowed_origins(self) -> list[str]:
        row = await self._row()
        return list(row.allowed_origins) if row else []

    async def theme(self) -> dict[str, str]:
        row = await self._row()
        return dict(row.theme or {}) if row else {}

    async def set_theme(self, raw: Mapping[str, Any]) -> dict[str, str]:
        """Replace the page's theme; every option is checked as a mount call's would be."""
        from embedded_ui.page.theme import parse_theme  # the page owns the theme's rules

        theme = parse_theme(raw)
        row = await self._get_or_add()
        row.theme = theme
        row.updated_at = utcnow()
        audit.record(
            self._session,
            actor=self._actor,
            action="environment.theme",
            workspace_id=self._scope.workspace_id,
            environment=self._scope.environment,
        )
        await self._session.flush()
        return theme

    async def error_url(self) -> str | None:
        row = await self._row()
        return row.error_url if row else None

    async def set_error_url(self, url: str | None) -> str | None:
        """Where workflow errors are POSTed as they happen; None or "" turns it off. The
        address is checked again on every send (SSRF guard), so this check is for early,
        clear errors only."""
        url = (url or "").strip() or None
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2048:
                raise InvalidRequest(
                    "errorUrl: expected an absolute http(s) URL of at most 2048 characters.",
                    field="errorUrl",
                )
            if parts.username or parts.password:
                raise InvalidRequest(
                    "errorUrl: credentials in the URL are not allowed.", field="errorUrl"
                )
        row = await self._get_or_add()
        row.error_url = url
        row.updated_at = utcnow()
        audit.record(
            self._session,
            actor=self._actor,
            action="environment.error_url",
            workspace_id=self._scope.workspace_id,
            environment=self._scope.environment,
        )
        return url

    async def _get_or_add(self) -> EnvironmentSettings:
        row = await self._row()
        if row is None:
            row = EnvironmentSettings(
                workspace_id=self._scope.workspace_id,
                environment=self._scope.environment,
                allowed_origins=[],
                theme={},
            )
            self._session.add(row)
        return row

    async def set_allowed_origins(self, origins: Sequence[str]) -> list[str]:
        if len(origins) > MAX_ORIGINS:
            raise InvalidRequest(
                f"allowedOrigins: at most {MAX_ORIGINS} origins.", field="allowedOrigins"
            )
        clean = list(dict.fromkeys(normalise_origin(origin) for origin in origins))
        if self._scope.environment == "production":
            for origin in clean:
                host = urlsplit(origin).hostname or ""
                if origin.startswith("http://") and f"{host}" not in ("localhost", "127.0.0.1"):
                    raise InvalidRequest(
                        f"allowedOrigins: {origin} must use https in production.",
                        field="allowedOrigins",
                    )
        row = await self._get_or_add()
        row.allowed_origins = clean
        row.updated_at = utcnow()
        audit.record(
            self._session,
            actor=self._actor,
            action="environment.origins",
            workspace_id=self._scope.workspace_id,
            environment=self._scope.environment,
            origins=clean,
        )
        await self._session.flush()
        return clean

    def policy(self, configured: Sequence[str]) -> EmbeddingPolicy:
        return policy_for(self._scope.environment, configured)


class OriginPolicies:
    """Per-process cache of every environment's policy, read again after ``ttl`` seconds (a
    change made through this process is seen at once; other processes see it within ``ttl``)."""

    def __init__(self, sessions: Callable[[], AsyncSession], ttl: float = 10.0) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._loaded_at = -math.inf
        self._configured: dict[tuple[str, str], tuple[tuple[str, ...], dict[str, str]]] = {}
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._loaded_at = -math.inf

    async def _refresh(self) -> None:
        if time.monotonic() - self._loaded_at < self._ttl:
            return
        async with self._lock:
            if time.monotonic() - self._loaded_at < self._ttl:
                return
            async with self._sessions() as session:
                rows = await session.execute(
                    select(
                        EnvironmentSettings.workspace_id,
                        EnvironmentSettings.environment,
                        EnvironmentSettings.allowed_origins,
                        EnvironmentSettings.theme,
                    )
                )
                self._configured = {
                    (row.workspace_id, row.environment): (
                        tuple(row.allowed_origins or ()),
                        dict(row.theme or {}),
                    )
                    for row in rows
                }
            self._loaded_at = time.monotonic()

    async def policy(self, workspace_id: str, environment: str) -> EmbeddingPolicy:
        await self._refresh()
        origins, theme = self._configured.get((workspace_id, environment), ((), {}))
        return policy_for(environment, origins, theme)

    async def any_allows(self, origin: str) -> bool:
        """For CORS preflights, which carry no token: could any environment accept it?"""
        await self._refresh()
        if policy_for("development", ()).allows(origin):
            return True
        return any(
            policy_for(env, origins).allows(origin)
            for (_, env), (origins, _theme) in self._configured.items()
        )
