"""engine/queue.py's claim, on real SQLite and PostgreSQL: which executions it takes, in which
order, and that SQLite never sorts the whole backlog to find them."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from embedded_ui.engine.queue import EXECUTION, ExecutionQueue, _due
from embedded_ui.settings import Settings
from embedded_ui.store import (
    Integration,
    ParentWorkflow,
    User,
    Workspace,
    create_engine,
    migrate,
    new_ordered_id,
    utcnow,
)

ENV = "development"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=database_url))
    await migrate(engine)
    yield engine
    await engine.dispose()


async def _workflow(engine: AsyncEngine) -> tuple[str, str, str]:
    """A workspace, a user and a parent workflow for the executions to belong to."""
    workspace, user, integration, workflow = (new_ordered_id() for _ in range(4))
    tenant = {"workspace_id": workspace, "environment": ENV}
    async with engine.begin() as connection:
        await connection.execute(insert(Workspace), {"id": workspace, "name": f"queue-{workspace}"})
        await connection.execute(insert(User), {"id": user, "username": "merchant", **tenant})
        await connection.execute(
            insert(Integration),
            {"id": integration, "key": "shop", "app": "sandbox", "name": "Shop", **tenant},
        )
        await connection.execute(
            insert(ParentWorkflow),
            {"id": workflow, "integration_id": integration, "key": "k", "name": "W", **tenant},
        )
    return workspace, user, workflow


def _execution(ids: tuple[str, str, str], **values: Any) -> dict[str, Any]:
    workspace, user, workflow = ids
    return {
        "id": new_ordered_id(),
        "workspace_id": workspace,
        "environment": ENV,
        "user_id": user,
        "workflow_id": workflow,
        "installation_id": "i",
        "version_number": 1,
        "trigger_type": "custom_event",
        "trigger": {},
        "results": [],
        **values,
    }


async def test_claim_takes_expired_leases_then_due_executions_in_order(
    engine: AsyncEngine,
) -> None:
    ids = await _workflow(engine)
    now = utcnow()
    ago = [now - timedelta(seconds=s) for s in range(10)]
    rows = {
        "due-3": _execution(ids, available_at=ago[3]),
        "due-9": _execution(ids, available_at=ago[9]),
        "due-1": _execution(ids, available_at=ago[1]),
        "later": _execution(ids, available_at=now + timedelta(hours=1)),
        "lost": _execution(  # its worker died: the lease ran out
            ids, status="running", attempt=1, available_at=ago[0], lease_until=ago[2]
        ),
        "held": _execution(  # another worker holds it
            ids,
            status="running",
            attempt=1,
            available_at=ago[9],
            lease_until=ago[0] + timedelta(minutes=5),
        ),
        "done": _execution(ids, status="succeeded", available_at=ago[9]),
    }
    async with engine.begin() as connection:
        for row in rows.values():  # one by one: the rows set different columns
            await connection.execute(insert(EXECUTION), row)
    name = {row["id"]: key for key, row in rows.items()}
    queue = ExecutionQueue(engine, lease_seconds=30)

    first = {name[c.id]: c.attempt for c in await queue.claim(3)}
    assert first == {"lost": 2, "due-9": 1, "due-3": 1}  # the most recently due one waits
    rest = await queue.claim(10)
    assert [name[c.id] for c in rest] == ["due-1"]
    assert await queue.claim(10) == []
    # Only the ones asked for, when asked by id (a SAQ job's executions).
    async with engine.begin() as connection:
        await connection.execute(
            update(EXECUTION)
            .where(EXECUTION.c.id.in_([rows["due-3"]["id"], rows["due-1"]["id"]]))
            .values(status="queued", lease_until=None)
        )
    only = await queue.claim(10, [rows["due-1"]["id"], rows["later"]["id"]])
    assert [name[c.id] for c in only] == ["due-1"]


def test_sqlite_finds_due_executions_by_index_without_sorting_the_backlog(
    sqlite_template: Any,
) -> None:
    """The claim used to read and sort every due row (a multi-index OR, then a temporary
    B-tree for the order) inside the write transaction: ~13 ms a claim with 50,000 waiting."""
    statement = (
        update(EXECUTION)
        .where(EXECUTION.c.id.in_(_due(utcnow(), 32, None, lock=False)))
        .values(status="running")
    )
    sql = str(statement.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    with sqlite3.connect(sqlite_template) as connection:
        plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}")]
    assert not [step for step in plan if "TEMP B-TREE" in step or "MULTI-INDEX OR" in step], plan
    by_index = "SEARCH execution USING INDEX ix_execution_status_available_at"
    assert f"{by_index} (status=? AND available_at<?)" in plan, plan
