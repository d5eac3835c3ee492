"""Routes for one user's browser, authenticated by its user token."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import State

from embedded_ui.api.auth import Principal
from embedded_ui.api.deps import SERVICES, Users
from embedded_ui.api.schemas import SessionOut, TokenOut, error_responses
from embedded_ui.api.users import UserRef, issue_token


class SessionController(Controller):
    path = "/session"
    tags = ["User session"]

    @get(
        "/",
        summary="Who the user token belongs to",
        description="Answers only to a valid user token (`x-alloy-user-token` or Bearer).",
        responses=error_responses(),
        opt={"auth": "user"},
    )
    async def current_session(self, request: Request[Principal, Any, Any]) -> SessionOut:
        principal = request.user
        assert principal.user_id is not None  # auth="user" guarantees it
        return SessionOut(
            user_id=principal.user_id,
            workspace_id=principal.scope.workspace_id,
            environment=principal.scope.environment,
        )


class LegacyUserTokenController(Controller):
    """Alloy's quickstart spells the token route ``/user/{userId}/token``; both work."""

    path = "/user"
    tags = ["Users"]
    dependencies = SERVICES

    @get(
        "/{user_id:str}/token",
        summary="Get a user token (singular path)",
        description="The same as `GET /users/{user_id}/token`.",
        responses=error_responses(404),
    )
    async def legacy_user_token(
        self,
        user_id: UserRef,
        user_service: Users,
        state: State,
        request: Request[Principal, Any, Any],
    ) -> TokenOut:
        return await issue_token(user_id, user_service, state, request.user)
