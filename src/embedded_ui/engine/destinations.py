"""Named database destinations per workspace environment, and the row inserts of ``database``
blocks.

A destination is a SQLAlchemy URL under a name. The URL is sealed by the vault with
associated data naming the row (like OAuth clients), and is shown only with its password
masked. Only the async drivers the service ships are accepted: ``postgresql+asyncpg`` and
``sqlite+aiosqlite`` (``postgresql://``, ``postgres://`` and ``sqlite:///`` are normalised).

The inserts themselves are in :mod:`embedded_ui.engine.destination_inserts`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui import audit
from embedded_ui.credentials import Vault
from embedded_ui.engine.ssrf import BlockedDestination, OutboundPolicy, ResolutionFailed, check
from embedded_ui.errors import InvalidRequest, NotFound
from embedded_ui.settings import Settings
from embedded_ui.store import Scope, bind_scope, iso_ms, new_id, utcnow
from embedded_ui.store.models import Destination

__all__ = [
    "DestinationError",
    "DestinationService",
    "check_reachable",
    "describe_destination",
    "mask_url",
    "normalise_url",
]

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MAX_URL_LENGTH = 2_048
MAX_ROWS = 10_000
_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


class DestinationError(Exception):
    """An insert failed; the message is safe to show (no URL, no password)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- URLs ----------------------------------------------------------------------------------


def normalise_url(raw: str) -> URL:
    """Parse ``raw`` and switch it to the async driver; :class:`InvalidRequest` otherwise."""
    text = raw.strip()
    if not text or len(text) > MAX_URL_LENGTH:
        raise InvalidRequest(f"url: expected 1 to {MAX_URL_LENGTH} characters.", field="url")
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise InvalidRequest(
            "url: not a database URL; expected postgresql://user:password@host/db or "
            "sqlite:///path/to/file.db.",
            field="url",
        ) from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise InvalidRequest(
            f"url: {url.drivername} is not supported; use postgresql+asyncpg:// (or "
            "postgresql://) or sqlite+aiosqlite:/// (or sqlite:///).",
            field="url",
        )
    url = url.set(drivername=driver)
    if driver.startswith("sqlite") and url.database in (None, "", ":memory:"):
        raise InvalidRequest("url: a SQLite destination needs a file path.", field="url")
    return url


async def check_reachable(url: URL, settings: Settings) -> None:
    """Refuse destinations a tenant must not reach: a PostgreSQL host that is not a global
    address (unless `EMBEDDED_UI_OUTBOUND_ALLOW` lists its network, as for Stream Data), a
    socket path instead of a host, and SQLite files outside `EMBEDDED_UI_DESTINATION_SQLITE_DIR`
    (anywhere only in development mode). Checked when a destination is set and before every
    insert, so a name that resolves elsewhere later is refused then."""
    if url.drivername.startswith("sqlite"):
        _check_sqlite_file(url, settings)
        return
    if not url.host or "host" in url.query or url.host.startswith("/"):
        raise InvalidRequest(
            "url: a PostgreSQL destination needs a host name (no socket paths).", field="url"
        )
    host = f"[{url.host}]" if ":" in url.host else url.host
    try:
        await check(f"http://{host}:{url.port or 5432}/", OutboundPolicy.from_settings(settings))
    except BlockedDestination as exc:
        raise InvalidRequest(
            f"url: {exc.reason}; destinations must be global addresses unless "
            "EMBEDDED_UI_OUTBOUND_ALLOW lists their network.",
            field="url",
        ) from None
    except ResolutionFailed as exc:
        raise InvalidRequest(f"url: {exc}.", field="url") from None


def _check_sqlite_file(url: URL, settings: Settings) -> None:
    path = Path(url.database or "").expanduser().resolve()
    if settings.destination_sqlite_dir:
        allowed = Path(settings.destination_sqlite_dir).expanduser().resolve()
        if not path.is_relative_to(allowed):
            raise InvalidRequest(
                f"url: SQLite destinations must be files in {allowed} "
                "(EMBEDDED_UI_DESTINATION_SQLITE_DIR).",
                field="url",
            )
    elif not settings.is_development:
        raise InvalidRequest(
            "url: SQLite destinations are off outside development mode unless "
            "EMBEDDED_UI_DESTINATION_SQLITE_DIR names their directory.",
            field="url",
        )


def mask_url(url: str | URL) -> str:
    """The URL with its password replaced by ``***``: what the API and the CLI show."""
    parsed = url if isinstance(url, URL) else make_url(url)
    return parsed.render_as_string(hide_password=True)


def _same_database(one: URL, other: URL) -> bool:
    if one.drivername.startswith("sqlite") or other.drivername.startswith("sqlite"):
        return (
            one.drivername.startswith("sqlite")
            and other.drivername.startswith("sqlite")
            and Path(one.database or "").resolve() == Path(other.database or "").resolve()
        )
    return (one.host or "", one.port or 5432, one.database) == (
        other.host or "",
        other.port or 5432,
        other.database,
    )


# --- the service ---------------------------------------------------------------------------


def destination_aad(workspace_id: str, environment: str, row_id: str) -> bytes:
    return f"destination:{workspace_id}:{environment}:{row_id}".encode()


def describe_destination(row: Destination, url: str) -> dict[str, Any]:
    """What the API and the CLI show: the URL with its password masked."""
    return {
        "name": row.name,
        "url": mask_url(url),
        "createdAt": iso_ms(row.created_at),
        "updatedAt": iso_ms(row.updated_at),
    }


class DestinationService:
    """Set, list, open and delete one workspace environment's destinations."""

    def __init__(
        self,
        session: AsyncSession,
        scope: Scope,
        vault: Vault,
        actor: str = "api",
        service_database_url: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._settings = settings
        bind_scope(session, scope)
        self._session = session
        self._scope = scope
        self._vault = vault
        self._actor = actor
        self._own = make_url(service_database_url) if service_database_url else None

    async def _row(self, name: str) -> Destination | None:
        row: Destination | None = await self._session.scalar(
            sa.select(Destination).where(Destination.name == name)
        )
        return row

    async def set(self, name: str, raw_url: str) -> tuple[Destination, str]:
        """Create or replace ``name``; returns the row and the normalised URL."""
        if not NAME.match(name):
            raise InvalidRequest(
                "name: expected lowercase letters, digits, '-' or '_' (at most 100).",
                field="name",
            )
        url = normalise_url(raw_url)
        if self._own is not None and _same_database(url, self._own):
            raise InvalidRequest(
                "url: that is the service's own database; use a database of your own.",
                field="url",
            )
        if self._settings is not None:
            await check_reachable(url, self._settings)
        text = url.render_as_string(hide_password=False)
        row = await self._row(name)
        now = utcnow()
        if row is None:
            row = Destination(
                id=new_id(),
                workspace_id=self._scope.workspace_id,
                environment=self._scope.environment,
                name=name,
                created_at=now,
            )
            self._session.add(row)
        row.key_id, row.ciphertext = self._vault.seal({"url": text}, self._aad(row.id))
        row.updated_at = now
        await self._session.flush()
        self._audit("destination.set", row, name)
        return row, text

    async def get(self, name: str) -> Destination:
        row = await self._row(name)
        if row is None:
            raise NotFound(f"No destination {name!r} in this environment.")
        return row

    def url_of(self, row: Destination) -> str:
        """The opened URL, password included: for inserts only, never to show."""
        return str(self._vault.open(row.key_id, row.ciphertext, self._aad(row.id))["url"])

    async def url(self, name: str) -> str:
        return self.url_of(await self.get(name))

    async def list(self) -> list[tuple[Destination, str]]:
        rows = await self._session.scalars(sa.select(Destination).order_by(Destination.name))
        return [(row, self.url_of(row)) for row in rows]

    async def delete(self, name: str) -> None:
        row = await self.get(name)
        await self._session.delete(row)
        self._audit("destination.delete", row, name)

    def _audit(self, action: str, row: Destination, name: str) -> None:
        audit.record(
            self._session,
            actor=self._actor,
            action=action,
            workspace_id=self._scope.workspace_id,
            environment=self._scope.environment,
            target=row.id,
            name=name,
        )

    def _aad(self, row_id: str) -> bytes:
        return destination_aad(self._scope.workspace_id, self._scope.environment, row_id)
