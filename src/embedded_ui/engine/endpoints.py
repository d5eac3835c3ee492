"""Stream Data endpoints: each URL a workspace environment delivers to has its own Standard
Webhooks secret (sealed by the vault) and can be disabled by a 410 answer.

A worker reads an endpoint's secret and state once and keeps them for a few seconds, so a
burst of deliveries to one URL costs one row read; a 410 or an ISV's "enable" reaches every
process within that time.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from embedded_ui.credentials.vault import Vault
from embedded_ui.engine.signing import new_endpoint_secret
from embedded_ui.store import Scope, StreamEndpoint, new_id, utcnow

ENDPOINT = cast(Table, StreamEndpoint.__table__)
CACHE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    url: str
    secret: str
    disabled_at: datetime | None
    disabled_reason: str | None


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def endpoint_aad(scope: Scope, endpoint_id: str) -> bytes:
    return f"stream_endpoint:{scope.workspace_id}:{scope.environment}:{endpoint_id}".encode()


class Endpoints:
    def __init__(self, engine: AsyncEngine, vault: Vault) -> None:
        self._engine = engine
        self._vault = vault
        self._cache: dict[tuple[str, str, str], tuple[float, Endpoint]] = {}

    def _open(self, scope: Scope, row: Row[Any]) -> Endpoint:
        secret = self._vault.open(row.key_id, row.ciphertext, endpoint_aad(scope, row.id))
        return Endpoint(
            row.id, row.url, str(secret["secret"]), row.disabled_at, row.disabled_reason
        )

    async def get_or_create(self, scope: Scope, url: str) -> Endpoint:
        key = (scope.workspace_id, scope.environment, url)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        endpoint = await self._read(scope, url) or await self._create(scope, url)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + CACHE_SECONDS, endpoint)
        return endpoint

    async def _read(self, scope: Scope, url: str) -> Endpoint | None:
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(ENDPOINT).where(
                        ENDPOINT.c.workspace_id == scope.workspace_id,
                        ENDPOINT.c.environment == scope.environment,
                        ENDPOINT.c.url_hash == url_hash(url),
                    )
                )
            ).first()
        return self._open(scope, row) if row is not None else None

    async def _create(self, scope: Scope, url: str) -> Endpoint:
        endpoint_id = new_id()
        key_id, ciphertext = self._vault.seal(
            {"secret": new_endpoint_secret()}, endpoint_aad(scope, endpoint_id)
        )
        try:
            async with self._engine.begin() as connection:
                await connection.execute(
                    ENDPOINT.insert().values(
                        id=endpoint_id,
                        workspace_id=scope.workspace_id,
                        environment=scope.environment,
                        url=url,
                        url_hash=url_hash(url),
                        key_id=key_id,
                        ciphertext=ciphertext,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            pass  # another worker created it first: use theirs
        endpoint = await self._read(scope, url)
        assert endpoint is not None
        return endpoint

    async def disable(self, scope: Scope, endpoint_id: str, reason: str) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                update(ENDPOINT)
                .where(
                    ENDPOINT.c.id == endpoint_id,
                    ENDPOINT.c.workspace_id == scope.workspace_id,
                    ENDPOINT.c.environment == scope.environment,
                )
                .values(disabled_at=utcnow(), disabled_reason=reason[:300])
            )
        self._cache = {k: v for k, v in self._cache.items() if v[1].id != endpoint_id}

    async def list(self, scope: Scope) -> list[Endpoint]:
        async with self._engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(ENDPOINT)
                    .where(
                        ENDPOINT.c.workspace_id == scope.workspace_id,
                        ENDPOINT.c.environment == scope.environment,
                    )
                    .order_by(ENDPOINT.c.created_at)
                )
            ).all()
        return [self._open(scope, row) for row in rows]

    async def enable(self, scope: Scope, endpoint_id: str) -> bool:
        async with self._engine.begin() as connection:
            result = await connection.execute(
                update(ENDPOINT)
                .where(
                    ENDPOINT.c.id == endpoint_id,
                    ENDPOINT.c.workspace_id == scope.workspace_id,
                    ENDPOINT.c.environment == scope.environment,
                )
                .values(disabled_at=None, disabled_reason=None)
            )
        self._cache.clear()
        return bool(result.rowcount)
