"""Dependencies shared by the API's controllers: services bound to the caller's tenant, and
the user a request is about (from the path or query for API keys, from the token for users)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.api.auth import Principal
from embedded_ui.credentials import CredentialService
from embedded_ui.errors import InvalidRequest, NotFound
from embedded_ui.integrations import InstallationService, IntegrationService
from embedded_ui.settings import Settings
from embedded_ui.store import User
from embedded_ui.users import UserRecord, UserService

AnyRequest = Request[Principal, Any, State]


def provide_users(db_session: NamedDependency[AsyncSession], request: AnyRequest) -> UserService:
    return UserService(
        db_session,
        request.user.scope,
        actor=request.user.actor,
        reader=request.app.state.inline_reader,
    )


def provide_installations(
    db_session: NamedDependency[AsyncSession], request: AnyRequest
) -> InstallationService:
    state = request.app.state
    return InstallationService(
        db_session,
        request.user.scope,
        state.apps,
        state.settings.public_url,
        state.released_cache,
        reader=state.inline_reader,
        webhooks=state.runtime.webhooks,
    )


def provide_integrations(
    db_session: NamedDependency[AsyncSession], request: AnyRequest
) -> IntegrationService:
    return IntegrationService(db_session, request.user.scope)


def provide_credentials(
    db_session: NamedDependency[AsyncSession], request: AnyRequest
) -> CredentialService:
    state = request.app.state
    return CredentialService(
        db_session,
        request.user.scope,
        state.vault,
        state.apps,
        http=state.http,
        service_values=service_values(state.settings),
    )


def service_values(settings: Settings) -> dict[str, str]:
    """The catalog placeholders the service fills from its own settings."""
    return {"sandbox_url": settings.sandbox_url}


# Dependency names avoid body field names (`users`, `data`): Litestar would report a body
# field's validation error as a fault of the dependency with the same name.
SERVICES = {
    "user_service": Provide(provide_users, sync_to_thread=False),
    "installation_service": Provide(provide_installations, sync_to_thread=False),
    "integration_service": Provide(provide_integrations, sync_to_thread=False),
    "credential_service": Provide(provide_credentials, sync_to_thread=False),
}
Users = NamedDependency[UserService]
Installations = NamedDependency[InstallationService]
Integrations = NamedDependency[IntegrationService]
Credentials = NamedDependency[CredentialService]


async def resolve_user(
    principal: Principal, users: UserService, user_ref: str | None
) -> UserRecord:
    """The user a request is about. A user token may only name itself (another user → 404);
    an API key must name one (`userId` by id or username)."""
    if principal.user_id is not None:
        user = await users.read(principal.user_id)
        if user_ref not in (None, "", user.id, user.username):
            raise NotFound(f"No user {user_ref!r} in this environment.")
        return user
    if not user_ref:
        raise InvalidRequest("userId: required (the user's id or username).", field="userId")
    return await users.read(user_ref)


async def token_user(principal: Principal, users: UserService) -> User:
    """The user of a user-token request (routes with ``auth="user"``, which guarantees one)."""
    if principal.user_id is None:
        raise NotFound("No user.")
    return await users.get(principal.user_id)
