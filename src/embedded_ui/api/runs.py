"""``/run/event`` and ``/run/workflow``: the ISV's backend starts workflows. The executions are
stored (queued) in the request's transaction, which commits before the answer is sent.

On SQLite, ``POST /run/event`` without an ``Idempotency-Key`` is usually answered by
:func:`run_event_inline` on the hot path (api/hot.py) instead: the same reads, checks, rows and
wake-up, through the inline reader and the group-commit writer."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.api.auth import Principal
from embedded_ui.api.deps import SERVICES, Users
from embedded_ui.api.schemas import error_responses
from embedded_ui.engine.runtime import EngineRuntime
from embedded_ui.engine.triggers import EXECUTION, Triggers, event_rows_inline
from embedded_ui.errors import InvalidRequest
from embedded_ui.store.inline import InlineReader
from embedded_ui.store.writer import InlineWriter
from embedded_ui.users import read_inline

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        max_length=255,
        description="Send the same key again (within 24 hours) and get the first answer "
        "back instead of new executions.",
    ),
]


class RunEventIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    event: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    data: Any = msgspec.field(default_factory=dict)


class RunWorkflowIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    workflow_id: str | None = None
    workflow_name: str | None = None
    data: Any = msgspec.field(default_factory=dict)


class RunOut(msgspec.Struct, rename="camel"):
    message: str
    execution_ids: list[str]


def _answer(execution_ids: list[str]) -> dict[str, Any]:
    count = len(execution_ids)
    message = f"Queued {count} execution{'s' if count != 1 else ''}."
    return {"message": message, "executionIds": execution_ids}


async def run_event_inline(
    reader: InlineReader,
    writer: InlineWriter,
    runtime: EngineRuntime,
    principal: Principal,
    body: bytes,
) -> tuple[int, bytes] | None:
    """``run_event`` (without an Idempotency-Key) for the hot path: the status and body it
    would answer, once the executions are committed and the workers woken; ``None`` for
    anything but a success, having written nothing, so that the ordinary path decides."""
    try:
        data = msgspec.json.decode(body, type=RunEventIn)
    except msgspec.MsgspecError:
        return None
    with reader.snapshot():  # the user and the event's workflows, as of one moment
        user = read_inline(reader, principal.scope, data.user_id)
        if user is None:
            return None
        rows = event_rows_inline(reader, principal.scope, user.id, data.event, data.data)
    if rows is None:
        return None
    if rows and not await writer.insert([(EXECUTION, row) for row in rows]):
        return None
    answer = _answer([row["id"] for row in rows])
    await runtime.queued(answer["executionIds"])
    return 202, msgspec.json.encode(msgspec.convert(answer, RunOut))


async def _commit_and_wake(
    request: Request[Principal, Any, Any], session: AsyncSession, execution_ids: list[str]
) -> None:
    """Commit now (the executions must be stored before we answer) and wake the workers."""
    await session.commit()
    await request.app.state.runtime.queued(execution_ids)


class RunController(Controller):
    path = "/run"
    tags = ["Runs"]
    dependencies = SERVICES

    @post(
        "/event",
        summary="Run a custom event",
        description="Runs every active workflow of the user whose trigger is this custom "
        "event. `data` is checked against the event's schema first (422 names the field). "
        "Answers once the executions are stored, with their ids.",
        status_code=202,
        responses=error_responses(400, 404, 409, 422),
    )
    async def run_event(
        self,
        data: JSONBody[RunEventIn],
        request: Request[Principal, Any, Any],
        user_service: Users,
        db_session: NamedDependency[AsyncSession],
        idempotency_key: IdempotencyKey = None,
    ) -> RunOut:
        triggers = Triggers(db_session, request.user.scope)
        fingerprint = {"route": "event", **msgspec.to_builtins(data)}
        if idempotency_key and (answer := await triggers.replay(idempotency_key, fingerprint)):
            return msgspec.convert(answer, RunOut)
        user = await user_service.read(data.user_id)
        answer = _answer(await triggers.for_event(user.id, data.event, data.data))
        if idempotency_key:
            await triggers.remember(idempotency_key, fingerprint, answer)
        await _commit_and_wake(request, db_session, answer["executionIds"])
        return msgspec.convert(answer, RunOut)

    @post(
        "/workflow",
        summary="Run one workflow of a user",
        description="Runs the user's installation of one workflow (by `workflowId` or "
        "`workflowName`) with `data` as its trigger data.",
        status_code=202,
        responses=error_responses(400, 404, 409, 422),
    )
    async def run_workflow(
        self,
        data: JSONBody[RunWorkflowIn],
        request: Request[Principal, Any, Any],
        user_service: Users,
        db_session: NamedDependency[AsyncSession],
        idempotency_key: IdempotencyKey = None,
    ) -> RunOut:
        if bool(data.workflow_id) == bool(data.workflow_name):
            raise InvalidRequest(
                "workflowId or workflowName: give exactly one.", field="workflowId"
            )
        triggers = Triggers(db_session, request.user.scope)
        fingerprint = {"route": "workflow", **msgspec.to_builtins(data)}
        if idempotency_key and (answer := await triggers.replay(idempotency_key, fingerprint)):
            return msgspec.convert(answer, RunOut)
        user = await user_service.read(data.user_id)
        workflow_id = data.workflow_id or await triggers.workflow_by_name(str(data.workflow_name))
        answer = _answer([await triggers.for_workflow(user.id, workflow_id, data.data)])
        if idempotency_key:
            await triggers.remember(idempotency_key, fingerprint, answer)
        await _commit_and_wake(request, db_session, answer["executionIds"])
        return msgspec.convert(answer, RunOut)
