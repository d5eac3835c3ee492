"""``/integrations`` and ``/workflows``: what a user can install and has installed, and the
ISV's controls over installations. The listing routes also answer to user tokens (the SDK)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, Response, delete, get, put, route
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, Parameter, QueryParameter

from embedded_ui.api.auth import Principal
from embedded_ui.api.deps import SERVICES, Installations, Users, resolve_user
from embedded_ui.api.schemas import (
    ActiveOut,
    CountOut,
    ListOut,
    MessageOut,
    PageMeta,
    UpgradeOut,
    UserWorkflowIn,
    VersionOut,
    WorkflowUserOut,
    WorkflowUsersOut,
    error_responses,
)
from embedded_ui.integrations import IntegrationView, UserWorkflowView
from embedded_ui.store import iso_ms

UserQuery = Annotated[
    str | None,
    QueryParameter(
        name="userId", description="The user's id or username (omit with a user token)."
    ),
]
EITHER = {"auth": "api_key_or_user"}


class IntegrationsListOut(msgspec.Struct):
    data: list[IntegrationView]


class WorkflowsListOut(msgspec.Struct):
    data: list[UserWorkflowView]


# The listing routes answer bytes the service encodes itself (InstallationService.
# integrations_json); the document still describes them as IntegrationsListOut.
LISTING_RESPONSES = {
    200: ResponseSpec(
        IntegrationsListOut,
        description="Request fulfilled, document follows",
        generate_examples=False,
    ),
    **error_responses(400, 404),
}


class IntegrationsController(Controller):
    path = "/integrations"
    tags = ["Integrations"]
    dependencies = SERVICES

    @get(
        "/",
        summary="List integrations for a user",
        description="Released, active workflows grouped by integration, with the user's "
        "`installed`, `version`, `installedVersion` and `active`.",
        responses=LISTING_RESPONSES,
        opt=EITHER,
    )
    async def list_integrations(
        self,
        request: Request[Principal, Any, Any],
        user_service: Users,
        installation_service: Installations,
        user_id: UserQuery = None,
    ) -> Response[bytes]:
        user = await resolve_user(request.user, user_service, user_id)
        body = await installation_service.integrations_json(user)
        return Response(body, media_type=MediaType.JSON)

    @get(
        "/{integration_id:str}",
        summary="Get one integration for a user",
        responses=LISTING_RESPONSES,
        opt=EITHER,
    )
    async def get_integration(
        self,
        integration_id: FromPath[str],
        request: Request[Principal, Any, Any],
        user_service: Users,
        installation_service: Installations,
        user_id: UserQuery = None,
    ) -> Response[bytes]:
        user = await resolve_user(request.user, user_service, user_id)
        body = await installation_service.integrations_json(user, integration_id)
        return Response(body, media_type=MediaType.JSON)


class WorkflowsController(Controller):
    path = "/workflows"
    tags = ["Workflows"]
    dependencies = SERVICES

    @get(
        "/",
        summary="List workflows for a user",
        responses=error_responses(400, 404),
        opt=EITHER,
    )
    async def list_workflows(
        self,
        request: Request[Principal, Any, Any],
        user_service: Users,
        installation_service: Installations,
        user_id: UserQuery = None,
    ) -> WorkflowsListOut:
        user = await resolve_user(request.user, user_service, user_id)
        return WorkflowsListOut(await installation_service.workflows_for(user))

    @put(
        "/activate",
        summary="Activate a user's workflow",
        description="Idempotent. With a user token, `userId` may be omitted.",
        responses=error_responses(400, 404, 413),
        opt=EITHER,
    )
    async def activate(
        self,
        data: JSONBody[UserWorkflowIn],
        request: Request[Principal, Any, Any],
        user_service: Users,
        installation_service: Installations,
    ) -> ActiveOut:
        return await _set_active(data, request, user_service, installation_service, True)

    @put(
        "/deactivate",
        summary="Deactivate a user's workflow",
        description="Idempotent. With a user token, `userId` may be omitted.",
        responses=error_responses(400, 404, 413),
        opt=EITHER,
    )
    async def deactivate(
        self,
        data: JSONBody[UserWorkflowIn],
        request: Request[Principal, Any, Any],
        user_service: Users,
        installation_service: Installations,
    ) -> ActiveOut:
        return await _set_active(data, request, user_service, installation_service, False)

    @get(
        "/{workflow_id:str}",
        summary="Get one workflow for a user",
        responses=error_responses(400, 404),
        opt=EITHER,
    )
    async def get_workflow(
        self,
        workflow_id: FromPath[str],
        request: Request[Principal, Any, Any],
        user_service: Users,
        installation_service: Installations,
        user_id: UserQuery = None,
    ) -> UserWorkflowView:
        user = await resolve_user(request.user, user_service, user_id)
        return (await installation_service.workflows_for(user, workflow_id))[0]

    @get(
        "/{workflow_id:str}/versions",
        summary="List a workflow's versions",
        description="Released versions in order, then the draft if there is one.",
        responses=error_responses(404),
    )
    async def versions(
        self, workflow_id: FromPath[str], installation_service: Installations
    ) -> ListOut:
        rows = await installation_service.versions(workflow_id)
        return ListOut(
            [
                VersionOut(
                    version_id=v.id,
                    version=v.number,
                    status="draft" if v.number is None else "released",
                    name=v.name,
                    created_at=iso_ms(v.created_at),
                    released_at=iso_ms(v.released_at) if v.released_at else None,
                    configurable_fields=v.fields,
                )
                for v in rows
            ]
        )

    @get(
        "/{workflow_id:str}/users",
        summary="List the users who installed a workflow",
        responses=error_responses(400, 404),
    )
    async def users(
        self,
        workflow_id: FromPath[str],
        installation_service: Installations,
        page: Annotated[int, Parameter(ge=1, le=1_000_000)] = 1,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> WorkflowUsersOut:
        rows, total = await installation_service.users_of(workflow_id, page, limit)
        return WorkflowUsersOut(
            [
                WorkflowUserOut(
                    user_id=user.id,
                    username=user.username,
                    installed_version=installation.version_number,
                    active=installation.active,
                    installed_at=iso_ms(installation.created_at),
                )
                for installation, user in rows
            ],
            PageMeta(page=page, limit=limit, total=total, has_more=page * limit < total),
        )

    @route(
        "/{workflow_id:str}/upgrade",
        http_method=["PUT", "POST"],
        status_code=200,  # with POST among the methods Litestar would answer 201 Created
        summary="Upgrade a user's workflow to the latest released version",
        description="Keeps the user's values. 409, naming the fields, when the configurable "
        "fields changed: the user must reinstall.",
        responses=error_responses(400, 404, 409),
    )
    async def upgrade(
        self,
        workflow_id: FromPath[str],
        request: Request[Principal, Any, Any],
        user_service: Users,
        installation_service: Installations,
        user_id: UserQuery = None,
    ) -> UpgradeOut:
        user = await resolve_user(request.user, user_service, user_id)
        installation, previous = await installation_service.upgrade(user, workflow_id)
        return UpgradeOut(
            message="Upgraded." if previous != installation.version_number else "Up to date.",
            workflow_id=workflow_id,
            previous_version=previous,
            installed_version=installation.version_number,
        )

    @delete(
        "/{workflow_id:str}",
        summary="Uninstall a user's workflow",
        responses=error_responses(400, 404),
        status_code=200,
    )
    async def uninstall(
        self,
        workflow_id: FromPath[str],
        request: Request[Principal, Any, Any],
        user_service: Users,
        installation_service: Installations,
        user_id: UserQuery = None,
    ) -> MessageOut:
        user = await resolve_user(request.user, user_service, user_id)
        await installation_service.uninstall(user, workflow_id)
        return MessageOut("Workflow uninstalled.")


async def _set_active(
    data: UserWorkflowIn,
    request: Request[Principal, Any, Any],
    users: Users,
    installations: Installations,
    active: bool,
) -> ActiveOut:
    user = await resolve_user(request.user, users, data.user_id)
    await installations.set_active(user, data.workflow_id, active)
    word = "activated" if active else "deactivated"
    return ActiveOut(message=f"Workflow {word}.", workflow_id=data.workflow_id, active=active)


class UserWorkflowsController(Controller):
    path = "/users/{user_id:str}/deactivate-workflows"
    tags = ["Workflows"]
    dependencies = SERVICES

    @put(
        "/",
        summary="Deactivate all of a user's workflows",
        responses=error_responses(404),
    )
    async def deactivate_all(
        self, user_id: FromPath[str], user_service: Users, installation_service: Installations
    ) -> CountOut:
        user = await user_service.get(user_id)
        count = await installation_service.deactivate_all(user)
        return CountOut(message=f"Deactivated {count} workflows.", count=count)
