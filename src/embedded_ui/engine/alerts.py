"""Errors sent in real time to the environment's error URL, as Alloy's error webhook: a signed
JSON POST (Standard Webhooks, the URL's own endpoint secret) with the `X-Alloy-WorkflowId`,
`X-Alloy-UserId`, `X-Alloy-BlockName`, `X-Alloy-BlockType` and `X-Alloy-ExecutionUuid`
headers. Best effort, off the worker's path: a few quick retries, then the error stays in
`GET /workflows/{id}/errors`, which is the record."""

from __future__ import annotations

import asyncio
import json
import time
from typing import cast

import structlog
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from embedded_ui.engine.delivery import Deliverer
from embedded_ui.engine.endpoints import Endpoints
from embedded_ui.engine.queue import Finished
from embedded_ui.store import EnvironmentSettings, Scope, iso_ms

log = structlog.get_logger(__name__)

ATTEMPTS = (0.0, 1.0, 5.0)
CACHE_SECONDS = 5.0
SETTINGS = cast(Table, EnvironmentSettings.__table__)


class Alerts:
    def __init__(self, engine: AsyncEngine, endpoints: Endpoints, deliverer: Deliverer) -> None:
        self._engine = engine
        self._endpoints = endpoints
        self._deliverer = deliverer
        self._urls: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, finished: list[Finished]) -> None:
        for outcome in finished:
            for error in outcome.errors:
                claimed = outcome.claimed
                payload = {
                    "workflowId": claimed.workflow_id,
                    "userId": claimed.user_id,
                    "executionId": claimed.id,
                    "block": error.block_name,
                    "blockId": error.block_id,
                    "blockType": error.block_type,
                    "attempt": claimed.attempt,
                    "willRetry": outcome.status == "queued",
                    "errorOccurredAt": iso_ms(error.occurred_at),
                    "message": error.message,
                }
                headers = {
                    "X-Alloy-WorkflowId": claimed.workflow_id,
                    "X-Alloy-UserId": claimed.user_id,
                    "X-Alloy-BlockName": error.block_name,
                    "X-Alloy-BlockType": error.block_type,
                    "X-Alloy-ExecutionUuid": claimed.id,
                }
                scope = Scope(claimed.workspace_id, claimed.environment)
                msg_id = f"err_{claimed.id}_{claimed.attempt}_{error.block_id}"
                task = asyncio.create_task(self._deliver(scope, payload, headers, msg_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def drain(self, grace_seconds: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in list(self._tasks):
            task.cancel()

    async def _url(self, scope: Scope) -> str | None:
        key = (scope.workspace_id, scope.environment)
        cached = self._urls.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self._engine.connect() as connection:
            url = await connection.scalar(
                select(SETTINGS.c.error_url).where(
                    SETTINGS.c.workspace_id == scope.workspace_id,
                    SETTINGS.c.environment == scope.environment,
                )
            )
        self._urls[key] = (time.monotonic() + CACHE_SECONDS, url)
        return url

    async def _deliver(
        self, scope: Scope, payload: dict[str, object], headers: dict[str, str], msg_id: str
    ) -> None:
        try:
            url = await self._url(scope)
            if not url:
                return
            endpoint = await self._endpoints.get_or_create(scope, url)
            if endpoint.disabled_at is not None:
                return
            body = json.dumps(payload, separators=(",", ":")).encode()
            for delay in ATTEMPTS:
                await asyncio.sleep(delay)
                outcome = await self._deliverer.post(
                    url, body, secret=endpoint.secret, msg_id=msg_id, extra_headers=headers
                )
                if outcome.kind == "delivered":
                    return
                if outcome.kind == "gone":
                    await self._endpoints.disable(scope, endpoint.id, f"{url} answered 410 Gone")
                    return
                if outcome.kind != "retry":
                    break
            log.info("error URL delivery failed", url=url, outcome=outcome.kind)
        except Exception:
            log.exception("error URL delivery crashed")
