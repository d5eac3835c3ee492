"""The durable queue: ``execution`` rows are the queue entries (docs/engine.md).

A worker claims due rows by setting ``running``, a lease and ``attempt + 1`` in one
statement; a row whose lease ran out (its worker died) is due again. The attempt number is
the fencing token: a worker's finish only applies while the row is still ``running`` at the
attempt it claimed, so a worker that lost its lease cannot overwrite a newer attempt.
Statements are Core, without the ORM's per-row cost, and work on SQLite and PostgreSQL
(``FOR UPDATE SKIP LOCKED`` there, so several workers never claim the same row).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncEngine

from embedded_ui.store import Execution, WorkflowError, utcnow
from embedded_ui.store.sqlite_driver import in_one_hand_off, positional

EXECUTION = cast(Table, Execution.__table__)
WORKFLOW_ERROR = cast(Table, WorkflowError.__table__)


@dataclass(slots=True)
class Claimed:
    """An execution a worker holds the lease of."""

    id: str
    workspace_id: str
    environment: str
    user_id: str
    workflow_id: str
    installation_id: str
    version_number: int
    trigger_type: str
    trigger: dict[str, Any]
    attempt: int
    results: list[dict[str, Any]]


@dataclass(slots=True)
class ErrorRecord:
    block_id: str
    block_name: str
    block_type: str
    message: str
    occurred_at: datetime


@dataclass(slots=True)
class Finished:
    """What became of one attempt: ``status`` succeeded, failed, or queued (retry later)."""

    claimed: Claimed
    status: str
    results: list[dict[str, Any]]
    error: str | None = None
    retry_at: datetime | None = None
    errors: list[ErrorRecord] = field(default_factory=list)


_CLAIM_COLUMNS = (
    EXECUTION.c.id,
    EXECUTION.c.workspace_id,
    EXECUTION.c.environment,
    EXECUTION.c.user_id,
    EXECUTION.c.workflow_id,
    EXECUTION.c.installation_id,
    EXECUTION.c.version_number,
    EXECUTION.c.trigger_type,
    EXECUTION.c.trigger,
    EXECUTION.c.attempt,
    EXECUTION.c.results,
)


def _due(now: datetime, limit: int, ids: Sequence[str] | None, lock: bool) -> Any:
    """The ids of up to ``limit`` due executions: those whose lease ran out (their worker
    died), then the queued ones in the order they became due.

    Two index searches joined by UNION ALL, each stopping after ``limit`` rows. The single
    ``WHERE queued AND due OR running AND expired ORDER BY available_at`` this replaces made
    SQLite read *every* due row and sort them on each claim (a multi-index OR, then a
    temporary B-tree for the order), inside the write transaction: with 50,000 executions
    waiting, a claim held the write lock for ~13 ms and the API's inserts waited behind it
    (bench/engine.py ``run-event``: 0.22x of the baseline, 0.5x without deliveries)."""
    expired = select(EXECUTION.c.id).where(
        EXECUTION.c.status == "running", EXECUTION.c.lease_until < now
    )
    queued = select(EXECUTION.c.id).where(
        EXECUTION.c.status == "queued", EXECUTION.c.available_at <= now
    )
    if ids is not None:
        expired = expired.where(EXECUTION.c.id.in_(list(ids)))
        queued = queued.where(EXECUTION.c.id.in_(list(ids)))
    expired = expired.limit(limit)
    queued = queued.order_by(EXECUTION.c.available_at).limit(limit)
    if lock:  # PostgreSQL: several workers never claim the same row
        expired = expired.with_for_update(skip_locked=True)
        queued = queued.with_for_update(skip_locked=True)
    both = union_all(select(expired.subquery().c.id), select(queued.subquery().c.id)).subquery()
    return select(both.c.id).limit(limit).scalar_subquery()


_FINISH = (
    update(EXECUTION)
    .where(
        EXECUTION.c.id == bindparam("b_id"),
        EXECUTION.c.attempt == bindparam("b_attempt"),
        EXECUTION.c.status == "running",
    )
    .values(
        status=bindparam("b_status"),
        results=bindparam("b_results", type_=EXECUTION.c.results.type),
        error=bindparam("b_error"),
        available_at=bindparam("b_available_at", type_=EXECUTION.c.available_at.type),
        stopped_at=bindparam("b_stopped_at", type_=EXECUTION.c.stopped_at.type),
        lease_until=None,
    )
)
"""An attempt's outcome; it applies only while the row is still running at that attempt."""


class ExecutionQueue:
    def __init__(self, engine: AsyncEngine, lease_seconds: float) -> None:
        self._engine = engine
        self._lease = timedelta(seconds=lease_seconds)
        self._postgres = engine.dialect.name == "postgresql"

    @property
    def lease_seconds(self) -> float:
        return self._lease.total_seconds()

    async def claim(self, limit: int, ids: Sequence[str] | None = None) -> list[Claimed]:
        """Take up to ``limit`` due executions (only those of ``ids`` when given)."""
        now = utcnow()
        statement = (
            update(EXECUTION)
            .where(EXECUTION.c.id.in_(_due(now, limit, ids, lock=self._postgres)))
            .values(
                status="running",
                attempt=EXECUTION.c.attempt + 1,
                lease_until=now + self._lease,
                started_at=now,
            )
            .returning(*_CLAIM_COLUMNS)
        )
        if self._postgres:
            async with self._engine.begin() as connection:
                rows = (await connection.execute(statement)).all()
        else:
            # One statement is atomic by itself. In a transaction of SQLAlchemy's, SQLite's
            # write lock would be held from the UPDATE until the COMMIT, a second hand-off to
            # aiosqlite's thread that waits for a turn of a busy event loop (~7 ms under
            # bench/engine.py ``run-event``), and the API's inserts (store/writer.py) would wait
            # for it. In autocommit the statement commits as it finishes, in one hand-off.
            async with self._engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                rows = (await autocommit.execute(statement)).all()
        return [Claimed(*row) for row in rows]

    async def extend(self, claimed: Sequence[Claimed]) -> None:
        """Push the leases of executions still running further out (the worker is alive)."""
        if not claimed:
            return
        until = utcnow() + self._lease
        async with self._engine.begin() as connection:
            await connection.execute(
                update(EXECUTION)
                .where(
                    EXECUTION.c.id == bindparam("b_id"),
                    EXECUTION.c.attempt == bindparam("b_attempt"),
                    EXECUTION.c.status == "running",
                )
                .values(lease_until=until),
                [{"b_id": c.id, "b_attempt": c.attempt} for c in claimed],
            )

    async def finish(self, finished: Sequence[Finished]) -> None:
        """Record a batch of outcomes in one transaction."""
        if not finished:
            return
        now = utcnow()
        rows = [
            {
                "b_id": f.claimed.id,
                "b_attempt": f.claimed.attempt,
                "b_status": f.status,
                "b_results": f.results,
                "b_error": f.error,
                "b_available_at": f.retry_at or now,
                "b_stopped_at": None if f.status == "queued" else now,
            }
            for f in finished
        ]
        errors = [
            {
                "workspace_id": f.claimed.workspace_id,
                "environment": f.claimed.environment,
                "user_id": f.claimed.user_id,
                "workflow_id": f.claimed.workflow_id,
                "execution_id": f.claimed.id,
                "block_id": e.block_id,
                "block_name": e.block_name,
                "block_type": e.block_type,
                "message": e.message,
                "occurred_at": e.occurred_at,
            }
            for f in finished
            for e in f.errors
        ]
        if not self._postgres and not errors:
            # SQLite, nothing failed (the usual batch): one transaction in one hand-off to
            # aiosqlite's thread, so the write lock is not held across a turn of a busy event
            # loop while the API's inserts wait (sqlite_driver.in_one_hand_off).
            sql, parameters = positional(_FINISH, self._engine.dialect, rows)

            def record(connection: sqlite3.Connection) -> None:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    connection.executemany(sql, parameters)
                except BaseException:
                    connection.rollback()
                    raise
                connection.commit()

            async with self._engine.connect() as connection:
                await in_one_hand_off(connection, record)
            return
        async with self._engine.begin() as connection:
            await connection.execute(_FINISH, rows)
            if errors:
                await connection.execute(insert(WORKFLOW_ERROR), errors)

    async def next_due_in(self, ceiling: float) -> float:
        """Seconds until the next queued execution is due (at most ``ceiling``)."""
        async with self._engine.connect() as connection:
            soonest = await connection.scalar(
                select(EXECUTION.c.available_at)
                .where(EXECUTION.c.status == "queued")
                .order_by(EXECUTION.c.available_at)
                .limit(1)
            )
            lease = await connection.scalar(
                select(EXECUTION.c.lease_until)
                .where(EXECUTION.c.status == "running")
                .order_by(EXECUTION.c.lease_until)
                .limit(1)
            )
        now = utcnow()
        waits = [ceiling]
        for moment in (soonest, lease):
            if moment is not None:
                waits.append(max(0.0, (moment - now).total_seconds()))
        return min(waits)
