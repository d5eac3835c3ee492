"""Shared fixtures: settings per database backend, the app, an HTTP client, and tenants.

The same tests run against SQLite always and against PostgreSQL when
``EMBEDDED_UI_TEST_POSTGRES_URL`` is set (CI sets it). A backend that is switched on but
unreachable fails the run: it never silently skips.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from embedded_ui.app import create_app
from embedded_ui.settings import Settings
from embedded_ui.store import Base, create_engine, migrate
from embedded_ui.workspaces import WorkspaceService

POSTGRES_URL = os.environ.get("EMBEDDED_UI_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("EMBEDDED_UI_TEST_REDIS_URL")
TEST_SIGNING_SEED = base64.urlsafe_b64encode(b"\x01" * 32).rstrip(b"=").decode()
TEST_SIGNING_KEYS = f"test-1:{TEST_SIGNING_SEED}"
PUBLIC_URL = "http://embedded-ui.test"


def _asyncpg_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"postgresql+asyncpg://{rest}" if scheme in ("postgres", "postgresql") else url


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A private database for this test process, created from the configured one."""
    if POSTGRES_URL is None:
        pytest.skip("PostgreSQL variant off: set EMBEDDED_UI_TEST_POSTGRES_URL to run it")
    base_url = _asyncpg_url(POSTGRES_URL)
    name = f"eui_test_{os.getpid()}_{secrets.token_hex(3)}"

    async def admin(statement: str) -> None:
        engine = create_async_engine(base_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(f"PostgreSQL variant is on but {POSTGRES_URL} is unreachable: {exc}")
    yield base_url.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, made once per test process and copied for each test: the
    migrations themselves are tested (test_schema), so running them 500 times adds nothing."""
    path = tmp_path_factory.mktemp("template") / "embedded-ui.sqlite3"

    async def build() -> None:
        engine = create_engine(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(build())
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        database = tmp_path / "embedded-ui.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), database)
        yield f"sqlite+aiosqlite:///{database}"
        return
    url: str = request.getfixturevalue("postgres_database")
    yield url
    asyncio.run(_truncate_all(url))


async def _truncate_all(url: str) -> None:
    """Empty every table the test's database has (a test that ran first may have left the
    per-process database unmigrated, so only existing tables are named)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            existing = set(
                await connection.scalars(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                )
            )
            tables = [t.name for t in Base.metadata.sorted_tables if t.name in existing]
            if tables:
                names = ", ".join(f'"{name}"' for name in tables)
                await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings.from_env(
        {
            "EMBEDDED_UI_DATABASE_URL": database_url,
            "EMBEDDED_UI_SIGNING_KEYS": TEST_SIGNING_KEYS,
            "EMBEDDED_UI_PUBLIC_URL": PUBLIC_URL,
            "EMBEDDED_UI_RATE_LIMIT_PER_MINUTE": "100000",
            "EMBEDDED_UI_LOG_LEVEL": "WARNING",
        }
    )


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app, base_url=PUBLIC_URL) as test_client:
        yield test_client


@dataclass(frozen=True)
class Tenant:
    """One workspace environment and a working API key for it."""

    workspace_id: str
    workspace_name: str
    environment: str
    key: str
    key_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


MakeTenant = Callable[..., "asyncio.Future[Tenant]"]


@pytest.fixture
def make_tenant(settings: Settings, client: AsyncTestClient[Litestar]) -> Callable[..., object]:
    """``await make_tenant("acme", "production")``: a workspace (made once) and a new key."""

    async def make(name: str = "acme", environment: str = "development") -> Tenant:
        engine = create_engine(settings)
        try:
            async with async_sessionmaker(engine, expire_on_commit=False)() as session:
                service = WorkspaceService(session, actor="test")
                try:
                    workspace = await service.find(name)
                except Exception:
                    workspace = await service.create(name)
                issued = await service.create_key(workspace, environment)
                await session.commit()
        finally:
            await engine.dispose()
        return Tenant(workspace.id, name, environment, issued.plaintext, issued.key.id)

    return make


@pytest.fixture
async def tenant(make_tenant: Callable[..., object]) -> Tenant:
    return await make_tenant()  # type: ignore[no-any-return, misc]


@pytest.fixture
def with_settings(settings: Settings) -> Callable[..., Settings]:
    """Variations of the test settings, e.g. ``with_settings(rate_limit_per_minute=3)``."""
    return lambda **changes: replace(settings, **changes)
