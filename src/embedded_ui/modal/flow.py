"""The install modal's steps, decided on the server.

The modal carries a small state (chosen workflows, credential, values) from step to step and
posts it back with each action; nothing in it is trusted. Every request re-checks the workflows
against the released ones, the credential against the user's own, the OAuth flow against the
user's own, and the values against the workflow's fields, so a tampered state can only fail.

Steps: ``workflows`` (choose) → ``auth`` (connect the app) → ``configure`` (fields, options
loaded from the app with the credential) → ``review`` → install → ``done``. ``hide`` skips
every step that has nothing to ask.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.catalog import App
from embedded_ui.catalog.client import AppCallFailed, load_options
from embedded_ui.credentials import CredentialService
from embedded_ui.errors import EmbeddedUIError, InvalidRequest, NotFound, Unprocessable
from embedded_ui.integrations import InstallationService
from embedded_ui.integrations.installations import ReleasedWorkflow
from embedded_ui.integrations.values import check_values
from embedded_ui.store import Credential, OAuthFlow, User
from embedded_ui.templating import render

Operation = Literal["install", "edit", "update", "authenticate"]
FreshSecret = Callable[[str, bool], Awaitable[dict[str, Any]]]
"""``(credential id, force) → secret`` with an OAuth access token refreshed when due."""
OPERATIONS = ("install", "edit", "update", "authenticate")
ACTIONS = ("start", "choose", "credential", "use_credential", "oauth", "configure", "install")
MAX_TITLE = 200


@dataclass(frozen=True, slots=True)
class Params:
    """The SDK options that are data, checked once per request."""

    operation: Operation
    integration_id: str | None = None
    workflow_ids: tuple[str, ...] | None = None
    version_ids: tuple[str, ...] | None = None
    app: str | None = None
    title: str | None = None
    hide: bool = False
    always_show_authentication: bool = False
    pre_filled_values: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, operation: Any, raw: Any) -> Params:
        if operation not in OPERATIONS:
            raise InvalidRequest(f"operation: expected one of {', '.join(OPERATIONS)}.")
        if not isinstance(raw, Mapping):
            raise InvalidRequest("params: expected an object.")

        def ids(name: str) -> tuple[str, ...] | None:
            value = raw.get(name)
            if value is None:
                return None
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in value)
            ):
                raise InvalidRequest(f"params.{name}: expected a non-empty list of ids.")
            return tuple(value)

        def flag(name: str) -> bool:
            value = raw.get(name, False)
            if not isinstance(value, bool):
                raise InvalidRequest(f"params.{name}: expected true or false.")
            return value

        def text(name: str, limit: int) -> str | None:
            value = raw.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                raise InvalidRequest(f"params.{name}: expected text of at most {limit} characters.")
            return value or None

        pre_filled = raw.get("preFilledValues") or {}
        if not isinstance(pre_filled, Mapping):
            raise InvalidRequest("params.preFilledValues: expected an object.")
        params = cls(
            operation=operation,
            integration_id=text("integrationId", 64),
            workflow_ids=ids("workflowIds"),
            version_ids=ids("versionIds"),
            app=text("app", 60),
            title=text("title", MAX_TITLE),
            hide=flag("hide"),
            always_show_authentication=flag("alwaysShowAuthentication"),
            pre_filled_values=pre_filled,
        )
        if operation == "authenticate":
            if params.app is None:
                raise InvalidRequest("params.app: authenticate needs the app's key.")
        elif params.integration_id is None and params.workflow_ids is None:
            raise InvalidRequest("params: expected integrationId or workflowIds.")
        return params


@dataclass
class State:
    """What the modal carries between steps. Checked again on every use."""

    workflow_ids: list[str] | None = None
    credential_id: str | None = None
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    configured: bool = False
    reviewed: bool = False

    @classmethod
    def parse(cls, raw: Any) -> State:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise InvalidRequest("state: expected an object.")
        workflow_ids = raw.get("workflowIds")
        credential_id = raw.get("credentialId")
        values = raw.get("values") or {}
        if workflow_ids is not None and (
            not isinstance(workflow_ids, list) or not all(isinstance(w, str) for w in workflow_ids)
        ):
            raise InvalidRequest("state.workflowIds: expected a list of ids.")
        if credential_id is not None and not isinstance(credential_id, str):
            raise InvalidRequest("state.credentialId: expected an id.")
        if not isinstance(values, Mapping) or not all(
            isinstance(v, Mapping) for v in values.values()
        ):
            raise InvalidRequest("state.values: expected an object per workflow.")
        return cls(
            workflow_ids=workflow_ids,
            credential_id=credential_id,
            values={k: dict(v) for k, v in values.items()},
            configured=raw.get("configured") is True,
            reviewed=raw.get("reviewed") is True,
        )

    def dump(self) -> dict[str, Any]:
        return {
            "workflowIds": self.workflow_ids,
            "credentialId": self.credential_id,
            "values": self.values,
            "configured": self.configured,
            "reviewed": self.reviewed,
        }


@dataclass
class StepResult:
    step: str
    html: str
    state: State
    title: str
    needs_input: bool = True
    result: dict[str, Any] | None = None
    keep_open: bool = False
    """Done, but the merchant has something to do by hand (a webhook to add in the app): the
    modal stays open and reports the success when it is closed."""

    def dump(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "html": self.html,
            "state": self.state.dump(),
            "title": self.title,
            "needsInput": self.needs_input,
            "done": self.result is not None,
            "result": self.result,
            "keepOpen": self.keep_open,
        }


@dataclass
class Plan:
    """What this request is about, resolved from the params."""

    app: App
    workflows: list[ReleasedWorkflow]
    """Every released workflow the user may pick from (the integration's, or the named)."""
    integration_name: str


class ModalFlow:
    def __init__(
        self,
        session: AsyncSession,
        user: User,
        installations: InstallationService,
        credentials: CredentialService,
        apps: Mapping[str, App],
        http: httpx.AsyncClient,
        service_values: Mapping[str, str],
        fresh_oauth_secret: FreshSecret | None = None,
    ) -> None:
        self._fresh_oauth_secret = fresh_oauth_secret
        self._session = session
        self._user = user
        self._installations = installations
        self._credentials = credentials
        self._apps = apps
        self._http = http
        self._service_values = service_values

    # -- the entry point ------------------------------------------------------------------

    async def handle(
        self, params: Params, state: State, action: str, given: Mapping[str, Any]
    ) -> StepResult:
        if action not in ACTIONS:
            raise InvalidRequest(f"action: expected one of {', '.join(ACTIONS)}.")
        plan = await self._plan(params)
        if action == "start":
            await self._prefill(params, plan, state)
        elif action == "choose":
            return await self._choose(params, plan, state, given)
        elif action in ("credential", "use_credential", "oauth"):
            failed = await self._connect(params, plan, state, action, given)
            if failed is not None:
                return failed
        elif action == "configure":
            return await self._configure(params, plan, state, given)
        elif action == "install":
            state.reviewed = True
        return await self._next(params, plan, state)

    # -- planning -------------------------------------------------------------------------

    async def _plan(self, params: Params) -> Plan:
        if params.operation == "authenticate":
            app = self._app(params.app or "")
            return Plan(app, [], app.name)
        released = await self._installations.released(params.integration_id)
        if params.integration_id is not None and not released:
            raise NotFound(f"No released integration {params.integration_id!r} here.")
        if params.workflow_ids is not None:
            by_id = {w.workflow_id: w for w in (released or await self._installations.released())}
            unknown = [wid for wid in params.workflow_ids if wid not in by_id]
            if unknown:
                raise NotFound(f"workflowIds: no released workflow {unknown[0]!r} here.")
            released = [by_id[wid] for wid in params.workflow_ids]
            if len({w.integration_id for w in released}) > 1:
                raise InvalidRequest("workflowIds: all workflows must belong to one integration.")
        if params.version_ids is not None:
            latest = {w.version_id for w in released}
            stale = [v for v in params.version_ids if v not in latest]
            if stale:
                raise Unprocessable(
                    f"versionIds: {stale[0]!r} is not the latest released version of these "
                    "workflows; only the latest released version can be installed.",
                    field="versionIds",
                )
        return Plan(self._app(released[0].app), released, released[0].integration_name)

    def _app(self, key: str) -> App:
        app = self._apps.get(key)
        if app is None:
            raise NotFound(f"No app {key!r} in the catalog.")
        return app

    async def _prefill(self, params: Params, plan: Plan, state: State) -> None:
        """Saved values and credential for edit/update; the ISV's preFilledValues on top."""
        if params.operation in ("edit", "update"):
            installed = await self._installations.installations_of(self._user)
            mine = [installed[w.workflow_id] for w in plan.workflows if w.workflow_id in installed]
            if not mine:
                raise NotFound("Nothing to edit: the user has not installed these workflows.")
            if params.workflow_ids is None:
                state.workflow_ids = [i.workflow_id for i in mine]
            for installation in mine:
                state.values.setdefault(installation.workflow_id, dict(installation.values))
                if not params.always_show_authentication:
                    state.credential_id = state.credential_id or installation.credential_ids.get(
                        plan.app.key
                    )
        for workflow in plan.workflows:
            target = state.values.setdefault(workflow.workflow_id, {})
            nested = params.pre_filled_values.get(workflow.workflow_id)
            for spec in workflow.fields:
                key = f"{spec['blockId']}.{spec['name']}"
                for source in (nested, params.pre_filled_values):
                    if isinstance(source, Mapping):
                        for name in (key, spec["name"]):
                            if name in source and not isinstance(source[name], Mapping):
                                target[key] = source[name]
        state.values = {k: v for k, v in state.values.items() if v}

    def _chosen(self, params: Params, plan: Plan, state: State) -> list[ReleasedWorkflow]:
        if state.workflow_ids is None:
            return plan.workflows if params.workflow_ids is not None else []
        by_id = {w.workflow_id: w for w in plan.workflows}
        unknown = [wid for wid in state.workflow_ids if wid not in by_id]
        if unknown:
            raise InvalidRequest(f"state.workflowIds: {unknown[0]!r} is not offered here.")
        return [by_id[wid] for wid in state.workflow_ids]

    # -- deciding the next step -------------------------------------------------------------

    async def _next(self, params: Params, plan: Plan, state: State) -> StepResult:
        title = params.title or (
            f"Connect {plan.app.name}"
            if params.operation == "authenticate"
            else plan.integration_name
        )
        if params.operation == "authenticate":
            if state.credential_id is None:
                return await self._auth_step(params, plan, state, title)
            return self._done(
                plan, state, title, {"success": True, "credentialId": state.credential_id}
            )

        chosen = self._chosen(params, plan, state)
        if not chosen:
            if len(plan.workflows) == 1 or params.hide:
                state.workflow_ids = [w.workflow_id for w in plan.workflows]
                chosen = plan.workflows
            else:
                return self._workflows_step(plan, state, title)

        needs_credential = any(w.needs_credential for w in chosen)
        if needs_credential and not await self._usable_credential(params, plan, state):
            return await self._auth_step(params, plan, state, title)

        fields_to_ask = [w for w in chosen if w.fields]
        if fields_to_ask and not state.configured:
            complete = self._complete_values(chosen, state)
            if not (params.hide and complete):
                return await self._configure_step(plan, state, chosen, title)
        if not state.reviewed and not params.hide:
            return self._review_step(plan, state, chosen, title)
        return await self._install(plan, state, chosen, title)

    async def _usable_credential(self, params: Params, plan: Plan, state: State) -> bool:
        if state.credential_id is not None:
            credential = await self._own_credential(state.credential_id, plan.app.key)
            if credential is not None and credential.status == "active":
                return True
            state.credential_id = None
        if params.always_show_authentication:
            return False
        existing = [
            c
            for c in await self._credentials.list_for(self._user)
            if c.app == plan.app.key and c.status == "active"
        ]
        if existing:
            state.credential_id = existing[-1].id
            return True
        return False

    async def _own_credential(self, credential_id: str, app_key: str) -> Credential | None:
        credential = await self._session.scalar(
            select(Credential).where(
                Credential.id == credential_id,
                Credential.user_id == self._user.id,
                Credential.app == app_key,
            )
        )
        return credential

    def _complete_values(self, chosen: Sequence[ReleasedWorkflow], state: State) -> bool:
        try:
            for workflow in chosen:
                check_values(
                    workflow.workflow_id,
                    workflow.fields,
                    state.values.get(workflow.workflow_id, {}),
                )
        except Unprocessable:
            return False
        return True

    # -- the steps --------------------------------------------------------------------------

    def _workflows_step(
        self, plan: Plan, state: State, title: str, error: str | None = None
    ) -> StepResult:
        html = render(
            "modal/_workflows.html",
            app=plan.app,
            workflows=plan.workflows,
            chosen=set(state.workflow_ids or [w.workflow_id for w in plan.workflows]),
            error=error,
        )
        return StepResult("workflows", html, state, title)

    async def _choose(
        self, params: Params, plan: Plan, state: State, given: Mapping[str, Any]
    ) -> StepResult:
        picked = given.get("workflowIds")
        offered = {w.workflow_id for w in plan.workflows}
        title = params.title or plan.integration_name
        if not isinstance(picked, list) or not picked:
            return self._workflows_step(plan, state, title, "Choose at least one workflow.")
        if not all(isinstance(p, str) and p in offered for p in picked):
            raise InvalidRequest("input.workflowIds: only the workflows offered can be chosen.")
        state.workflow_ids = [w.workflow_id for w in plan.workflows if w.workflow_id in picked]
        state.configured = state.reviewed = False
        return await self._next(params, plan, state)

    async def _auth_step(
        self,
        params: Params,
        plan: Plan,
        state: State,
        title: str,
        error: str | None = None,
        field_error: str | None = None,
        entered: Mapping[str, str] | None = None,
    ) -> StepResult:
        existing = (
            []
            if params.always_show_authentication
            else [
                c
                for c in await self._credentials.list_for(self._user)
                if c.app == plan.app.key and c.status == "active"
            ]
        )
        html = render(
            "modal/_auth.html",
            app=plan.app,
            schemes=plan.app.auth,
            existing=existing,
            error=error,
            field_error=field_error,
            entered=entered or {},
        )
        return StepResult("auth", html, state, title)

    async def _connect(
        self,
        params: Params,
        plan: Plan,
        state: State,
        action: str,
        given: Mapping[str, Any],
    ) -> StepResult | None:
        title = params.title or plan.integration_name
        if action == "use_credential":
            credential_id = given.get("credentialId")
            if (
                not isinstance(credential_id, str)
                or await self._own_credential(credential_id, plan.app.key) is None
            ):
                raise NotFound("No such connection for this user.")
            state.credential_id = credential_id
            return None
        if action == "oauth":
            flow_id = given.get("flowId")
            flow = (
                await self._session.scalar(
                    select(OAuthFlow).where(
                        OAuthFlow.id == flow_id, OAuthFlow.user_id == self._user.id
                    )
                )
                if isinstance(flow_id, str)
                else None
            )
            if flow is None or flow.app != plan.app.key:
                raise NotFound("No such authorization for this user and app.")
            if flow.status != "succeeded" or flow.credential_id is None:
                reason = flow.error or "The authorization did not finish."
                return await self._auth_step(params, plan, state, title, error=reason)
            state.credential_id = flow.credential_id
            return None
        auth_type = given.get("type")
        fields = given.get("fields")
        if not isinstance(auth_type, str) or not isinstance(fields, Mapping):
            raise InvalidRequest("input: expected {type, fields}.")
        try:
            credential = await self._credentials.create(self._user, plan.app.key, auth_type, fields)
        except EmbeddedUIError as exc:
            if exc.status_code not in (400, 422):
                raise
            # Give back only what is not secret, so the user need not retype it.
            scheme = next((s for s in plan.app.auth if s.type == auth_type), None)
            public = {
                f.name: str(fields.get(f.name, ""))
                for f in (scheme.fields if scheme else ())
                if not f.secret
            }
            return await self._auth_step(
                params,
                plan,
                state,
                title,
                error=exc.message,
                field_error=exc.extra.get("field"),
                entered=public,
            )
        await self._session.flush()
        state.credential_id = credential.id
        return None

    async def _options(
        self, plan: Plan, state: State, chosen: Sequence[ReleasedWorkflow]
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
        """Options of every ``optionsFrom`` field, loaded once per source with the credential."""
        wanted = {f["optionsFrom"] for w in chosen for f in w.fields if f.get("optionsFrom")}
        loaded: dict[str, list[dict[str, Any]]] = {}
        failures: dict[str, str] = {}
        if not wanted or state.credential_id is None:
            return loaded, failures
        credential = await self._own_credential(state.credential_id, plan.app.key)
        if credential is None:
            return loaded, failures
        fresh = self._fresh_oauth_secret if credential.auth_type == "oauth2" else None
        try:
            secret = (
                await fresh(credential.id, False)
                if fresh is not None
                else self._credentials.secret(credential)
            )
        except EmbeddedUIError as exc:
            return loaded, dict.fromkeys(wanted, exc.message)
        for source in plan.app.option_sources:
            if source.key not in wanted:
                continue
            try:
                loaded[source.key] = await load_options(
                    self._http, plan.app, source, secret, self._service_values
                )
            except AppCallFailed as exc:
                if fresh is None or exc.status != 401:
                    failures[source.key] = exc.reason
                    continue
                # The provider no longer takes this access token: refresh once and retry.
                try:
                    secret = await fresh(credential.id, True)
                    loaded[source.key] = await load_options(
                        self._http, plan.app, source, secret, self._service_values
                    )
                except (AppCallFailed, EmbeddedUIError) as retry:
                    failures[source.key] = getattr(retry, "reason", None) or str(retry)
        return loaded, failures

    async def _configure_step(
        self,
        plan: Plan,
        state: State,
        chosen: Sequence[ReleasedWorkflow],
        title: str,
        errors: Mapping[str, str] | None = None,
    ) -> StepResult:
        options, failures = await self._options(plan, state, chosen)
        html = render(
            "modal/_configure.html",
            app=plan.app,
            workflows=[w for w in chosen if w.fields],
            values=state.values,
            options=options,
            failures=failures,
            errors=errors or {},
        )
        return StepResult("configure", html, state, title)

    async def _configure(
        self, params: Params, plan: Plan, state: State, given: Mapping[str, Any]
    ) -> StepResult:
        chosen = self._chosen(params, plan, state)
        title = params.title or plan.integration_name
        raw = given.get("values")
        if not isinstance(raw, Mapping):
            raise InvalidRequest("input.values: expected an object per workflow.")
        options, _ = await self._options(plan, state, chosen)
        errors: dict[str, str] = {}
        checked: dict[str, dict[str, Any]] = {}
        for workflow in chosen:
            given_values = raw.get(workflow.workflow_id) or {}
            if not isinstance(given_values, Mapping):
                raise InvalidRequest(f"input.values.{workflow.workflow_id}: expected an object.")
            for spec in workflow.fields:
                key = f"{spec['blockId']}.{spec['name']}"
                source = spec.get("optionsFrom")
                value = given_values.get(key)
                if source in options and value not in (None, ""):
                    allowed = {str(o["value"]) for o in options[source]}
                    if str(value) not in allowed:
                        errors[f"{workflow.workflow_id}/{key}"] = (
                            f"{spec['displayName']}: choose one of the options."
                        )
            try:
                checked[workflow.workflow_id] = check_values(
                    workflow.workflow_id, workflow.fields, given_values
                )
            except Unprocessable as exc:
                for problem in exc.extra.get("fields", []):
                    name, _, message = problem.partition(": ")
                    errors.setdefault(name, message)
        state.values = {
            **state.values,
            **{k: dict(v) for k, v in raw.items() if isinstance(v, Mapping)},
        }
        if errors:
            return await self._configure_step(plan, state, chosen, title, errors)
        state.values = {**state.values, **checked}
        state.configured = True
        return await self._next(params, plan, state)

    def _review_step(
        self, plan: Plan, state: State, chosen: Sequence[ReleasedWorkflow], title: str
    ) -> StepResult:
        html = render("modal/_review.html", app=plan.app, workflows=chosen, values=state.values)
        return StepResult("review", html, state, title)

    async def _install(
        self, plan: Plan, state: State, chosen: Sequence[ReleasedWorkflow], title: str
    ) -> StepResult:
        installed = await self._installations.install(
            self._user,
            [w.workflow_id for w in chosen],
            [state.credential_id] if state.credential_id else [],
            state.values,
        )
        result: dict[str, Any] = {
            "success": True,
            "workflowIds": [i.workflow_id for i in installed],
        }
        if state.credential_id:
            result["credentialId"] = state.credential_id
        manual = await self._installations.manual_webhooks(installed)
        return self._done(plan, state, title, result, chosen, manual)

    def _done(
        self,
        plan: Plan,
        state: State,
        title: str,
        result: dict[str, Any],
        chosen: Sequence[ReleasedWorkflow] = (),
        manual: Mapping[str, Any] | None = None,
    ) -> StepResult:
        """``manual``: workflow id → the webhook the merchant must add in the app by hand."""
        webhooks = [
            (w, manual[w.workflow_id]) for w in chosen if manual and w.workflow_id in manual
        ]
        html = render("modal/_done.html", app=plan.app, workflows=chosen, webhooks=webhooks)
        return StepResult(
            "done", html, state, title, needs_input=False, result=result, keep_open=bool(webhooks)
        )
