"""The `embedded-ui` command, run for real: a subprocess per invocation, a real database.

Each command runs as ``python -m embedded_ui ...`` (the console script's own entry point) with a
clean ``EMBEDDED_UI_*`` environment, against SQLite always and PostgreSQL when
``EMBEDDED_UI_TEST_POSTGRES_URL`` is set (see ``database_url`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from embedded_ui.app import create_app
from embedded_ui.settings import Settings
from embedded_ui.store.db import MIGRATIONS
from embedded_ui.workspaces.service import KEY_CACHE_SECONDS

CLI_TIMEOUT = 90  # seconds; one invocation normally takes a few
SIGNING_KEY_ENTRY = re.compile(r"([A-Za-z0-9._-]{1,64}):([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode == 0, self.explain()
        return json.loads(self.stdout)

    def explain(self) -> str:
        return (
            f"embedded-ui {' '.join(self.args)} exited {self.returncode}\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


@pytest.fixture(scope="session")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The parent's environment without any EMBEDDED_UI_* variable.

    Children cache bytecode in a private directory: with ``PYTHONDONTWRITEBYTECODE`` set,
    every invocation would recompile Litestar and SQLAlchemy (seconds each).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_UI_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str, env: dict[str, str], cwd: Path, **settings: str) -> Result:
    completed = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "embedded_ui", *args],
        cwd=cwd,
        env={**env, **{f"EMBEDDED_UI_{k.upper()}": v for k, v in settings.items()}},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=CLI_TIMEOUT,
        check=False,
    )
    return Result(tuple(args), completed.returncode, completed.stdout, completed.stderr)


@dataclass(frozen=True)
class Cli:
    """``cli("workspace", "list", "--json")`` against this test's database."""

    database_url: str
    env: dict[str, str]
    cwd: Path

    def __call__(self, *args: str, **settings: str) -> Result:
        return run_cli(
            *args,
            env=self.env,
            cwd=self.cwd,
            database_url=self.database_url,
            log_level="WARNING",
            **settings,
        )


@pytest.fixture
def cli(database_url: str, base_env: dict[str, str], tmp_path: Path) -> Cli:
    return Cli(database_url, base_env, tmp_path)


def assert_fails_cleanly(result: Result, *needles: str, code: int = 1) -> None:
    """A non-zero exit with a one-line reason on stderr, not a traceback."""
    assert result.returncode == code, result.explain()
    assert "Traceback" not in result.stderr, result.explain()
    for needle in needles:
        assert needle in result.stderr, result.explain()


# --- database -----------------------------------------------------------------------------


@pytest.fixture
def empty_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database no migration has touched yet.

    ``database_url`` is already migrated (a copied SQLite template, or the PostgreSQL database
    shared by the whole test process), so each variant gets a new, empty sibling.
    """
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    name = f"eui_cli_{os.getpid()}_{secrets.token_hex(3)}"

    async def admin(statement: str) -> None:
        engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield database_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_db_upgrade_reports_the_revision_reached(
    empty_database_url: str, base_env: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(empty_database_url, base_env, tmp_path)
    assert cli("db", "upgrade", "--revision", "0001", "--json").json() == {"revision": "0001"}
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert cli("db", "upgrade", "--json").json() == {"revision": head}
    assert cli("db", "upgrade").stdout.strip() == f"Database at revision {head}."


# --- workspaces ---------------------------------------------------------------------------


def test_workspace_create_list_and_duplicate(cli: Cli) -> None:
    created = cli("workspace", "create", "Fulfillmently", "--json").json()
    assert created["name"] == "Fulfillmently"
    assert re.fullmatch(r"[0-9a-f]{24}", created["id"]), created
    assert created["environments"] == ["development", "production"]

    duplicate = cli("workspace", "create", "Fulfillmently", "--json")
    assert_fails_cleanly(duplicate, "already exists", "'Fulfillmently'")
    assert duplicate.stdout == ""

    listed = cli("workspace", "list", "--json").json()
    assert listed == [{"id": created["id"], "name": "Fulfillmently"}]


# --- API keys -----------------------------------------------------------------------------


def test_keys_create_list_and_revoke(cli: Cli) -> None:
    workspace = cli("workspace", "create", "acme", "--json").json()
    dev = cli("keys", "create", "--workspace", "acme", "--environment", "development", "--json")
    dev_key = dev.json()
    live_key = cli(
        "keys", "create", "-w", workspace["id"], "-e", "production", "--label", "ci", "--json"
    ).json()

    assert dev_key["key"].startswith("eui_dev_")
    assert live_key["key"].startswith("eui_live_")
    for issued, environment in ((dev_key, "development"), (live_key, "production")):
        assert issued["environment"] == environment
        assert issued["workspaceId"] == workspace["id"]
        assert issued["revokedAt"] is None
        # The display identifies the key without revealing it.
        assert issued["key"] not in issued["display"]
        assert issued["display"].startswith(issued["key"][:10])
        assert issued["display"].endswith(issued["key"][-4:])
    assert live_key["label"] == "ci"

    plaintexts = [dev_key["key"], live_key["key"]]
    secret_bodies = [key.split("_")[2] for key in plaintexts]  # the 43 random characters

    as_json = cli("keys", "list", "--json")
    as_text = cli("keys", "list")
    for listing in (as_json, as_text):
        assert listing.returncode == 0, listing.explain()
        for secret in (*plaintexts, *secret_bodies):
            assert secret not in listing.stdout
            assert secret not in listing.stderr
    rows = as_json.json()
    assert [row["id"] for row in rows] == [dev_key["id"], live_key["id"]]
    assert all("key" not in row for row in rows)
    assert [row["display"] for row in rows] == [dev_key["display"], live_key["display"]]

    only_live = cli("keys", "list", "-w", "acme", "-e", "production", "--json").json()
    assert [row["id"] for row in only_live] == [live_key["id"]]

    revoked = cli("keys", "revoke", dev_key["id"], "--json").json()
    assert revoked["id"] == dev_key["id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", revoked["revokedAt"]), revoked
    assert dev_key["key"] not in json.dumps(revoked)

    after = {row["id"]: row for row in cli("keys", "list", "--json").json()}
    assert after[dev_key["id"]]["revokedAt"] == revoked["revokedAt"]
    assert after[live_key["id"]]["revokedAt"] is None

    unknown = cli("keys", "revoke", "0" * 24, "--json")
    assert_fails_cleanly(unknown, "No API key has the id", "0" * 24)


def test_keys_create_for_an_unknown_workspace_fails(cli: Cli) -> None:
    result = cli("keys", "create", "-w", "nobody", "-e", "development", "--json")
    assert_fails_cleanly(result, "No workspace", "'nobody'")


def test_keys_create_refuses_an_unknown_environment(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    # Click rejects the option before any database work, so one backend is enough.
    result = run_cli(
        "keys",
        "create",
        "--workspace",
        "acme",
        "--environment",
        "staging",
        "--json",
        env=base_env,
        cwd=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.sqlite3'}",
    )
    assert_fails_cleanly(result, "staging", "'development'", "'production'", code=2)
    assert "Usage:" in result.stderr
    assert not (tmp_path / "unused.sqlite3").exists()


async def test_a_key_from_the_cli_authenticates_over_http(cli: Cli, settings: Settings) -> None:
    assert settings.database_url == cli.database_url
    await asyncio.to_thread(cli, "workspace", "create", "acme")
    issued = await asyncio.to_thread(cli, "keys", "create", "-w", "acme", "-e", "development")
    # The human-readable output leads with the key, alone on its line.
    assert issued.returncode == 0, issued.explain()
    key = issued.stdout.splitlines()[0]
    assert key.startswith("eui_dev_")
    headers = {"Authorization": f"Bearer {key}"}

    async with AsyncTestClient(create_app(settings), base_url="http://embedded-ui.test") as client:
        created = await client.post("/2024-03/users", json={"username": "gregg"}, headers=headers)
        assert created.status_code == 201, created.text
        assert created.json()["username"] == "gregg"

        key_id = (await asyncio.to_thread(cli, "keys", "list", "--json")).json()[0]["id"]
        revoked = await asyncio.to_thread(cli, "keys", "revoke", key_id)
        assert revoked.returncode == 0, revoked.explain()

        # Another process revoked it: the server trusts a key it looked up for at most
        # KEY_CACHE_SECONDS (1 s), so the key is refused within that bound.
        deadline = time.monotonic() + KEY_CACHE_SECONDS
        while True:
            refused = await client.get("/2024-03/users", headers=headers)
            if refused.status_code != 200 or time.monotonic() > deadline + 0.2:
                break
            await asyncio.sleep(0.05)
        assert refused.status_code == 401, refused.text
        assert "revoked" in refused.json()["message"]


# --- secrets and settings -----------------------------------------------------------------


def test_keygen_signing_prints_an_entry_settings_accept(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    result = run_cli("keygen", "signing", env=base_env, cwd=tmp_path)
    assert result.returncode == 0, result.explain()
    value = result.stdout.strip()
    match = SIGNING_KEY_ENTRY.fullmatch(value)
    assert match, result.explain()

    # Production mode needs more secrets than this one; the entry is parsed the same way in
    # either mode, and `insecure` is what production refuses.
    settings = Settings.from_env({"EMBEDDED_UI_SIGNING_KEYS": value})
    assert [key.kid for key in settings.signing_keys] == [match.group(1)]
    assert not settings.signing_keys[0].insecure

    rotated = run_cli(
        "keygen", "signing", "--kid", "k-next", env=base_env, cwd=tmp_path
    ).stdout.strip()
    assert rotated.startswith("k-next:")
    assert rotated != value
    both = Settings.from_env({"EMBEDDED_UI_SIGNING_KEYS": f"{rotated},{value}"})
    assert [key.kid for key in both.signing_keys] == ["k-next", match.group(1)]


@pytest.mark.parametrize(
    ("command", "settings", "variable"),
    [
        pytest.param(("workspace", "list"), {"port": "abc"}, "EMBEDDED_UI_PORT", id="bad-port"),
        pytest.param(
            ("workspace", "list"),
            {"mode": "production"},
            "EMBEDDED_UI_SIGNING_KEYS",
            id="production-without-signing-keys",
        ),
        pytest.param(
            ("serve", "--port", "1"),
            {"mode": "production"},
            "EMBEDDED_UI_SIGNING_KEYS",
            id="serve-production-without-signing-keys",
        ),
        pytest.param(
            ("db", "upgrade"), {"databse_url": "x"}, "EMBEDDED_UI_DATABSE_URL", id="misspelt"
        ),
    ],
)
def test_invalid_settings_fail_at_start_naming_the_variable(
    base_env: dict[str, str],
    tmp_path: Path,
    command: tuple[str, ...],
    settings: dict[str, str],
    variable: str,
) -> None:
    database = tmp_path / "never-created.sqlite3"
    result = run_cli(
        *command,
        env=base_env,
        cwd=tmp_path,
        database_url=f"sqlite+aiosqlite:///{database}",
        **settings,
    )
    assert_fails_cleanly(result, variable)
    assert result.stdout == ""
    assert not database.exists()


# --- OAuth clients --------------------------------------------------------------------------


def test_oauth_clients_set_list_delete_with_the_secret_from_a_file_or_stdin(
    cli: Cli, tmp_path: Path
) -> None:
    cli("workspace", "create", "acme")
    tenant = ("--workspace", "acme", "--environment", "development")
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("canary-cli-secret-1\n")
    saved = cli(
        "oauth-clients", "set", *tenant, "--app", "hubspot", "--client-id", "hub-id",
        "--client-secret-file", str(secret_file), "--json",
    )  # fmt: skip
    assert saved.returncode == 0, saved.explain()
    assert saved.json()["app"] == "hubspot" and saved.json()["clientId"] == "hub-id"

    from_stdin = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "embedded_ui", "oauth-clients", "set", *tenant,
         "--app", "sandbox", "--client-id", "sbx-id", "--client-secret-file", "-"],
        input="canary-cli-secret-2\n",
        env={**cli.env, "EMBEDDED_UI_DATABASE_URL": cli.database_url},
        cwd=cli.cwd, capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False,
    )  # fmt: skip
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout.strip() == "OAuth client for sandbox saved (development)."

    listed = cli("oauth-clients", "list", *tenant, "--json")
    assert [(r["app"], r["clientId"]) for r in listed.json()] == [
        ("hubspot", "hub-id"),
        ("sandbox", "sbx-id"),
    ]
    assert set(listed.json()[0]) == {"app", "clientId", "createdAt", "updatedAt"}
    production = cli("oauth-clients", "list", "-w", "acme", "-e", "production", "--json")
    assert production.json() == []

    deleted = cli("oauth-clients", "delete", *tenant, "--app", "hubspot", "--json")
    assert deleted.json() == {"app": "hubspot", "deleted": True}
    assert_fails_cleanly(
        cli("oauth-clients", "delete", *tenant, "--app", "hubspot"), "No OAuth client"
    )
    assert_fails_cleanly(
        cli("oauth-clients", "set", *tenant, "--app", "hubspot", "--client-id", "x",
            "--client-secret-file", str(tmp_path / "missing")),
        "--client-secret-file: cannot read",
    )  # fmt: skip
    no_plain_argument = cli(
        "oauth-clients", "set", *tenant, "--app", "hubspot", "--client-id", "x",
        "--client-secret", "visible-in-ps",
    )  # fmt: skip
    assert no_plain_argument.returncode == 2  # click: no such option
    for result in (saved, listed, deleted):
        assert "canary-cli-secret" not in result.stdout + result.stderr
