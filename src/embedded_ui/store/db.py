"""Engine, sessions, migrations, and the tenant scope every ORM query runs under."""

from __future__ import annotations

import asyncio
import fcntl
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from advanced_alchemy.config import AsyncSessionConfig
from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from advanced_alchemy.extensions.litestar._utils import (
    delete_aa_scope_state,
    get_aa_scope_state,
)
from advanced_alchemy.extensions.litestar.plugins.init.config.common import (
    SESSION_TERMINUS_ASGI_EVENTS,
)
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, with_loader_criteria

from embedded_ui.settings import Settings
from embedded_ui.store import sqlite_driver
from embedded_ui.store.models import TenantScoped

if TYPE_CHECKING:
    from litestar.types import BeforeMessageSendHookHandler, Message
    from litestar.types import Scope as ASGIScope

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_ID = 0x6575695F  # "eui_": serialises concurrent starts on PostgreSQL


@dataclass(frozen=True, slots=True)
class Scope:
    """The tenant a request acts for: one workspace, one environment."""

    workspace_id: str
    environment: str


def bind_scope(session: AsyncSession, scope: Scope) -> None:
    """From now on every ORM query in this session sees only this tenant's rows."""
    session.info["scope"] = scope


_WROTE = "embedded_ui.wrote"


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _: UOWTransaction) -> None:
    session.info[_WROTE] = True


def session_wrote(session: AsyncSession) -> bool:
    """Whether the session flushed, executed a statement other than a SELECT, or holds
    pending changes: only then does the request's transaction need a COMMIT."""
    return bool(session.info.get(_WROTE) or session.new or session.dirty or session.deleted)


@event.listens_for(Session, "do_orm_execute")
def _scope_every_query(state: ORMExecuteState) -> None:
    if not state.is_select:
        state.session.info[_WROTE] = True  # INSERT/UPDATE/DELETE/text(): commit at the end
    scope: Scope | None = state.session.info.get("scope")
    if scope is None or not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return
    workspace_id, environment = scope.workspace_id, scope.environment
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantScoped,
            lambda cls: (cls.workspace_id == workspace_id) & (cls.environment == environment),
            include_aliases=True,
        )
    )


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url
    if url.startswith("sqlite"):
        # SQLite has one writer; every aiosqlite connection is a thread. A small pool measured
        # +50% req/s and POST p99 2 s -> 0.2 s against the default 5 + 10 (docs/benchmarks.md).
        # One thread hand-off per statement instead of four (store/sqlite_driver.py).
        url = url.replace("sqlite+aiosqlite:", f"sqlite+{sqlite_driver.DRIVER}:", 1)
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_size=2, max_overflow=2)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
    )


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; NORMAL sync is durable across process crashes.
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        "busy_timeout=30000",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def commit_if_written(session_scope_key: str) -> BeforeMessageSendHookHandler:
    """A ``before_send`` hook: COMMIT a 2xx request's session if it wrote, then close it.

    A read-only request (most GETs) needs no COMMIT: closing the session hands the connection
    back to the pool, which ends the transaction. Any other status, or a session that wrote
    without reaching 2xx, is rolled back by that same close. Unlike advanced-alchemy's
    ``autocommit`` handler, a failed COMMIT is not swallowed: it propagates, so the client
    gets a 500 instead of a 2xx for a write that did not happen.
    """

    async def handler(message: Message, scope: ASGIScope) -> None:
        session = cast("AsyncSession | None", get_aa_scope_state(scope, session_scope_key))
        if session is None:
            return
        try:
            if (
                message["type"] == "http.response.start"
                and 200 <= message["status"] < 300
                and session_wrote(session)
            ):
                await session.commit()
        finally:
            if message["type"] in SESSION_TERMINUS_ASGI_EVENTS:
                delete_aa_scope_state(scope, session_scope_key)
                # A session that never began a transaction nor loaded an object holds nothing
                # to release (a GET served from caches and inline reads, store/inline.py);
                # closing it would still cost a greenlet round trip.
                if session.in_transaction() or session.identity_map or session.new:
                    await session.close()

    return handler


def create_db_config(engine: AsyncEngine) -> SQLAlchemyAsyncConfig:
    config = SQLAlchemyAsyncConfig(
        engine_instance=engine,
        # advanced-alchemy's cache-invalidation and file-object listeners serve features this
        # service does not use; the cache one built an engine copy on every commit.
        session_config=AsyncSessionConfig(
            expire_on_commit=False, info={"enable_cache_listener": False}
        ),
        enable_file_object_listener=False,
        set_default_exception_handler=False,
        create_all=False,
    )
    # The scope key is unique per config (a process may build several apps), known only now.
    config.before_send_handler = commit_if_written(config.session_scope_key)
    return config


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``; safe to run from several processes at once."""
    database = sqlite_file(engine)
    if database is None:
        await _migrate(engine, revision)
        return
    # SQLite runs Alembic's DDL outside a transaction, so two processes starting on a new
    # file (`serve --workers 2`) both found no tables and both created them: one crashed
    # with "table ... already exists". An exclusive lock on a file beside the database makes
    # the others wait, then find the schema at head. (PostgreSQL: an advisory lock.)
    lock = await asyncio.to_thread(_lock_exclusively, f"{database}.migrate-lock")
    try:
        await _migrate(engine, revision)
    finally:
        lock.close()  # closing the file releases the lock


def _lock_exclusively(path: str) -> IO[bytes]:
    lock = open(path, "ab")  # noqa: SIM115 - held open until the caller closes it
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
    except BaseException:
        lock.close()
        raise
    return lock


async def _migrate(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})"))
        await connection.run_sync(_upgrade, revision)


def sqlite_file(engine: AsyncEngine) -> str | None:
    """The path of the engine's SQLite file database; ``None`` for anything else (PostgreSQL,
    memory, URI databases), which inline statements leave to the engine."""
    url = engine.url
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if url.query.get("mode") == "memory" or database.startswith("file:"):
        return None
    return database


def _upgrade(connection: Connection, revision: str) -> None:
    config = _alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()
