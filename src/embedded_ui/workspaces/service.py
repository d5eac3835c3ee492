"""Workspaces (the ISV) and their API keys. Used by the CLI and by request authentication."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from embedded_ui import audit
from embedded_ui.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from embedded_ui.security import api_keys
from embedded_ui.store import ENVIRONMENTS, ApiKey, Scope, Workspace, utcnow
from embedded_ui.store.inline import InlineReader, read_rows


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
            # This process refuses the key at once; others within KEY_CACHE_SECONDS.
            KEY_CACHE.forget(key.key_hash)
            self._session.info.setdefault(_REVOKED_HASHES, set()).add(key.key_hash)
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


KEY_CACHE_SECONDS = 1.0
"""How long a process trusts an API key it looked up: a key revoked by another process (the
CLI, another worker) is refused by this one at most this long after the revocation commits.
The process that revokes a key forgets it at once (docs/security.md)."""


class KeyCache:
    """``key_hash -> (principal, expiry)`` for keys found valid; refusals are never cached."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[str, tuple[ApiKeyPrincipal, float]] = {}

    def get(self, key_hash: str) -> ApiKeyPrincipal | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            self._entries.pop(key_hash, None)
            return None
        return entry[0]

    def put(self, key_hash: str, principal: ApiKeyPrincipal) -> None:
        if len(self._entries) >= self._max:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
            if len(self._entries) >= self._max:
                self._entries.clear()
        self._entries[key_hash] = (principal, time.monotonic() + self._ttl)

    def forget(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)

    def clear(self) -> None:
        self._entries.clear()


KEY_CACHE = KeyCache()
_KEY_BY_HASH = select(ApiKey.id, ApiKey.workspace_id, ApiKey.environment, ApiKey.revoked_at).where(
    ApiKey.key_hash == bindparam("key_hash")
)
_REVOKED_HASHES = "embedded_ui.revoked_key_hashes"


@event.listens_for(Session, "after_commit")
def _forget_revoked(session: Session) -> None:
    # Again after the COMMIT: a request of this process may have cached the key between
    # revoke_key and the commit, from the row as it was before.
    for key_hash in session.info.pop(_REVOKED_HASHES, ()):
        KEY_CACHE.forget(key_hash)


async def authenticate_key(
    session: AsyncSession, environment: str, key_hash: str, reader: InlineReader | None = None
) -> ApiKeyPrincipal:
    """The principal of a key, by its hash (the caller checked its shape and checksum).

    Valid keys are cached per process for ``KEY_CACHE_SECONDS``: most requests then touch
    no database for authentication. The lookup is a Core SELECT on the unique ``key_hash``
    index (no ORM entity, no tenant scope: the key is what establishes the tenant)."""
    principal = KEY_CACHE.get(key_hash)
    if principal is None:
        # Inline on SQLite (store/inline.py): when the cached keys of a busy process expire,
        # every request in flight looks its key up at once, and through the engine they
        # queued on its small pool and aiosqlite's thread.
        rows = await read_rows(session, reader, _KEY_BY_HASH, {"key_hash": key_hash})
        principal = _remember(key_hash, rows)
    if principal.scope.environment != environment:  # only if the table was edited by hand
        raise Unauthorized("The API key does not belong to this environment.")
    return principal


def known_key(environment: str, key_hash: str, reader: InlineReader) -> ApiKeyPrincipal | None:
    """``authenticate_key`` for the hot path (api/hot.py): the principal of a valid key from
    the cache or one inline read, or ``None`` when the key is not valid or SQLite could not
    answer at once, so that the ordinary path decides and explains."""
    principal = KEY_CACHE.get(key_hash)
    if principal is None:
        rows = reader.rows(_KEY_BY_HASH, {"key_hash": key_hash})
        if rows is None:
            return None
        try:
            principal = _remember(key_hash, rows)
        except Unauthorized:
            return None
    return principal if principal.scope.environment == environment else None


def _remember(key_hash: str, rows: Sequence[Any]) -> ApiKeyPrincipal:
    """The principal of a key looked up by hash, cached when valid."""
    if not rows:
        raise Unauthorized("The API key is not recognised.")
    key_id, workspace_id, key_environment, revoked_at = rows[0]
    if revoked_at is not None:
        raise Unauthorized("The API key has been revoked.")
    principal = ApiKeyPrincipal(scope=Scope(workspace_id, key_environment), key_id=key_id)
    KEY_CACHE.put(key_hash, principal)
    return principal


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
