"""The scheduled purge: executions and errors older than `EMBEDDED_UI_LOG_RETENTION_DAYS`,
idempotency records older than a day, inbound delivery ids older than a week. Runs in every
worker (in-process or `embedded-ui worker`) once an hour; deleting is idempotent, so several
workers purging at once only repeat each other's work. Deletes go in bounded batches so a
large backlog never holds SQLite's write lock for long."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import cast

import structlog
from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from embedded_ui.settings import Settings
from embedded_ui.store import (
    Execution,
    IdempotencyRecord,
    InboundDelivery,
    WorkflowError,
    utcnow,
)

log = structlog.get_logger(__name__)

PURGE_EVERY_SECONDS = 3600.0
BATCH = 1000
DELIVERY_IDS_KEPT = timedelta(days=7)
IDEMPOTENCY_KEPT = timedelta(hours=24)


async def purge(engine: AsyncEngine, settings: Settings) -> dict[str, int]:
    """Delete what is past its retention; return how many rows of each kind went."""
    now = utcnow()
    logs_before = now - timedelta(days=settings.log_retention_days)
    plan = (
        ("executions", Execution, "created_at", logs_before),
        ("errors", WorkflowError, "occurred_at", logs_before),
        ("idempotency", IdempotencyRecord, "created_at", now - IDEMPOTENCY_KEPT),
        ("deliveries", InboundDelivery, "created_at", now - DELIVERY_IDS_KEPT),
    )
    counts = {}
    for name, model, column_name, before in plan:
        table = cast(Table, model.__table__)
        column = table.c[column_name]
        total = 0
        for _ in range(10_000):  # bounded: at most 10 million rows per run
            batch = select(table.c.id).where(column < before).limit(BATCH).scalar_subquery()
            async with engine.begin() as connection:
                result = await connection.execute(delete(table).where(table.c.id.in_(batch)))
            deleted = result.rowcount or 0
            total += deleted
            if deleted < BATCH:
                break
        counts[name] = total
    return counts


async def purge_loop(engine: AsyncEngine, settings: Settings) -> None:
    while True:
        try:
            counts = await purge(engine, settings)
            if any(counts.values()):
                log.info("purged old logs", **counts)
        except Exception:
            log.exception("purging old logs failed; trying again later")
        await asyncio.sleep(PURGE_EVERY_SECONDS)
