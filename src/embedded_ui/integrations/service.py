"""Applying integration files and releasing versions, within one workspace environment.

Apply is idempotent: a file that matches what is stored changes nothing. A changed workflow
gets a draft (or its draft is updated); releasing turns each draft into the next version
number. Released versions are never written again — a guard on the model enforces it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from embedded_ui.errors import Conflict, NotFound, Unprocessable
from embedded_ui.integrations.definitions import DefinitionSet, IntegrationSpec, WorkflowSpec
from embedded_ui.store import (
    CustomEvent,
    EnvironmentState,
    Integration,
    ParentWorkflow,
    Scope,
    WorkflowVersion,
    bind_scope,
    utcnow,
)


@event.listens_for(Session, "before_flush")
def _released_versions_never_change(session: Session, *_: Any) -> None:
    for instance in session.dirty:
        if (
            isinstance(instance, WorkflowVersion)
            and session.is_modified(instance)
            and _released_before_this_flush(instance)
        ):
            raise Conflict(f"Version {instance.number} is released and cannot change.")
    for instance in session.deleted:
        if isinstance(instance, WorkflowVersion) and _released_before_this_flush(instance):
            raise Conflict(f"Version {instance.number} is released and cannot be deleted.")


def _released_before_this_flush(version: WorkflowVersion) -> bool:
    history = inspect(version).attrs.number.history
    # The stored value, before this flush: in `deleted` if changed, else in `unchanged`.
    previous: list[int | None] = list(history.deleted or history.unchanged or ())
    return bool(previous) and previous[0] is not None


@dataclass(frozen=True, slots=True)
class Change:
    """One line of what apply did (or would do)."""

    action: str  # create | update | draft | unchanged | release
    kind: str  # event | integration | workflow
    key: str
    detail: str = ""

    def render(self) -> str:
        sign = {"create": "+", "update": "~", "draft": "~", "release": "^"}.get(self.action, "=")
        text = f"{sign} {self.kind} {self.key}: {self.action}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass(slots=True)
class ApplyResult:
    changes: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(change.action != "unchanged" for change in self.changes)


class IntegrationService:
    def __init__(self, session: AsyncSession, scope: Scope) -> None:
        bind_scope(session, scope)
        self._session = session
        self._scope = scope

    def _owned(self) -> dict[str, str]:
        return {"workspace_id": self._scope.workspace_id, "environment": self._scope.environment}

    async def apply(
        self, definitions: DefinitionSet, *, dry_run: bool = False, release: bool = False
    ) -> ApplyResult:
        """Bring the stored definitions in line with the files. With ``dry_run`` nothing is
        written (the caller rolls back); the result says what would change."""
        result = ApplyResult()
        await self._apply_events(definitions, result)
        known_events = set(await self._session.scalars(select(CustomEvent.name))) | {
            e.name for e in definitions.events
        }
        for position, spec in enumerate(definitions.integrations):
            await self._apply_integration(spec, position, known_events, result)
        if release:
            released = await self.release([c.key for c in result.changes if c.action == "draft"])
            result.changes.extend(released)
        elif result.changed:
            await self._bump_revision()
        if dry_run:
            await self._session.rollback()
        return result

    async def _apply_events(self, definitions: DefinitionSet, result: ApplyResult) -> None:
        existing = {e.name: e for e in await self._session.scalars(select(CustomEvent))}
        for spec in definitions.events:
            stored = existing.get(spec.name)
            if stored is None:
                self._session.add(CustomEvent(name=spec.name, schema=spec.schema, **self._owned()))
                result.changes.append(Change("create", "event", spec.name))
            elif stored.schema != spec.schema:
                stored.schema = spec.schema
                result.changes.append(Change("update", "event", spec.name, "schema"))
            else:
                result.changes.append(Change("unchanged", "event", spec.name))
        await self._session.flush()

    async def _apply_integration(
        self, spec: IntegrationSpec, position: int, known_events: set[str], result: ApplyResult
    ) -> None:
        for workflow in spec.workflows:
            trigger = workflow.definition["trigger"]
            if trigger["type"] == "custom_event" and trigger["event"] not in known_events:
                raise Unprocessable(
                    f"{spec.source}: workflow {workflow.key}: trigger.event: no custom event "
                    f"{trigger['event']!r}; declare it under `events:`."
                )
        integration = await self._session.scalar(
            select(Integration).where(Integration.key == spec.key)
        )
        if integration is None:
            integration = Integration(
                key=spec.key, app=spec.app, name=spec.name, position=position, **self._owned()
            )
            self._session.add(integration)
            await self._session.flush()
            result.changes.append(Change("create", "integration", spec.key, spec.app))
        elif integration.app != spec.app:
            raise Conflict(
                f"{spec.source}: integration {spec.key}: its app is {integration.app!r} and cannot "
                f"become {spec.app!r}; use a new integration key."
            )
        elif (integration.name, integration.position) != (spec.name, position):
            integration.name, integration.position = spec.name, position
            result.changes.append(Change("update", "integration", spec.key, "name or order"))
        else:
            result.changes.append(Change("unchanged", "integration", spec.key))
        for index, workflow in enumerate(spec.workflows):
            await self._apply_workflow(integration, workflow, index, result)

    async def _apply_workflow(
        self, integration: Integration, spec: WorkflowSpec, position: int, result: ApplyResult
    ) -> None:
        parent = await self._session.scalar(
            select(ParentWorkflow).where(ParentWorkflow.key == spec.key)
        )
        if parent is None:
            parent = ParentWorkflow(
                integration_id=integration.id,
                key=spec.key,
                name=spec.name,
                active=spec.active,
                position=position,
                **self._owned(),
            )
            self._session.add(parent)
            await self._session.flush()
        elif parent.integration_id != integration.id:
            raise Conflict(f"workflow {spec.key}: already belongs to another integration.")
        else:
            parent.name, parent.active, parent.position = spec.name, spec.active, position
        versions = list(
            await self._session.scalars(
                select(WorkflowVersion).where(WorkflowVersion.workflow_id == parent.id)
            )
        )
        draft = next((v for v in versions if v.number is None), None)
        released = max(
            (v for v in versions if v.number is not None), key=lambda v: v.number or 0, default=None
        )
        latest = draft or released
        if latest is not None and latest.content_hash == spec.content_hash:
            result.changes.append(Change("unchanged", "workflow", spec.key))
            return
        if (
            draft is not None
            and released is not None
            and released.content_hash == spec.content_hash
        ):
            await self._session.delete(draft)  # the files went back to the released version
            result.changes.append(Change("update", "workflow", spec.key, "draft discarded"))
            return
        detail = _change_detail(latest, spec)
        if draft is None:
            draft = WorkflowVersion(
                workflow_id=parent.id, number=None, **self._owned(), **_content(spec)
            )
            self._session.add(draft)
        else:
            for name, value in _content(spec).items():
                setattr(draft, name, value)
        await self._session.flush()
        result.changes.append(Change("draft", "workflow", spec.key, detail))

    async def release(self, workflow_keys: Sequence[str] | None = None) -> list[Change]:
        """Turn drafts into released versions (all drafts when no keys are given)."""
        query = (
            select(WorkflowVersion, ParentWorkflow.key)
            .join(ParentWorkflow, ParentWorkflow.id == WorkflowVersion.workflow_id)
            .where(WorkflowVersion.number.is_(None))
        )
        if workflow_keys is not None:
            query = query.where(ParentWorkflow.key.in_(workflow_keys))
        changes = []
        for draft, key in (await self._session.execute(query)).all():
            highest = await self._session.scalar(
                select(func.max(WorkflowVersion.number)).where(
                    WorkflowVersion.workflow_id == draft.workflow_id
                )
            )
            draft.number = (highest or 0) + 1
            draft.released_at = utcnow()
            changes.append(Change("release", "workflow", key, f"version {draft.number}"))
        await self._bump_revision()
        await self._session.flush()
        return changes

    async def _bump_revision(self) -> None:
        """Tell every process that this environment's integrations changed."""
        state = await self._session.get(
            EnvironmentState, (self._scope.workspace_id, self._scope.environment)
        )
        if state is None:
            self._session.add(EnvironmentState(**self._owned(), revision=1))
        else:
            state.revision += 1

    async def release_workflows(self, workflow_ids: Sequence[str]) -> list[Change]:
        keys = list(
            await self._session.scalars(
                select(ParentWorkflow.key).where(ParentWorkflow.id.in_(workflow_ids))
            )
        )
        if len(keys) != len(set(workflow_ids)):
            raise NotFound("One or more workflowIds are not workflows of this environment.")
        return await self.release(keys)

    async def events(self) -> list[CustomEvent]:
        return list(await self._session.scalars(select(CustomEvent).order_by(CustomEvent.name)))


def _change_detail(latest: WorkflowVersion | None, spec: WorkflowSpec) -> str:
    """Say what a new draft changes, so a dry run is worth reading."""
    if latest is None:
        return "new workflow"
    changed = _field_difference(latest.fields, spec.fields)
    if changed:
        return changed
    if latest.definition == spec.definition:
        return "renamed"
    return "blocks changed"


def _content(spec: WorkflowSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "definition": spec.definition,
        "fields": spec.fields,
        "content_hash": spec.content_hash,
    }


def field_signature(fields: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """What the upgrade rule compares: each configurable field's identity and contract."""
    return {
        f"{f['blockId']}.{f['name']}": (
            f["type"],
            f["required"],
            tuple(sorted(str(o["value"]) for o in f.get("options") or [])),
            f.get("optionsFrom"),
        )
        for f in fields
    }


def differing_fields(
    old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> list[str]:
    before, after = field_signature(old), field_signature(new)
    return sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )


def _field_difference(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> str:
    names = differing_fields(old, new)
    return f"configurable fields changed: {', '.join(names)}" if names else ""
