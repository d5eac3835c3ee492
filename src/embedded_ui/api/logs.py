"""Logs, errors, reruns and analytics of a workflow's executions, and the GDPR erasure of a
user's logs. Every query runs under the API key's tenant scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter, QueryParameter
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui import audit
from embedded_ui.api.auth import Principal
from embedded_ui.api.deps import SERVICES, Users
from embedded_ui.api.runs import RunOut, _answer, _commit_and_wake
from embedded_ui.api.schemas import PageMeta, error_responses
from embedded_ui.engine.triggers import Triggers
from embedded_ui.errors import NotFound
from embedded_ui.store import Execution, ParentWorkflow, WorkflowError, iso_ms, utcnow
from embedded_ui.users import UserService

UserFilter = Annotated[
    str | None,
    QueryParameter(name="userId", description="Only this user's runs (id or username)."),
]


class LogEntryOut(msgspec.Struct, rename="camel"):
    execution_id: str
    user_id: str
    status: str
    trigger_type: str
    attempt: int
    created_at: str
    started_at: str | None
    stopped_at: str | None
    error: str | None
    results: list[dict[str, Any]]
    version: int


class LogsOut(msgspec.Struct):
    data: list[LogEntryOut]
    meta: PageMeta


class ErrorOut(msgspec.Struct, rename="camel"):
    workflow_id: str
    execution_id: str
    user_id: str
    block: str
    block_id: str
    block_type: str
    error_occurred_at: str
    message: str


class ErrorsOut(msgspec.Struct):
    data: list[ErrorOut]
    meta: PageMeta


class DayOut(msgspec.Struct):
    date: str
    queued: int
    running: int
    succeeded: int
    failed: int


class AnalyticsOut(msgspec.Struct):
    data: list[DayOut]


class ErasedOut(msgspec.Struct, rename="camel"):
    message: str
    executions_deleted: int
    errors_deleted: int


async def _workflow_exists(session: AsyncSession, workflow_id: str) -> None:
    if (
        await session.scalar(select(ParentWorkflow.id).where(ParentWorkflow.id == workflow_id))
        is None
    ):
        raise NotFound(f"No workflow {workflow_id!r} in this environment.")


async def _user_id(users: UserService, user_ref: str | None) -> str | None:
    """The id of the user named by `userId` (id or username), or None for every user."""
    return (await users.read(user_ref)).id if user_ref else None


class LogsController(Controller):
    path = "/workflows/{workflow_id:str}"
    tags = ["Logs"]
    dependencies = SERVICES

    @get(
        "/logs",
        summary="List a workflow's executions (logs)",
        description="Newest first unless `order=asc`; `error=true` keeps failed runs only. "
        "Each run lists its blocks' results (inputs and outputs with secrets redacted).",
        responses=error_responses(400, 404),
    )
    async def logs(
        self,
        workflow_id: FromPath[str],
        user_service: Users,
        db_session: NamedDependency[AsyncSession],
        user_ref: UserFilter = None,
        page: Annotated[int, Parameter(ge=1, le=1_000_000)] = 1,
        limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
        order: Annotated[Literal["asc", "desc"], Parameter()] = "desc",
        error: Annotated[bool, Parameter(description="Only failed executions.")] = False,
    ) -> LogsOut:
        await _workflow_exists(db_session, workflow_id)
        conditions = [Execution.workflow_id == workflow_id]
        if user_id := await _user_id(user_service, user_ref):
            conditions.append(Execution.user_id == user_id)
        if error:
            conditions.append(Execution.status == "failed")
        total = await db_session.scalar(select(func.count(Execution.id)).where(*conditions)) or 0
        sort = Execution.created_at.asc() if order == "asc" else Execution.created_at.desc()
        rows = await db_session.scalars(
            select(Execution)
            .where(*conditions)
            .order_by(sort, Execution.id)
            .offset((page - 1) * limit)
            .limit(limit)
        )
        return LogsOut(
            [
                LogEntryOut(
                    execution_id=e.id,
                    user_id=e.user_id,
                    status=e.status,
                    trigger_type=e.trigger_type,
                    attempt=e.attempt,
                    created_at=iso_ms(e.created_at),
                    started_at=iso_ms(e.started_at) if e.started_at else None,
                    stopped_at=iso_ms(e.stopped_at) if e.stopped_at else None,
                    error=e.error,
                    results=e.results,
                    version=e.version_number,
                )
                for e in rows
            ],
            PageMeta(page=page, limit=limit, total=total, has_more=page * limit < total),
        )

    @get(
        "/errors",
        summary="List a workflow's errors",
        description="Every block failure (each failed attempt), newest first.",
        responses=error_responses(400, 404),
    )
    async def errors(
        self,
        workflow_id: FromPath[str],
        user_service: Users,
        db_session: NamedDependency[AsyncSession],
        user_ref: UserFilter = None,
        page: Annotated[int, Parameter(ge=1, le=1_000_000)] = 1,
        limit: Annotated[int, Parameter(ge=1, le=100)] = 50,
    ) -> ErrorsOut:
        await _workflow_exists(db_session, workflow_id)
        conditions = [WorkflowError.workflow_id == workflow_id]
        if user_id := await _user_id(user_service, user_ref):
            conditions.append(WorkflowError.user_id == user_id)
        total = (
            await db_session.scalar(select(func.count(WorkflowError.id)).where(*conditions)) or 0
        )
        rows = await db_session.scalars(
            select(WorkflowError)
            .where(*conditions)
            .order_by(WorkflowError.occurred_at.desc(), WorkflowError.id.desc())
            .offset((page - 1) * limit)
            .limit(limit)
        )
        return ErrorsOut(
            [
                ErrorOut(
                    workflow_id=e.workflow_id,
                    execution_id=e.execution_id,
                    user_id=e.user_id,
                    block=e.block_name,
                    block_id=e.block_id,
                    block_type=e.block_type,
                    error_occurred_at=iso_ms(e.occurred_at),
                    message=e.message,
                )
                for e in rows
            ],
            PageMeta(page=page, limit=limit, total=total, has_more=page * limit < total),
        )

    @post(
        "/rerun/{execution_id:str}",
        summary="Run an execution again",
        description="Queues a new execution of the same installation with the same trigger "
        "data; the answer names it.",
        status_code=202,
        responses=error_responses(400, 404, 409),
    )
    async def rerun(
        self,
        workflow_id: FromPath[str],
        execution_id: FromPath[str],
        request: Request[Principal, Any, Any],
        user_service: Users,
        db_session: NamedDependency[AsyncSession],
        user_ref: UserFilter = None,
    ) -> RunOut:
        user_id = await _user_id(user_service, user_ref)
        triggers = Triggers(db_session, request.user.scope)
        answer = _answer([await triggers.rerun(workflow_id, execution_id, user_id)])
        await _commit_and_wake(request, db_session, answer["executionIds"])
        return msgspec.convert(answer, RunOut)

    @get(
        "/analytics",
        summary="Runs per status per day",
        description="For the last `days` days (UTC), oldest first, including days without runs.",
        responses=error_responses(400, 404),
    )
    async def analytics(
        self,
        workflow_id: FromPath[str],
        user_service: Users,
        db_session: NamedDependency[AsyncSession],
        user_ref: UserFilter = None,
        days: Annotated[int, Parameter(ge=1, le=90)] = 30,
    ) -> AnalyticsOut:
        await _workflow_exists(db_session, workflow_id)
        today = utcnow().date()
        since = today - timedelta(days=days - 1)
        start = datetime.combine(since, datetime.min.time(), tzinfo=UTC)
        conditions = [Execution.workflow_id == workflow_id, Execution.created_at >= start]
        if user_id := await _user_id(user_service, user_ref):
            conditions.append(Execution.user_id == user_id)
        rows = await db_session.execute(
            select(Execution.created_at, Execution.status).where(*conditions)
        )
        counts: dict[str, dict[str, int]] = {}
        for created_at, status in rows:
            day = counts.setdefault(created_at.date().isoformat(), {})
            day[status] = day.get(status, 0) + 1
        return AnalyticsOut(
            [
                DayOut(
                    date=(date := (since + timedelta(days=offset)).isoformat()),
                    queued=counts.get(date, {}).get("queued", 0),
                    running=counts.get(date, {}).get("running", 0),
                    succeeded=counts.get(date, {}).get("succeeded", 0),
                    failed=counts.get(date, {}).get("failed", 0),
                )
                for offset in range(days)
            ]
        )


class UserLogsController(Controller):
    path = "/users/{user_ref:str}/logs"
    tags = ["Logs"]
    dependencies = SERVICES

    @delete(
        "/",
        summary="Erase a user's logs (GDPR)",
        description="Deletes every execution record and error of the user. Idempotent; the "
        "audit log records the erasure and the counts, never the data.",
        status_code=200,
        responses=error_responses(404),
    )
    async def erase(
        self,
        user_ref: FromPath[str],
        request: Request[Principal, Any, Any],
        user_service: Users,
        db_session: NamedDependency[AsyncSession],
    ) -> ErasedOut:
        user = await user_service.read(user_ref)
        executions = await db_session.execute(
            sql_delete(Execution).where(Execution.user_id == user.id)
        )
        errors = await db_session.execute(
            sql_delete(WorkflowError).where(WorkflowError.user_id == user.id)
        )
        counts = {"executions": executions.rowcount, "errors": errors.rowcount}  # type: ignore[attr-defined]
        audit.record(
            db_session,
            actor=request.user.actor,
            action="logs.erase",
            workspace_id=request.user.scope.workspace_id,
            environment=request.user.scope.environment,
            target=user.id,
            **counts,
        )
        return ErasedOut("The user's logs were erased.", counts["executions"], counts["errors"])
