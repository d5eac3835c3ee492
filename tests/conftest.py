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
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
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
SANDBOX_CLIENT_ID = "embedded-ui-demo"


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = 20) -> int:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait(timeout=timeout)


@dataclass
class SandboxProcess:
    """A real `embedded-ui sandbox` process on loopback: the app credentials are verified
    against, and the OAuth provider of the OAuth tests. Its secrets are new on every run, so
    they double as canaries."""

    url: str
    admin_secret: str
    client_id: str
    client_secret: str
    api_key: str
    """The demo account's key (the account OAuth consent approves for)."""
    planted: set[str] = field(default_factory=set)

    @property
    def admin(self) -> dict[str, str]:
        return {"X-Sandbox-Admin": self.admin_secret}

    def new_key(self, name: str = "Test Store", api_key: str | None = None) -> str:
        """A new sandbox account and its API key (what a merchant would paste); ``api_key``
        plants a chosen value, e.g. a canary to search for later."""
        if api_key in self.planted:
            return api_key
        body = {"name": name} if api_key is None else {"name": name, "api_key": api_key}
        response = httpx.post(
            f"{self.url}/_sandbox/accounts", json=body, headers=self.admin, timeout=10
        )
        response.raise_for_status()
        key: str = response.json()["api_key"]
        self.planted.add(key)
        return key

    def reset(self) -> None:
        """Everything back to how the process started: accounts, grants, counters, switches."""
        response = httpx.post(f"{self.url}/_sandbox/reset", headers=self.admin, timeout=10)
        assert response.status_code == 200, response.text
        self.planted.clear()

    def behave(self, **settings: Any) -> None:
        response = httpx.post(
            f"{self.url}/_sandbox/behaviour", json=settings, headers=self.admin, timeout=10
        )
        assert response.status_code == 200, response.text

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/_sandbox/stats", headers=self.admin, timeout=10)
        response.raise_for_status()
        counted: dict[str, Any] = response.json()
        return counted


Sandbox = SandboxProcess


@pytest.fixture(scope="session")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """One sandbox process per test process, started on first use and stopped at the end."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("sandbox")
    sandbox = SandboxProcess(
        url=f"http://127.0.0.1:{port}",
        admin_secret="sbxadm_" + secrets.token_hex(12),
        client_id=SANDBOX_CLIENT_ID,
        client_secret="canary-client-secret-" + secrets.token_hex(12),
        api_key="sbx_" + secrets.token_hex(12),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_UI_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "EMBEDDED_UI_SANDBOX_CLIENT_ID": sandbox.client_id,
            "EMBEDDED_UI_SANDBOX_CLIENT_SECRET": sandbox.client_secret,
            "EMBEDDED_UI_SANDBOX_ADMIN_SECRET": sandbox.admin_secret,
            "EMBEDDED_UI_SANDBOX_API_KEY": sandbox.api_key,
            "EMBEDDED_UI_SANDBOX_REDIRECT_URIS": f"{PUBLIC_URL}/oauth/callback/sandbox",
        }
    )
    log = workdir / "sandbox.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "embedded_ui", "sandbox", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 45
        while True:
            if process.poll() is not None:
                pytest.fail(f"the sandbox exited at start:\n{log.read_text()}")
            with suppress(httpx.TransportError):
                if httpx.get(f"{sandbox.url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"the sandbox did not answer /health in time:\n{log.read_text()}")
            time.sleep(0.1)
        yield sandbox
    finally:
        stop_process_group(process)


@pytest.fixture
def sandbox(sandbox_process: SandboxProcess) -> SandboxProcess:
    """The sandbox, reset: no accounts but the demo one, no grants, zero counters."""
    sandbox_process.reset()
    return sandbox_process


async def every_row_as_text(database_url: str) -> str:
    """Every row of every table, one line each (bytes as latin-1): what a canary search reads."""
    engine = create_async_engine(database_url)
    rows: list[str] = []
    try:
        async with engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                for row in (await connection.execute(table.select())).all():
                    rows.append(
                        " ".join(
                            value.decode("latin-1") if isinstance(value, bytes) else str(value)
                            for value in row
                        )
                    )
    finally:
        await engine.dispose()
    return "\n".join(rows)


@pytest.fixture
def settings(database_url: str, sandbox_process: SandboxProcess) -> Settings:
    return Settings.from_env(
        {
            "EMBEDDED_UI_SANDBOX_PUBLIC_URL": sandbox_process.url,
            "EMBEDDED_UI_DATABASE_URL": database_url,
            "EMBEDDED_UI_SIGNING_KEYS": TEST_SIGNING_KEYS,
            "EMBEDDED_UI_PUBLIC_URL": PUBLIC_URL,
            "EMBEDDED_UI_RATE_LIMIT_PER_MINUTE": "100000",
            "EMBEDDED_UI_LOG_LEVEL": "WARNING",
        }
    )


BIGCOMMERCE_REJECTED = "rejected"
"""A BigCommerce access token starting with this is refused by the BigCommerce double."""


def bigcommerce_double(request: httpx.Request) -> httpx.Response:
    """BigCommerce's API is not reachable from tests (no internet): this answers its
    verification request the way BigCommerce does, so the service's real HTTP code runs."""
    token = request.headers.get("X-Auth-Token", "")
    if (
        request.url.path.endswith("/v2/store")
        and token
        and not token.startswith(BIGCOMMERCE_REJECTED)
    ):
        return httpx.Response(200, json={"id": "abc123xyz", "name": "Test Store"})
    return httpx.Response(401, json={"status": 401, "title": "Invalid X-Auth-Token"})


@pytest.fixture
def app(settings: Settings) -> Litestar:
    created = create_app(settings)
    created.state.http = httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        mounts={"https://api.bigcommerce.com": httpx.MockTransport(bigcommerce_double)},
    )
    return created


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
