"""Users' installations (child workflows) and the views the API and the page are built from.

Listing a user's integrations costs a fixed number of statements whatever the number of
integrations or users: one for the environment's revision (the released workflows come from
the per-process cache while it is unchanged), one for that user's installations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import msgspec
from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.catalog import App
from embedded_ui.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from embedded_ui.integrations.cache import (
    CachedRelease,
    EncodedIntegration,
    EncodedListing,
    ReleasedCache,
)
from embedded_ui.integrations.service import differing_fields
from embedded_ui.integrations.values import check_values
from embedded_ui.integrations.views import (
    BlockView,
    IntegrationView,
    UserWorkflowView,
    WorkflowView,
)
from embedded_ui.store import (
    Credential,
    EnvironmentState,
    Installation,
    Integration,
    ParentWorkflow,
    PendingInstallation,
    Scope,
    User,
    WorkflowVersion,
    bind_scope,
    utcnow,
)
from embedded_ui.store.inline import InlineReader, read_rows
from embedded_ui.users import UserRecord

PENDING_LIFETIME = timedelta(hours=24)


AnyUser = User | UserRecord
"""Only the user's id is read: an ORM entity or a plain record (``UserService.read``)."""

# The listing's reads as Core statements with the tenant filter written out: they run on the
# session's connection, so the ORM's tenant scope (store/db.py) does not apply to them, and
# they skip the ORM's per-statement work (entities, loader criteria) on the hottest route.
_REVISION = select(EnvironmentState.revision).where(
    (EnvironmentState.workspace_id == bindparam("workspace_id"))
    & (EnvironmentState.environment == bindparam("environment"))
)
_INSTALLED_STATES = select(
    Installation.workflow_id, Installation.version_number, Installation.active
).where(
    (Installation.workspace_id == bindparam("workspace_id"))
    & (Installation.environment == bindparam("environment"))
    & (Installation.user_id == bindparam("user_id"))
)
# Both in one statement, for the listing: every statement is a round trip to the database
# (on SQLite a hand-off to aiosqlite's thread), which costs more than the query itself. One row
# per installation (the revision repeated), or one row with NULLs when there is none.
_REVISION_AND_INSTALLED = (
    select(
        EnvironmentState.revision,
        Installation.workflow_id,
        Installation.version_number,
        Installation.active,
    )
    .select_from(EnvironmentState)
    .outerjoin(
        Installation,
        (Installation.workspace_id == EnvironmentState.workspace_id)
        & (Installation.environment == EnvironmentState.environment)
        & (Installation.user_id == bindparam("user_id")),
    )
    .where(
        (EnvironmentState.workspace_id == bindparam("workspace_id"))
        & (EnvironmentState.environment == bindparam("environment"))
    )
)
_encode = msgspec.json.Encoder().encode
# `{"data": [...]}`, the envelope of the listing routes (api/integrations.py).
_LIST_HEAD, _LIST_TAIL = b'{"data":[', b"]}"


class WebhookHooks(Protocol):
    """What installing and uninstalling do about app webhooks (the engine's registrar)."""

    async def installed(
        self,
        scope: Scope,
        installations: Sequence[Installation],
        released: Mapping[str, ReleasedWorkflow],
    ) -> None: ...

    async def uninstalled(self, scope: Scope, installation: Installation) -> None: ...

    def manual_for(
        self,
        scope: Scope,
        installation: Installation,
        app_key: str,
        definition: Mapping[str, Any],
    ) -> Any | None:
        """What the merchant registers by hand (``url``, ``secret``, ``app_name``,
        ``app_signs``), or None when the app's trigger registers itself."""
        ...


@dataclass(frozen=True, slots=True)
class ReleasedWorkflow:
    """A parent workflow at its latest released version, with its integration."""

    workflow_id: str
    name: str
    integration_id: str
    integration_name: str
    app: str
    version_id: str
    version: int
    definition: dict[str, Any]
    fields: list[dict[str, Any]]

    @property
    def needs_credential(self) -> bool:
        trigger_needs = self.definition["trigger"]["type"] == "app_event"
        return trigger_needs or any(b["type"] == "app_action" for b in self.definition["blocks"])


class InstallationService:
    def __init__(
        self,
        session: AsyncSession,
        scope: Scope,
        apps: Mapping[str, App],
        public_url: str,
        cache: ReleasedCache | None = None,
        reader: InlineReader | None = None,
        webhooks: WebhookHooks | None = None,
    ) -> None:
        bind_scope(session, scope)
        self._webhooks = webhooks
        self._session = session
        self._scope = scope
        self._apps = apps
        self._public_url = public_url
        self._cache = cache
        self._reader = reader

    # -- reading ------------------------------------------------------------------------

    async def released(self, integration_id: str | None = None) -> list[ReleasedWorkflow]:
        """Active parent workflows at their latest released version, in display order."""
        entry = await self._release()
        if integration_id is None:
            return entry.workflows
        return [w for w in entry.workflows if w.integration_id == integration_id]

    async def _rows(self, statement: Select[Any], params: dict[str, str]) -> Sequence[Any]:
        """A Core read (store/inline.py): inline on SQLite while the session has not written;
        else on its connection, after a flush, as the ORM query it replaces would autoflush
        (a read in the same transaction as a change, an apply then a listing, sees it)."""
        return await read_rows(self._session, self._reader, statement, params)

    def _tenant(self) -> dict[str, str]:
        return {"workspace_id": self._scope.workspace_id, "environment": self._scope.environment}

    async def _release(self, revision: int | None = None) -> CachedRelease:
        """The environment's released workflows at ``revision`` (read when not given)."""
        if revision is None:
            rows = await self._rows(_REVISION, self._tenant())
            revision = rows[0][0] if rows else 0
        key = (self._scope.workspace_id, self._scope.environment)
        entry = self._cache.get(key, revision or 0) if self._cache else None
        if entry is None:
            entry = CachedRelease(revision or 0, await self._query_released())
            if self._cache is not None:
                self._cache.put(key, entry)
        return entry

    async def _query_released(self) -> list[ReleasedWorkflow]:
        latest = (
            select(WorkflowVersion.workflow_id, func.max(WorkflowVersion.number).label("number"))
            .where(WorkflowVersion.number.is_not(None))
            .group_by(WorkflowVersion.workflow_id)
            .subquery()
        )
        query = (
            select(
                ParentWorkflow.id,
                WorkflowVersion.name,  # the released name: a draft's rename is not shown yet
                Integration.id,
                Integration.name,
                Integration.app,
                WorkflowVersion.id,
                WorkflowVersion.number,
                WorkflowVersion.definition,
                WorkflowVersion.fields,
            )
            .join(Integration, Integration.id == ParentWorkflow.integration_id)
            .join(latest, latest.c.workflow_id == ParentWorkflow.id)
            .join(
                WorkflowVersion,
                (WorkflowVersion.workflow_id == latest.c.workflow_id)
                & (WorkflowVersion.number == latest.c.number),
            )
            .where(ParentWorkflow.active.is_(True))
            .order_by(Integration.position, Integration.key, ParentWorkflow.position)
        )
        rows = (await self._session.execute(query)).all()
        return [ReleasedWorkflow(*row) for row in rows]

    async def installations_of(self, user: AnyUser) -> dict[str, Installation]:
        rows = await self._session.scalars(
            select(Installation).where(Installation.user_id == user.id)
        )
        return {installation.workflow_id: installation for installation in rows}

    async def manual_webhooks(self, installations: Sequence[Installation]) -> dict[str, Any]:
        """Workflow id → the webhook the merchant must register by hand in the app (URL and
        secret), for installations whose installed version's trigger is a manual app event.
        One statement, for the installed versions' definitions."""
        if self._webhooks is None or not installations:
            return {}
        released = {w.workflow_id: w for w in await self.released()}
        # Only apps with a trigger registered by hand can need anything (no query otherwise).
        wanted = [
            i
            for i in installations
            if i.workflow_id in released
            and i.version_id
            and (app := self._apps.get(released[i.workflow_id].app)) is not None
            and app.manual_webhooks
        ]
        if not wanted:
            return {}
        rows = await self._session.execute(
            select(WorkflowVersion.id, WorkflowVersion.definition).where(
                WorkflowVersion.id.in_({i.version_id for i in wanted})
            )
        )
        definitions = {row[0]: row[1] for row in rows.all()}
        found: dict[str, Any] = {}
        for installation in wanted:
            definition = definitions.get(installation.version_id)
            if definition is None:
                continue
            manual = self._webhooks.manual_for(
                self._scope, installation, released[installation.workflow_id].app, definition
            )
            if manual is not None:
                found[installation.workflow_id] = manual
        return found

    def _icon(self, app: str) -> str:
        return f"{self._public_url}/apps/{app}/icon.svg"

    def _blocks(self, workflow: ReleasedWorkflow) -> list[BlockView]:
        trigger = workflow.definition["trigger"]
        builtin = f"{self._public_url}/static/icons"
        app_icon = self._icon(workflow.app)
        blocks = [
            BlockView(
                id="trigger",
                name=trigger["name"],
                type=trigger["type"],
                icon=app_icon if trigger["type"] == "app_event" else f"{builtin}/custom-event.svg",
            )
        ]
        for block in workflow.definition["blocks"]:
            icon = (
                app_icon
                if block["type"] == "app_action"
                else f"{builtin}/{block['type'].replace('_', '-')}.svg"
            )
            blocks.append(BlockView(block["id"], block["name"], block["type"], icon))
        return blocks

    def _user_workflow_view(
        self, workflow: ReleasedWorkflow, installed: Installation | None, **extra: str
    ) -> UserWorkflowView:
        view = self.workflow_view(workflow, installed, UserWorkflowView, **extra)
        assert isinstance(view, UserWorkflowView)
        return view

    def workflow_view(
        self,
        workflow: ReleasedWorkflow,
        installed: Installation | None,
        view: type[WorkflowView] = WorkflowView,
        **extra: str,
    ) -> WorkflowView:
        return view(
            workflow_id=workflow.workflow_id,
            name=workflow.name,
            installed=installed is not None,
            version=workflow.version,
            installed_version=installed.version_number if installed else None,
            active=bool(installed and installed.active),
            blocks=self._blocks(workflow),
            **extra,
        )

    def _view(
        self, entry: CachedRelease, workflow: ReleasedWorkflow, installed: Installation | None
    ) -> WorkflowView:
        if installed is not None:
            return self.workflow_view(workflow, installed)
        view = entry.uninstalled_views.get(workflow.workflow_id)
        if view is None:
            view = entry.uninstalled_views[workflow.workflow_id] = self.workflow_view(
                workflow, None
            )
        return view

    def _integration_view(self, workflow: ReleasedWorkflow) -> IntegrationView:
        """The integration of ``workflow``, not installed and with no workflows yet."""
        app = self._apps.get(workflow.app)
        return IntegrationView(
            integration_id=workflow.integration_id,
            app=workflow.app,
            name=workflow.integration_name,
            description=app.description if app else "",
            categories=list(app.categories) if app else [],
            icon=self._icon(workflow.app),
            installed=False,
            workflows=[],
        )

    async def integrations_for(
        self, user: AnyUser, integration_id: str | None = None
    ) -> list[IntegrationView]:
        cached = await self._release()
        released = [
            w
            for w in cached.workflows
            if integration_id is None or w.integration_id == integration_id
        ]
        installed = await self.installations_of(user)
        grouped: dict[str, IntegrationView] = {}
        for workflow in released:
            entry = grouped.get(workflow.integration_id)
            if entry is None:
                entry = grouped[workflow.integration_id] = self._integration_view(workflow)
            view = self._view(cached, workflow, installed.get(workflow.workflow_id))
            entry.installed = entry.installed or view.installed
            entry.workflows.append(view)
        if integration_id is not None and not grouped:
            raise NotFound(f"No released integration {integration_id!r} in this environment.")
        return list(grouped.values())

    async def integrations_json(self, user: AnyUser, integration_id: str | None = None) -> bytes:
        """``{"data": integrations_for(user, integration_id)}`` as JSON, byte for byte what
        encoding those views gives, without building or encoding them on every request.

        The answer is the same for every user but for the workflows the user installed: each
        integration and each workflow is encoded once per environment revision (kept with the
        released workflows, so never older than they are), and only the user's installations,
        read on every request, are encoded again and spliced in. A listing of 250 workflows
        was ~116 KB of JSON built from ~1,000 objects on every request."""
        params = {**self._tenant(), "user_id": user.id}
        rows = await self._rows(_REVISION_AND_INSTALLED, params)
        if not rows:  # no revision yet (nothing ever applied): read the installations alone
            rows = [(0, *row) for row in await self._rows(_INSTALLED_STATES, params)]
        revision, installed = _listing_state(rows)
        cached = await self._release(revision)
        encoded = cached.encoded
        if encoded is None:
            encoded = cached.encoded = self._encode_listing(cached)
        body = _splice_listing(encoded, installed, integration_id)
        if body is None:
            raise NotFound(f"No released integration {integration_id!r} in this environment.")
        return body

    def _encode_listing(self, cached: CachedRelease) -> EncodedListing:
        grouped: dict[str, tuple[IntegrationView, list[tuple[WorkflowView, bytes]]]] = {}
        for workflow in cached.workflows:
            group = grouped.get(workflow.integration_id)
            if group is None:
                group = grouped[workflow.integration_id] = (self._integration_view(workflow), [])
            view = self._view(cached, workflow, None)
            group[1].append((view, _encode(view)))
        integrations = []
        for integration_id, (integration, workflows) in grouped.items():
            heads = (_open_integration(integration, False), _open_integration(integration, True))
            plain = b"".join((heads[0], b",".join(json for _, json in workflows), b"]}"))
            ids = frozenset(workflow.workflow_id for workflow, _ in workflows)
            integrations.append(
                EncodedIntegration(integration_id, heads, tuple(workflows), ids, plain)
            )
        skeleton = [_LIST_HEAD]
        for index, encoded in enumerate(integrations):
            skeleton.extend((b",", encoded.plain) if index else (encoded.plain,))
        skeleton.append(_LIST_TAIL)
        return EncodedListing(
            integrations=tuple(integrations),
            position={
                workflow_id: index
                for index, encoded in enumerate(integrations)
                for workflow_id in encoded.workflow_ids
            },
            plain=b"".join(skeleton),
            skeleton=tuple(skeleton),
        )

    async def workflows_for(
        self, user: AnyUser, workflow_id: str | None = None
    ) -> list[UserWorkflowView]:
        released = await self.released()
        installed = await self.installations_of(user)
        views = [
            self._user_workflow_view(
                w,
                installed.get(w.workflow_id),
                integration_id=w.integration_id,
                app=w.app,
            )
            for w in released
            if workflow_id is None or w.workflow_id == workflow_id
        ]
        if workflow_id is not None and not views:
            raise NotFound(f"No released workflow {workflow_id!r} in this environment.")
        return views

    async def workflow(self, workflow_id: str) -> ReleasedWorkflow:
        found = [w for w in await self.released() if w.workflow_id == workflow_id]
        if not found:
            raise NotFound(f"No released workflow {workflow_id!r} in this environment.")
        return found[0]

    async def versions(self, workflow_id: str) -> list[WorkflowVersion]:
        parent = await self._session.scalar(
            select(ParentWorkflow.id).where(ParentWorkflow.id == workflow_id)
        )
        if parent is None:
            raise NotFound(f"No workflow {workflow_id!r} in this environment.")
        rows = await self._session.scalars(
            select(WorkflowVersion)
            .where(WorkflowVersion.workflow_id == workflow_id)
            .order_by(WorkflowVersion.number.is_(None), WorkflowVersion.number)
        )
        return list(rows)

    async def users_of(
        self, workflow_id: str, page: int, limit: int
    ) -> tuple[list[tuple[Installation, User]], int]:
        await self.versions(workflow_id)  # 404 for a workflow of another tenant
        total = await self._session.scalar(
            select(func.count())
            .select_from(Installation)
            .where(Installation.workflow_id == workflow_id)
        )
        rows = await self._session.execute(
            select(Installation, User)
            .join(User, User.id == Installation.user_id)
            .where(Installation.workflow_id == workflow_id)
            .order_by(Installation.created_at, Installation.id)
            .offset((page - 1) * limit)
            .limit(limit)
        )
        return [(row[0], row[1]) for row in rows.all()], total or 0

    # -- changing -------------------------------------------------------------------------

    async def _installed(self, user: AnyUser, workflow_id: str) -> Installation:
        installation = await self._session.scalar(
            select(Installation).where(
                Installation.user_id == user.id, Installation.workflow_id == workflow_id
            )
        )
        if installation is None:
            raise NotFound(f"Workflow {workflow_id!r} is not installed for this user.")
        return installation

    async def set_active(self, user: AnyUser, workflow_id: str, active: bool) -> Installation:
        installation = await self._installed(user, workflow_id)
        if installation.active != active:
            installation.active = active
            installation.updated_at = utcnow()
        return installation

    async def deactivate_all(self, user: AnyUser) -> int:
        result = await self._session.execute(
            update(Installation)
            .where(Installation.user_id == user.id, Installation.active.is_(True))
            .values(active=False, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def unsubscribe_all(self, user: AnyUser) -> None:
        """Unsubscribe the user's installations from their apps' webhooks before the user is
        deleted (best effort, as ``uninstall`` does; the rows then go with the user). After
        the delete, the credentials the apps need for it are gone."""
        if self._webhooks is None:
            return
        for installation in (await self.installations_of(user)).values():
            await self._webhooks.uninstalled(self._scope, installation)

    async def uninstall(self, user: AnyUser, workflow_id: str) -> None:
        installation = await self._installed(user, workflow_id)
        if self._webhooks is not None:
            await self._webhooks.uninstalled(self._scope, installation)
        await self._session.delete(installation)

    async def upgrade(self, user: AnyUser, workflow_id: str) -> tuple[Installation, int]:
        """Move an installation to the latest released version, keeping its values. Refused
        (409, naming the fields) when the configurable fields differ: the user must reinstall."""
        installation = await self._installed(user, workflow_id)
        latest = await self.workflow(workflow_id)
        previous_version = installation.version_number
        if installation.version_id == latest.version_id:
            return installation, previous_version
        current_fields = await self._session.scalar(
            select(WorkflowVersion.fields).where(WorkflowVersion.id == installation.version_id)
        )
        changed = differing_fields(current_fields or [], latest.fields)
        if changed:
            raise Conflict(
                f"Version {latest.version} changes the configurable fields "
                f"{', '.join(changed)}; the user must reinstall the workflow to upgrade.",
                fields=changed,
                version=latest.version,
                installedVersion=previous_version,
            )
        installation.version_id = latest.version_id
        installation.version_number = latest.version
        installation.updated_at = utcnow()
        return installation, previous_version

    async def _credentials_by_app(
        self, user: AnyUser, credential_ids: Sequence[str]
    ) -> dict[str, str]:
        if not credential_ids:
            return {}
        rows = (
            await self._session.execute(
                select(Credential.id, Credential.app).where(
                    Credential.user_id == user.id, Credential.id.in_(list(credential_ids))
                )
            )
        ).all()
        found = {row.id: row.app for row in rows}
        missing = [cid for cid in credential_ids if cid not in found]
        if missing:
            raise NotFound(f"credentialIds: no credential {missing[0]!r} for this user.")
        return {app: cid for cid, app in found.items()}

    async def install(
        self,
        user: AnyUser,
        workflow_ids: Sequence[str],
        credential_ids: Sequence[str],
        values: Mapping[str, Mapping[str, Any]],
    ) -> list[Installation]:
        """Install (or reinstall) workflows at their latest released version. Every value is
        checked before anything is written: either all workflows install or none does."""
        if not workflow_ids:
            raise InvalidRequest(
                "workflowIds: at least one workflow is required.", field="workflowIds"
            )
        released = {w.workflow_id: w for w in await self.released()}
        unknown = [wid for wid in workflow_ids if wid not in released]
        if unknown:
            raise NotFound(f"No released workflow {unknown[0]!r} in this environment.")
        credentials = await self._credentials_by_app(user, credential_ids)
        checked: dict[str, dict[str, Any]] = {}
        for workflow_id in workflow_ids:
            workflow = released[workflow_id]
            if workflow.needs_credential and workflow.app not in credentials:
                app_name = (
                    self._apps[workflow.app].name if workflow.app in self._apps else workflow.app
                )
                raise Unprocessable(
                    f"Workflow {workflow.name!r} needs a {app_name} credential: "
                    "pass credentialIds.",
                    field="credentialIds",
                )
            checked[workflow_id] = check_values(
                workflow_id, workflow.fields, values.get(workflow_id, {})
            )
        existing = await self.installations_of(user)
        installations = []
        for workflow_id in workflow_ids:
            workflow = released[workflow_id]
            installation = existing.get(workflow_id) or Installation(
                workspace_id=self._scope.workspace_id,
                environment=self._scope.environment,
                user_id=user.id,
                workflow_id=workflow_id,
            )
            installation.version_id = workflow.version_id
            installation.version_number = workflow.version
            installation.values = checked[workflow_id]
            installation.credential_ids = (
                {workflow.app: credentials[workflow.app]} if workflow.app in credentials else {}
            )
            installation.active = True
            installation.updated_at = utcnow()
            self._session.add(installation)
            installations.append(installation)
        await self._session.flush()
        if self._webhooks is not None:
            # Subscribing may fail (the app refuses): then nothing here is committed.
            await self._webhooks.installed(self._scope, installations, released)
            await self._session.flush()
        return installations

    # -- headless -------------------------------------------------------------------------

    def field_groups(self, workflows: Sequence[ReleasedWorkflow]) -> list[dict[str, Any]]:
        """Alloy's headless shape: one entry per block that has fields to fill."""
        groups: list[dict[str, Any]] = []
        for workflow in workflows:
            by_block: dict[str, list[dict[str, Any]]] = {}
            for field in workflow.fields:
                by_block.setdefault(field["blockId"], []).append(
                    {
                        "name": field["name"],
                        "displayName": field["displayName"],
                        "type": field["type"],
                        "required": field["required"],
                        "default": field.get("default"),
                        "options": [
                            {"displayName": o["label"], "value": o["value"]}
                            for o in field.get("options") or []
                        ],
                        "optionsFrom": field.get("optionsFrom"),
                    }
                )
            groups.extend(
                {
                    "workflowId": workflow.workflow_id,
                    "blockId": block,
                    "app": workflow.app,
                    "fields": fields,
                }
                for block, fields in by_block.items()
            )
        return groups

    async def start_headless(
        self,
        user: AnyUser,
        integration_id: str,
        workflow_ids: Sequence[str] | None,
        credential_ids: Sequence[str],
    ) -> tuple[PendingInstallation, list[dict[str, Any]]]:
        released = await self.released(integration_id)
        if not released:
            raise NotFound(f"No released integration {integration_id!r} in this environment.")
        chosen = [w for w in released if workflow_ids is None or w.workflow_id in workflow_ids]
        if workflow_ids is not None and len(chosen) != len(set(workflow_ids)):
            raise NotFound(
                "workflowIds: one or more are not released workflows of this integration."
            )
        credentials = await self._credentials_by_app(user, credential_ids)
        pending = PendingInstallation(
            workspace_id=self._scope.workspace_id,
            environment=self._scope.environment,
            user_id=user.id,
            integration_id=integration_id,
            workflow_ids=[w.workflow_id for w in chosen],
            credential_ids=credentials,
            expires_at=utcnow() + PENDING_LIFETIME,
        )
        self._session.add(pending)
        await self._session.flush()
        return pending, self.field_groups(chosen)

    async def complete_headless(
        self, installation_id: str, data: Sequence[Mapping[str, Any]]
    ) -> tuple[User, list[Installation]]:
        pending = await self._session.scalar(
            select(PendingInstallation).where(PendingInstallation.id == installation_id)
        )
        if pending is None or pending.expires_at < utcnow():
            raise NotFound(f"No pending installation {installation_id!r} (unknown or expired).")
        user = await self._session.get_one(User, pending.user_id)
        values: dict[str, dict[str, Any]] = {}
        for index, group in enumerate(data):
            workflow_id = group.get("workflowId")
            if workflow_id not in pending.workflow_ids:
                raise Unprocessable(f"data[{index}].workflowId: not part of this installation.")
            for field in group.get("fields", []):
                values.setdefault(workflow_id, {})[
                    f"{group.get('blockId')}.{field.get('name')}"
                ] = field.get("value")
        installations = await self.install(
            user, pending.workflow_ids, list(pending.credential_ids.values()), values
        )
        await self._session.delete(pending)
        return user, installations


def listing_inline(
    reader: InlineReader, cache: ReleasedCache, scope: Scope, user_id: str
) -> bytes | None:
    """``InstallationService.integrations_json`` for the hot path (api/hot.py): the same
    statement on the inline reader, the same cache entry and fragments, the same bytes. ``None``
    when it cannot answer at once — SQLite busy, no revision yet, or the environment's
    fragments not built for this revision (the ordinary path builds them) — so that the
    ordinary path answers."""
    params = {
        "workspace_id": scope.workspace_id,
        "environment": scope.environment,
        "user_id": user_id,
    }
    rows = reader.rows(_REVISION_AND_INSTALLED, params)
    if not rows:
        return None
    revision, installed = _listing_state(rows)
    cached = cache.get((scope.workspace_id, scope.environment), revision)
    if cached is None or cached.encoded is None:
        return None
    return _splice_listing(cached.encoded, installed, None)


def _listing_state(rows: Sequence[Any]) -> tuple[int, dict[str, tuple[int, bool]]]:
    """The environment's revision and the user's installations (workflow id -> (installed
    version, active)) from the rows of ``_REVISION_AND_INSTALLED``."""
    revision = rows[0][0] if rows else 0
    installed = {
        workflow_id: (version, active)
        for _, workflow_id, version, active in rows
        if workflow_id is not None
    }
    return revision, installed


def _splice_listing(
    listing: EncodedListing,
    installed: Mapping[str, tuple[int, bool]],
    integration_id: str | None,
) -> bytes | None:
    """The listing's JSON from the environment's fragments and the user's installations (only
    these are encoded again); ``None`` when ``integration_id`` is not among them."""
    if integration_id is not None:
        for integration in listing.integrations:
            if integration.integration_id == integration_id:
                return b"".join((_LIST_HEAD, _integration_json(integration, installed), _LIST_TAIL))
        return None
    position = listing.position
    touched = {position[workflow_id] for workflow_id in installed if workflow_id in position}
    if not touched:
        return listing.plain
    parts = list(listing.skeleton)
    for index in touched:
        parts[2 * index + 1] = _integration_json(listing.integrations[index], installed)
    return b"".join(parts)


def _integration_json(
    integration: EncodedIntegration, installed: Mapping[str, tuple[int, bool]]
) -> bytes:
    """One integration's JSON as the user sees it."""
    if installed.keys().isdisjoint(integration.workflow_ids):
        return integration.plain
    any_installed = False
    workflows = []
    for view, plain in integration.workflows:
        state = installed.get(view.workflow_id)
        if state is None:
            workflows.append(plain)
            continue
        any_installed = True
        mine = msgspec.structs.replace(
            view, installed=True, installed_version=state[0], active=bool(state[1])
        )
        workflows.append(_encode(mine))
    return b"".join((integration.heads[any_installed], b",".join(workflows), b"]}"))


def _open_integration(view: IntegrationView, installed: bool) -> bytes:
    """An integration's JSON up to its workflows: ``{..., "workflows":[``."""
    encoded = _encode(msgspec.structs.replace(view, installed=installed, workflows=[]))
    if not encoded.endswith(b"[]}"):  # `workflows` must stay the last field of the view
        raise AssertionError(f"unexpected encoding of IntegrationView: {encoded[-40:]!r}")
    return encoded[:-2]
