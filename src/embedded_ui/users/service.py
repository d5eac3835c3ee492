"""End users of an ISV, always within one workspace environment (the service's scope)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui import audit
from embedded_ui.errors import Conflict, EmbeddedUIError, InvalidRequest, NotFound
from embedded_ui.store import Scope, User, bind_scope, new_ordered_id, utcnow
from embedded_ui.store.inline import InlineReader, read_rows

MAX_USERNAME = 255
MAX_FULL_NAME = 256
MAX_BATCH = 1000
# Control, format (zero-width, bidi overrides), surrogate, private-use and unassigned
# characters make two usernames look alike or break logs; letters of every script are fine.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def clean_text(field: str, value: str, max_length: int) -> str:
    """NFC-normalise a name and refuse what cannot be shown safely; errors name the field."""
    value = unicodedata.normalize("NFC", value)
    if not value.strip():
        raise InvalidRequest(f"{field}: must not be empty.", field=field)
    if value != value.strip():
        raise InvalidRequest(f"{field}: must not start or end with spaces.", field=field)
    if len(value) > max_length:
        raise InvalidRequest(f"{field}: at most {max_length} characters.", field=field)
    for char in value:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise InvalidRequest(
                f"{field}: contains the invisible or control character U+{ord(char):04X}.",
                field=field,
            )
    return value


@dataclass(frozen=True, slots=True)
class NewUser:
    username: str
    full_name: str | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    index: int
    user: User | None = None
    error: EmbeddedUIError | None = None


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as read for an answer: plain values, no ORM identity (see ``UserService.read``)."""

    id: str
    username: str
    full_name: str | None
    created_at: datetime


# The hot reads, as Core statements with the tenant filter written out: they run on the
# session's connection, so the ORM's tenant scope (store/db.py) does not apply to them.
_USER_COLUMNS = select(User.id, User.username, User.full_name, User.created_at)
_TENANT = (User.workspace_id == bindparam("workspace_id")) & (
    User.environment == bindparam("environment")
)
_USER_BY_ID = _USER_COLUMNS.where(_TENANT & (User.id == bindparam("reference")))
_USER_BY_USERNAME = _USER_COLUMNS.where(_TENANT & (User.username == bindparam("reference")))
_USER_EXISTS = select(User.id).where(_TENANT & (User.id == bindparam("reference")))


class UserService:
    def __init__(
        self, session: AsyncSession, scope: Scope, actor: str, reader: InlineReader | None = None
    ) -> None:
        bind_scope(session, scope)
        self._session = session
        self._scope = scope
        self._actor = actor
        self._reader = reader

    async def _rows(self, statement: Select[Any], params: dict[str, str]) -> Sequence[Any]:
        return await read_rows(self._session, self._reader, statement, params)

    def _new(self, item: NewUser) -> User:
        return User(**new_user_row(self._scope, item))

    async def create(self, item: NewUser) -> User:
        user = self._new(item)
        username = user.username  # read before a failed flush expires the object
        self._session.add(user)
        try:
            await self._session.flush()
        except IntegrityError:
            await self._session.rollback()
            raise _duplicate(username) from None
        return user

    async def create_many(self, items: Sequence[NewUser | EmbeddedUIError]) -> list[BatchResult]:
        """Create what is valid; report each item's outcome. One bad item sinks nothing else."""
        if len(items) > MAX_BATCH:
            raise InvalidRequest(
                f"users: at most {MAX_BATCH} users per call, got {len(items)}.", field="users"
            )
        for attempt in range(2):
            results, pending = await self._plan_batch(items)
            self._session.add_all(user for _, user in pending)
            try:
                await self._session.flush()
            except IntegrityError:
                # Someone created one of these usernames between our check and our insert;
                # plan again against what now exists.
                await self._session.rollback()
                if attempt == 1:
                    raise
                continue
            results.extend(BatchResult(index, user=user) for index, user in pending)
            return sorted(results, key=lambda result: result.index)
        raise AssertionError("unreachable")

    async def _plan_batch(
        self, items: Sequence[NewUser | EmbeddedUIError]
    ) -> tuple[list[BatchResult], list[tuple[int, User]]]:
        results: list[BatchResult] = []
        candidates: list[tuple[int, User]] = []
        for index, item in enumerate(items):
            if isinstance(item, EmbeddedUIError):
                results.append(BatchResult(index, error=item))
                continue
            try:
                candidates.append((index, self._new(item)))
            except EmbeddedUIError as exc:
                results.append(BatchResult(index, error=exc))
        existing = await self._existing_usernames([user.username for _, user in candidates])
        pending: list[tuple[int, User]] = []
        seen: set[str] = set()
        for index, user in candidates:
            if user.username in existing or user.username in seen:
                results.append(BatchResult(index, error=_duplicate(user.username)))
            else:
                seen.add(user.username)
                pending.append((index, user))
        return results, pending

    async def _existing_usernames(self, usernames: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(usernames), 500):
            chunk = usernames[start : start + 500]
            found.update(
                await self._session.scalars(select(User.username).where(User.username.in_(chunk)))
            )
        return found

    async def page(self, page: int, limit: int) -> tuple[list[User], int]:
        total = await self._session.scalar(select(func.count()).select_from(User)) or 0
        rows = await self._session.scalars(
            select(User).order_by(User.created_at, User.id).offset((page - 1) * limit).limit(limit)
        )
        return list(rows), total

    async def get(self, reference: str) -> User:
        """Find a user by id, else by username (Alloy accepts either in the path)."""
        user = await self._session.scalar(select(User).where(User.id == reference))
        if user is None:
            user = await self._session.scalar(select(User).where(User.username == reference))
        if user is None:
            raise NotFound(f"No user {reference!r} in this environment.")
        return user

    async def read(self, reference: str) -> UserRecord:
        """``get`` for answers that only show the user: one Core SELECT on an index (two when
        the reference is a username), no ORM entity; the same tenant filter, written out."""
        params = self._params(reference)
        rows = await self._rows(_USER_BY_ID, params) or await self._rows(_USER_BY_USERNAME, params)
        if not rows:
            raise NotFound(f"No user {reference!r} in this environment.")
        user_id, username, full_name, created_at = rows[0]
        return UserRecord(user_id, username, full_name, created_at)

    def _params(self, reference: str) -> dict[str, str]:
        return {
            "workspace_id": self._scope.workspace_id,
            "environment": self._scope.environment,
            "reference": reference,
        }

    async def update(self, reference: str, changes: dict[str, str | None]) -> User:
        if not changes:
            raise InvalidRequest("Nothing to update: send username and/or fullName.")
        user = await self.get(reference)
        if "username" in changes:
            username = changes["username"]
            if username is None:
                raise InvalidRequest("username: must not be null.", field="username")
            user.username = clean_text("username", username, MAX_USERNAME)
        if "full_name" in changes:
            full_name = changes["full_name"]
            user.full_name = (
                None if full_name is None else clean_text("fullName", full_name, MAX_FULL_NAME)
            )
        username = user.username  # read before a failed flush expires the object
        try:
            await self._session.flush()
        except IntegrityError:
            await self._session.rollback()
            raise _duplicate(username) from None
        return user

    async def delete(self, user: User) -> str:
        """Delete a user (as :meth:`get` found it); its tokens stop working because
        verification looks the user up."""
        await self._session.execute(delete(User).where(User.id == user.id))
        audit.record(
            self._session,
            actor=self._actor,
            action="user.delete",
            workspace_id=self._scope.workspace_id,
            environment=self._scope.environment,
            target=user.id,
        )
        return user.id

    async def exists(self, user_id: str) -> bool:
        return bool(await self._rows(_USER_EXISTS, self._params(user_id)))


def new_user_row(scope: Scope, item: NewUser) -> dict[str, Any]:
    """The column values of a new user (the hot path inserts them as they are)."""
    return {
        "id": new_ordered_id(),
        "workspace_id": scope.workspace_id,
        "environment": scope.environment,
        "username": clean_text("username", item.username, MAX_USERNAME),
        "full_name": None
        if item.full_name is None
        else clean_text("fullName", item.full_name, MAX_FULL_NAME),
        "created_at": utcnow(),
    }


def read_inline(reader: InlineReader, scope: Scope, reference: str) -> UserRecord | None:
    """``UserService.read`` for the hot path (api/hot.py), by the same statements: ``None``
    when there is no such user or SQLite could not answer at once, so that the ordinary path
    decides and explains."""
    params = {
        "workspace_id": scope.workspace_id,
        "environment": scope.environment,
        "reference": reference,
    }
    rows = reader.rows(_USER_BY_ID, params)
    if rows == []:  # not an id: perhaps a username (None means "could not tell")
        rows = reader.rows(_USER_BY_USERNAME, params)
    if not rows:
        return None
    user_id, username, full_name, created_at = rows[0]
    return UserRecord(user_id, username, full_name, created_at)


def _duplicate(username: str) -> Conflict:
    return Conflict(f"A user with username {username!r} already exists.", field="username")
