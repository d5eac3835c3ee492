"""Workspaces (the ISV) and their API keys. Used by the CLI and by request authentication."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui import audit
from embedded_ui.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from embedded_ui.security import api_keys
from embedded_ui.store import ENVIRONMENTS, ApiKey, Scope, Workspace, utcnow


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key as created: the plaintext exists only in this object, shown once."""

    key: ApiKey
    plaintext: str


class WorkspaceService:
    def __init__(self, session: AsyncSession, actor: str = "cli") -> None:
        self._session = session
        self._actor = actor

    async def create(self, name: str) -> Workspace:
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidRequest("name: expected 1 to 200 characters.")
        workspace = Workspace(name=name)
        self._session.add(workspace)
        try:
            await self._session.flush()
        except IntegrityError:
            await self._session.rollback()
            raise Conflict(f"A workspace named {name!r} already exists.") from None
        audit.record(
            self._session, actor=self._actor, action="workspace.create", workspace_id=workspace.id
        )
        return workspace

    async def list_all(self) -> list[Workspace]:
        return list(await self._session.scalars(select(Workspace).order_by(Workspace.created_at)))

    async def find(self, name_or_id: str) -> Workspace:
        found = await self._session.scalar(
            select(Workspace).where((Workspace.id == name_or_id) | (Workspace.name == name_or_id))
        )
        if found is None:
            raise NotFound(f"No workspace is named or has the id {name_or_id!r}.")
        return found

    async def create_key(
        self, workspace: Workspace, environment: str, label: str | None = None
    ) -> IssuedKey:
        if environment not in ENVIRONMENTS:
            raise InvalidRequest(f"environment: expected one of {', '.join(ENVIRONMENTS)}.")
        minted = api_keys.mint(environment)
        key = ApiKey(
            workspace_id=workspace.id,
            environment=environment,
            key_hash=minted.key_hash,
            display_prefix=minted.display_prefix,
            last_four=minted.last_four,
            label=label,
        )
        self._session.add(key)
        await self._session.flush()
        audit.record(
            self._session,
            actor=self._actor,
            action="api_key.create",
            workspace_id=workspace.id,
            environment=environment,
            target=key.id,
        )
        return IssuedKey(key=key, plaintext=minted.plaintext)

    async def list_keys(
        self, workspace: Workspace | None = None, environment: str | None = None
    ) -> list[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if workspace is not None:
            query = query.where(ApiKey.workspace_id == workspace.id)
        if environment is not None:
            query = query.where(ApiKey.environment == environment)
        return list(await self._session.scalars(query))

    async def revoke_key(self, key_id: str) -> ApiKey:
        key = await self._session.get(ApiKey, key_id)
        if key is None:
            raise NotFound(f"No API key has the id {key_id!r}.")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            audit.record(
                self._session,
                actor=self._actor,
                action="api_key.revoke",
                workspace_id=key.workspace_id,
                environment=key.environment,
                target=key.id,
            )
        return key


@dataclass(frozen=True, slots=True)
class ApiKeyPrincipal:
    """An ISV's backend, authenticated by one of its API keys."""

    scope: Scope
    key_id: str


async def authenticate_key(
    session: AsyncSession, environment: str, key_hash: str
) -> ApiKeyPrincipal:
    row = (
        await session.execute(
            select(ApiKey.id, ApiKey.workspace_id, ApiKey.environment, ApiKey.revoked_at).where(
                ApiKey.key_hash == key_hash
            )
        )
    ).one_or_none()
    if row is None:
        raise Unauthorized("The API key is not recognised.")
    if row.revoked_at is not None:
        raise Unauthorized("The API key has been revoked.")
    if row.environment != environment:  # cannot happen unless the table was edited by hand
        raise Unauthorized("The API key does not belong to this environment.")
    return ApiKeyPrincipal(scope=Scope(row.workspace_id, row.environment), key_id=row.id)


def describe_key(key: ApiKey) -> dict[str, str | None]:
    """A key as shown to people: never the secret, only what identifies it."""
    return {
        "id": key.id,
        "workspaceId": key.workspace_id,
        "environment": key.environment,
        "display": f"{key.display_prefix}…{key.last_four}",
        "label": key.label,
        "createdAt": _iso(key.created_at),
        "revokedAt": _iso(key.revoked_at) if key.revoked_at else None,
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
