"""``/users``: the ISV's end users, and the tokens their browsers carry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Controller, Request, delete, get, post, put
from litestar.datastructures import State
from litestar.params import JSONBody, Parameter

from embedded_ui.api.auth import Principal
from embedded_ui.api.deps import SERVICES, Installations, Users
from embedded_ui.api.schemas import (
    BatchItemOut,
    BatchUsersIn,
    BatchUsersOut,
    CreateUserIn,
    DeletedOut,
    ErrorBody,
    PageMeta,
    TokenOut,
    UpdateUserIn,
    UserListOut,
    UserOut,
    error_responses,
)
from embedded_ui.errors import EmbeddedUIError, InvalidRequest
from embedded_ui.security import UserTokens
from embedded_ui.store import iso_ms
from embedded_ui.users import MAX_BATCH, NewUser, UserRecord

log = structlog.get_logger(__name__)
UserRef = Annotated[str, Parameter(description="The user's id, or its username.")]


def _batch_item(raw: Any) -> NewUser | EmbeddedUIError:
    try:
        item = msgspec.convert(raw, CreateUserIn)
    except msgspec.ValidationError as exc:
        return InvalidRequest(f"Invalid user: {str(exc).replace(' - at `$.', ': at `')}")
    return NewUser(item.username, item.full_name)


class UsersController(Controller):
    path = "/users"
    tags = ["Users"]
    dependencies = SERVICES

    @post(
        "/",
        summary="Create a user",
        description="Create an end user; `username` is unique within the environment.",
        responses=error_responses(400, 409, 413),
    )
    async def create_user(self, data: JSONBody[CreateUserIn], user_service: Users) -> UserOut:
        return UserOut.of(await user_service.create(NewUser(data.username, data.full_name)))

    @post(
        "/batch",
        summary="Create up to 1,000 users",
        description="Each item succeeds or fails on its own; the answer lists every outcome.",
        responses=error_responses(400, 413),
        status_code=200,
    )
    async def create_users(
        self, data: JSONBody[BatchUsersIn], user_service: Users
    ) -> BatchUsersOut:
        if len(data.users) > MAX_BATCH:
            raise InvalidRequest(
                f"users: at most {MAX_BATCH} users per call, got {len(data.users)}.",
                field="users",
            )
        results = await user_service.create_many([_batch_item(raw) for raw in data.users])
        items = [
            BatchItemOut(result.index, True, user=UserOut.of(result.user))
            if result.user is not None
            else BatchItemOut(
                result.index,
                False,
                error=ErrorBody(result.error.message, result.error.code) if result.error else None,
            )
            for result in results
        ]
        created = sum(item.success for item in items)
        return BatchUsersOut(items, created=created, failed=len(items) - created)

    @get(
        "/",
        summary="List users",
        description="Oldest first, `limit` per page.",
        responses=error_responses(400),
    )
    async def list_users(
        self,
        user_service: Users,
        page: Annotated[int, Parameter(ge=1, le=1_000_000, description="1-based page.")] = 1,
        limit: Annotated[int, Parameter(ge=1, le=1000, description="Users per page.")] = 100,
    ) -> UserListOut:
        rows, total = await user_service.page(page, limit)
        meta = PageMeta(page=page, limit=limit, total=total, has_more=page * limit < total)
        return UserListOut([UserOut.of(user) for user in rows], meta)

    @get("/{user_id:str}", summary="Get a user", responses=error_responses(404))
    async def get_user(self, user_id: UserRef, user_service: Users) -> UserOut:
        return UserOut.of(await user_service.read(user_id))

    @put(
        "/{user_id:str}",
        summary="Update a user",
        description="Change `username` and/or `fullName` (null clears it).",
        responses=error_responses(400, 404, 409, 413),
    )
    async def update_user(
        self, user_id: UserRef, data: JSONBody[UpdateUserIn], user_service: Users
    ) -> UserOut:
        changes = {
            field: value
            for field, value in (("username", data.username), ("full_name", data.full_name))
            if value is not msgspec.UNSET
        }
        return UserOut.of(await user_service.update(user_id, changes))

    @delete(
        "/{user_id:str}",
        summary="Delete a user",
        description="Deletes the user and everything it owns, after unsubscribing its "
        "installations from their apps' webhooks; its tokens stop working at once.",
        responses=error_responses(404),
        status_code=200,
    )
    async def delete_user(
        self, user_id: UserRef, user_service: Users, installation_service: Installations
    ) -> DeletedOut:
        user = await user_service.get(user_id)
        await installation_service.unsubscribe_all(user)
        deleted = await user_service.delete(user)
        return DeletedOut(message="User deleted.", user_id=deleted)

    @get(
        "/{user_id:str}/token",
        summary="Get a user token",
        description="A short-lived JWT for the user's browser (the SDK's `setToken`).",
        responses=error_responses(404),
    )
    async def user_token(
        self,
        user_id: UserRef,
        user_service: Users,
        state: State,
        request: Request[Principal, Any, Any],
    ) -> TokenOut:
        return await issue_token(user_id, user_service, state, request.user)


async def issue_token(
    user_id: str, user_service: Users, state: State, principal: Principal
) -> TokenOut:
    return mint_token(state.tokens, principal, await user_service.read(user_id))


def mint_token(tokens: UserTokens, principal: Principal, user: UserRecord) -> TokenOut:
    token, expires_at = tokens.issue(
        user_id=user.id,
        workspace_id=principal.scope.workspace_id,
        environment=principal.scope.environment,
    )
    # The audit trail for token mints is this log line (no token in it): a database row per
    # mint would double the cost of the SDK's hottest server call.
    log.info("user_token_issued", actor=principal.actor, user_id=user.id, expires_at=expires_at)
    return TokenOut(token=token, expires_at=iso_ms(datetime.fromtimestamp(expires_at, UTC)))
