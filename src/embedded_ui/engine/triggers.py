"""Triggers turned into queued executions: custom events (`POST /run/event`), direct runs
(`POST /run/workflow`), reruns, and app webhooks. Everything here writes in the caller's
session, so the executions are stored in the same transaction that accepts the trigger."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any, cast

from jsonschema import Draft202012Validator, ValidationError
from referencing.exceptions import Unresolvable
from referencing.jsonschema import EMPTY_REGISTRY
from sqlalchemy import Table, Text, bindparam, delete, insert, select, type_coerce
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.errors import Conflict, NotFound, Unprocessable
from embedded_ui.store import (
    CustomEvent,
    Execution,
    IdempotencyRecord,
    Installation,
    ParentWorkflow,
    Scope,
    WorkflowVersion,
    bind_scope,
    new_ordered_id,
    utcnow,
)
from embedded_ui.store.inline import InlineReader

IDEMPOTENCY_WINDOW = timedelta(hours=24)
EXECUTION = cast(Table, Execution.__table__)

# The hot path of `POST /run/event` as Core statements built once, with the tenant filter
# written out (they run on the session's connection, outside the ORM's loader criteria).
_EVENT_BY_NAME = (
    (CustomEvent.workspace_id == bindparam("workspace_id"))
    & (CustomEvent.environment == bindparam("environment"))
    & (CustomEvent.name == bindparam("name"))
)
_EVENT_SCHEMA = select(CustomEvent.schema).where(_EVENT_BY_NAME)
_EVENT_SCHEMA_TEXT = select(type_coerce(CustomEvent.schema, Text)).where(_EVENT_BY_NAME)
"""The schema as stored (JSON text), for the hot path: its validator is cached by that text,
without parsing it and dumping it again on every event."""
_ACTIVE_INSTALLATIONS = (
    select(
        Installation.id,
        Installation.workflow_id,
        Installation.version_id,
        Installation.version_number,
    )
    .join(ParentWorkflow, ParentWorkflow.id == Installation.workflow_id)
    .where(
        (Installation.workspace_id == bindparam("workspace_id"))
        & (Installation.environment == bindparam("environment"))
        & (Installation.user_id == bindparam("user_id"))
        & Installation.active.is_(True)
        & ParentWorkflow.active.is_(True)
    )
    .order_by(ParentWorkflow.position, Installation.id)
)
_ONE_WORKFLOW = _ACTIVE_INSTALLATIONS.where(Installation.workflow_id == bindparam("workflow_id"))
_DEFINITION = select(WorkflowVersion.definition).where(WorkflowVersion.id == bindparam("id"))
_definitions: dict[str, dict[str, Any]] = {}
"""Released workflow definitions by version id: they never change, so every process keeps
the ones it has read."""


@lru_cache(maxsize=1024)
def _validator(schema_json: str) -> Draft202012Validator:
    # The empty registry resolves nothing the schema does not hold itself. jsonschema's
    # default one fetches any other "$ref" over HTTP, on the calling thread and with no
    # timeout: an event schema could make the service connect anywhere (SSRF) and stall its
    # event loop. definitions.py refuses such references when a file is applied.
    return Draft202012Validator(json.loads(schema_json), registry=EMPTY_REGISTRY)


def validator_for(schema: Mapping[str, Any]) -> Draft202012Validator:
    """A JSON Schema validator, built once per distinct schema (events' and actions' inputs)."""
    return _validator(json.dumps(schema, sort_keys=True))


def check_event_data(event: str, schema: Mapping[str, Any], data: Any) -> None:
    """422 naming the first field of ``data`` that does not match the event's schema."""
    validator = validator_for(schema)
    try:
        if validator.is_valid(data):  # the usual case, at a third of the cost of listing errors
            return
        problems = sorted(validator.iter_errors(data), key=lambda e: (list(e.path), e.message))
    except Unresolvable as exc:  # stored before definitions.py refused such references
        raise Unprocessable(
            f"The schema of event {event!r} references {exc.ref!r}, which is not inside it; "
            "apply the event again with a schema that holds everything it references."
        ) from None
    if problems:
        named = [(_where(e), e.message) for e in problems[:20]]
        raise Unprocessable(
            f"{named[0][0]}: {named[0][1]} (event {event!r})",
            field=named[0][0],
            fields=[f"{where}: {message}" for where, message in named],
        )


def _where(error: ValidationError) -> str:
    """``data.orderId`` for the field at fault; a missing required field is named too."""
    path = list(error.path)
    if error.validator == "required" and isinstance(error.instance, dict):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [p for p in required if p not in error.instance]
        path += missing[:1]
    return "data" + "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in path)


@dataclass(frozen=True, slots=True)
class Candidate:
    installation_id: str
    workflow_id: str
    version_id: str
    version_number: int


def matching(
    candidates: Sequence[Candidate], definitions: Mapping[str, dict[str, Any]], event: str
) -> list[Candidate]:
    """The candidates whose installed version's trigger is the custom event ``event``."""
    found = []
    for candidate in candidates:
        trigger = definitions.get(candidate.version_id, {}).get("trigger", {})
        if trigger.get("type") == "custom_event" and trigger.get("event") == event:
            found.append(candidate)
    return found


def execution_rows(
    scope: Scope,
    user_id: str,
    candidates: Sequence[Candidate],
    trigger_type: str,
    trigger: dict[str, Any],
    rerun_of: str | None = None,
) -> list[dict[str, Any]]:
    """One queued execution row per candidate, as both paths store them."""
    now = utcnow()
    return [
        {
            "id": new_ordered_id(),
            "workspace_id": scope.workspace_id,
            "environment": scope.environment,
            "user_id": user_id,
            "workflow_id": c.workflow_id,
            "installation_id": c.installation_id,
            "version_number": c.version_number,
            "trigger_type": trigger_type,
            "trigger": trigger,
            "status": "queued",
            "attempt": 0,
            "available_at": now,
            "results": [],
            "rerun_of": rerun_of,
            "created_at": now,
        }
        for c in candidates
    ]


def _tenant(scope: Scope) -> dict[str, str]:
    return {"workspace_id": scope.workspace_id, "environment": scope.environment}


def _remember_definitions(found: Sequence[tuple[str, dict[str, Any]]]) -> None:
    if len(_definitions) > 10_000:
        _definitions.clear()
    for version_id, definition in found:
        _definitions[version_id] = definition


def _known_definitions(version_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {v: _definitions[v] for v in version_ids if v in _definitions}


def event_rows_inline(
    reader: InlineReader, scope: Scope, user_id: str, event: str, data: Any
) -> list[dict[str, Any]] | None:
    """``Triggers.for_event``'s execution rows, read on the inline reader (api/hot.py) by the
    same statements, matching and row builder; ``None`` for anything but a success (an
    unknown event, data the schema refuses, SQLite not answering at once), which the
    ordinary path then decides and explains."""
    tenant = _tenant(scope)
    schemas = reader.rows(_EVENT_SCHEMA_TEXT, {**tenant, "name": event})
    if not schemas or schemas[0][0] is None or schemas[0][0] == "null":
        return None
    try:
        if not _validator(schemas[0][0]).is_valid(data):
            return None  # the ordinary path names the field (check_event_data)
    except Unresolvable:
        return None  # and explains this one too
    rows = reader.rows(_ACTIVE_INSTALLATIONS, {**tenant, "user_id": user_id})
    if rows is None:
        return None
    candidates = [Candidate(*row) for row in rows]
    read = []
    for version_id in {c.version_id for c in candidates} - _definitions.keys():
        definition = reader.rows(_DEFINITION, {"id": version_id})
        if definition is None:
            return None
        read += [(version_id, d) for (d,) in definition]
    _remember_definitions(read)
    found = matching(candidates, _known_definitions([c.version_id for c in candidates]), event)
    return execution_rows(scope, user_id, found, "custom_event", _as_object(data))


class Triggers:
    def __init__(self, session: AsyncSession, scope: Scope) -> None:
        bind_scope(session, scope)
        self._session = session
        self._scope = scope

    # -- idempotency ------------------------------------------------------------------------

    async def replay(self, key: str, request: Mapping[str, Any]) -> dict[str, Any] | None:
        """The answer already given to this key and request, or None to go ahead. The same
        key with a different request is refused rather than silently answered."""
        record = await self._session.scalar(
            select(IdempotencyRecord).where(IdempotencyRecord.key == key)
        )
        if record is None:
            return None
        if record.created_at < utcnow() - IDEMPOTENCY_WINDOW:
            await self._session.delete(record)
            await self._session.flush()
            return None
        if record.request_hash != _request_hash(request):
            raise Conflict(
                "Idempotency-Key: this key was used within 24 hours for a different request."
            )
        response: dict[str, Any] = record.response
        return response

    async def remember(
        self, key: str, request: Mapping[str, Any], response: dict[str, Any]
    ) -> None:
        """Store the answer with the executions; a concurrent request with the same key loses
        at the commit (unique key) and then replays this one."""
        self._session.add(
            IdempotencyRecord(
                workspace_id=self._scope.workspace_id,
                environment=self._scope.environment,
                key=key,
                request_hash=_request_hash(request),
                response=response,
            )
        )
        try:
            await self._session.flush()
        except IntegrityError:
            raise Conflict("Idempotency-Key: a request with this key is in progress.") from None

    # -- matching ---------------------------------------------------------------------------

    def _tenant(self) -> dict[str, str]:
        return _tenant(self._scope)

    async def _active_installations(
        self, user_id: str, workflow_id: str | None = None
    ) -> list[Candidate]:
        statement = _ACTIVE_INSTALLATIONS if workflow_id is None else _ONE_WORKFLOW
        params = {**self._tenant(), "user_id": user_id, "workflow_id": workflow_id}
        rows = (await self._session.execute(statement, params)).all()
        return [Candidate(*row) for row in rows]

    async def definitions(self, version_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        missing = [v for v in version_ids if v not in _definitions]
        if missing:
            rows = await self._session.execute(
                select(WorkflowVersion.id, WorkflowVersion.definition).where(
                    WorkflowVersion.id.in_(missing)
                )
            )
            _remember_definitions([(version_id, definition) for version_id, definition in rows])
        return _known_definitions(version_ids)

    async def event_schema(self, event: str) -> dict[str, Any]:
        schema = await self._session.scalar(_EVENT_SCHEMA, {**self._tenant(), "name": event})
        if schema is None:
            raise NotFound(f"No custom event named {event!r} in this environment.")
        found: dict[str, Any] = schema
        return found

    async def for_event(self, user_id: str, event: str, data: Any) -> list[str]:
        """One queued execution per active installation of the user whose installed
        version's trigger is this custom event."""
        check_event_data(event, await self.event_schema(event), data)
        candidates = await self._active_installations(user_id)
        definitions = await self.definitions([c.version_id for c in candidates])
        found = matching(candidates, definitions, event)
        return await self._queue(user_id, found, "custom_event", _as_object(data))

    async def for_workflow(
        self, user_id: str, workflow_id: str, data: Any, trigger_type: str = "manual"
    ) -> str:
        candidates = await self._active_installations(user_id, workflow_id)
        if not candidates:
            raise NotFound(f"The user has no active installation of workflow {workflow_id!r}.")
        (execution_id,) = await self._queue(user_id, candidates[:1], trigger_type, _as_object(data))
        return execution_id

    async def workflow_by_name(self, name: str) -> str:
        ids = list(
            await self._session.scalars(
                select(ParentWorkflow.id).where(
                    (ParentWorkflow.name == name) | (ParentWorkflow.key == name)
                )
            )
        )
        if not ids:
            raise NotFound(f"No workflow named {name!r} in this environment.")
        if len(ids) > 1:
            raise Unprocessable(
                f"workflowName: {name!r} names {len(ids)} workflows; pass workflowId.",
                field="workflowName",
            )
        return ids[0]

    async def for_webhook(
        self, candidates: Sequence[Candidate], user_id: str, payload: dict[str, Any]
    ) -> list[str]:
        return await self._queue(user_id, candidates, "app_event", payload)

    async def _queue(
        self,
        user_id: str,
        candidates: Sequence[Candidate],
        trigger_type: str,
        trigger: dict[str, Any],
        rerun_of: str | None = None,
    ) -> list[str]:
        """Store one queued execution per candidate (one Core INSERT); their ids."""
        if not candidates:
            return []
        rows = execution_rows(self._scope, user_id, candidates, trigger_type, trigger, rerun_of)
        await self._session.execute(insert(EXECUTION), rows)
        return [row["id"] for row in rows]

    async def rerun(self, workflow_id: str, execution_id: str, user_id: str | None) -> str:
        """A new execution of the same installation with the same trigger data."""
        statement = select(Execution).where(
            Execution.id == execution_id, Execution.workflow_id == workflow_id
        )
        if user_id is not None:
            statement = statement.where(Execution.user_id == user_id)
        original = await self._session.scalar(statement)
        if original is None:
            raise NotFound(f"No execution {execution_id!r} of workflow {workflow_id!r}.")
        candidates = await self._active_installations(original.user_id, workflow_id)
        if not candidates:
            raise Conflict("The workflow is not installed and active for this user any more.")
        (rerun_id,) = await self._queue(
            original.user_id, candidates[:1], "rerun", original.trigger, rerun_of=original.id
        )
        return rerun_id

    async def purge_idempotency(self) -> None:
        await self._session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.created_at < utcnow() - IDEMPOTENCY_WINDOW
            )
        )


def _as_object(data: Any) -> dict[str, Any]:
    """Triggers are stored as objects; other JSON values are wrapped (``{"value": ...}``)."""
    return data if isinstance(data, dict) else {"value": data}


def _request_hash(request: Mapping[str, Any]) -> str:
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
