"""Refreshing OAuth access tokens (`fresh_secret`) against the sandbox as a real process:
when they expire, on demand, one refresh at a time across sessions and processes (adversarial
case 9), rotated refresh tokens persisted, and a refused refresh marking the credential broken.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from oauth_support import (  # noqa: F401 - sandbox fixtures
    OAuthDriver,
    Sandbox,
    make_driver,
    sandbox_fixture,
    sandbox_process_fixture,
)
from sqlalchemy import select, update

from embedded_ui.catalog import load_catalog
from embedded_ui.credentials import Vault
from embedded_ui.oauth import CredentialBroken, ProviderUnavailable, fresh_secret
from embedded_ui.settings import Settings
from embedded_ui.store import Credential, Scope, create_engine, utcnow

Client = AsyncTestClient[Litestar]

_REFRESH_IN_A_PROCESS = """
import asyncio, json, sys
from embedded_ui.catalog import load_catalog
from embedded_ui.credentials import Vault
from embedded_ui.oauth import fresh_secret
from embedded_ui.settings import Settings
from embedded_ui.store import Scope, create_engine

args = json.loads(sys.argv[1])
settings = Settings.from_env(args["env"])

async def main():
    engine = create_engine(settings)
    try:
        return await fresh_secret(
            engine, Scope(*args["scope"]), args["credential"],
            vault=Vault(settings.vault_keys), apps=load_catalog(), settings=settings,
        )
    finally:
        await engine.dispose()

print(json.dumps({"access_token": asyncio.run(main())["access_token"]}))
"""


@pytest.fixture
def settings(settings: Settings, sandbox: Sandbox) -> Settings:
    return replace(settings, sandbox_url=sandbox.url)


@pytest.fixture
async def connected(client: Client, sandbox: Sandbox, tenant: Any) -> tuple[Scope, str]:
    """A user with an OAuth credential made through the popup; the sandbox's counters reset."""
    driver: OAuthDriver = await make_driver(client, sandbox, tenant)
    assert (await driver.configure_client()).status_code == 200
    popup = await driver.run()
    assert popup.callback is not None and popup.callback.status_code == 200
    credential_id = (await driver.flow(popup.flow_id))["credentialId"]
    return Scope(tenant.workspace_id, tenant.environment), credential_id


class Refresher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings)

    async def __call__(self, scope: Scope, credential_id: str, force: bool = False) -> Any:
        return await fresh_secret(
            self.engine,
            scope,
            credential_id,
            vault=Vault(self.settings.vault_keys),
            apps=load_catalog(),
            settings=self.settings,
            force=force,
        )

    async def row(self, credential_id: str) -> Credential:
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(Credential).where(Credential.id == credential_id)
            )
            row = result.one()
        return Credential(**row._mapping)

    async def expire(self, credential_id: str, in_seconds: int = 0) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Credential)
                .where(Credential.id == credential_id)
                .values(expires_at=utcnow() + timedelta(seconds=in_seconds))
            )


@pytest.fixture
async def refresher(settings: Settings) -> AsyncIterator[Refresher]:
    made = Refresher(settings)
    yield made
    await made.engine.dispose()


async def test_a_valid_token_is_returned_without_a_provider_call(
    connected: tuple[Scope, str], refresher: Refresher, sandbox: Sandbox
) -> None:
    scope, credential_id = connected
    before = sandbox.stats()["token_requests"]
    await refresher.expire(credential_id, in_seconds=120)  # outside the 60 s margin
    first = await refresher(scope, credential_id)
    assert first == await refresher(scope, credential_id)
    assert sandbox.stats()["token_requests"] == before


async def test_an_expiring_token_is_refreshed_and_the_rotated_refresh_token_kept(
    connected: tuple[Scope, str], refresher: Refresher, sandbox: Sandbox
) -> None:
    scope, credential_id = connected
    await refresher.expire(credential_id, in_seconds=120)
    old = await refresher(scope, credential_id)
    await refresher.expire(credential_id, in_seconds=59)  # inside the margin

    new = await refresher(scope, credential_id)
    assert new["access_token"] != old["access_token"]
    assert new["refresh_token"] != old["refresh_token"]  # the sandbox rotates
    assert sandbox.stats()["refresh_requests"] == 1
    row = await refresher.row(credential_id)
    assert row.status == "active"
    assert row.expires_at is not None and row.expires_at > utcnow() + timedelta(minutes=59)
    assert new["refresh_token"].encode() not in row.ciphertext
    assert await refresher(scope, credential_id) == new  # persisted, not refreshed again
    assert sandbox.stats()["refresh_requests"] == 1

    # the rotated refresh token is the one saved: a second refresh (forced) works with it
    newer = await refresher(scope, credential_id, force=True)
    assert newer["access_token"] not in (old["access_token"], new["access_token"])
    assert sandbox.stats()["refresh_requests"] == 2


async def test_case_9_concurrent_refreshers_make_one_provider_call(
    connected: tuple[Scope, str], settings: Settings, sandbox: Sandbox
) -> None:
    scope, credential_id = connected
    first, second = Refresher(settings), Refresher(settings)  # two engines, two pools
    try:
        await first.expire(credential_id)
        # The first refresh holds its lock for a second; the other must wait, then reuse.
        sandbox.behave(token_endpoint="slow", slow_seconds=1, times=1)
        results = await asyncio.gather(
            first(scope, credential_id), second(scope, credential_id), first(scope, credential_id)
        )
        assert sandbox.stats()["refresh_requests"] == 1
        assert len({r["access_token"] for r in results}) == 1
        assert len({r["refresh_token"] for r in results}) == 1
    finally:
        await first.engine.dispose()
        await second.engine.dispose()


async def test_case_9_concurrent_refreshers_in_two_processes_make_one_provider_call(
    connected: tuple[Scope, str], refresher: Refresher, settings: Settings, sandbox: Sandbox
) -> None:
    scope, credential_id = connected
    await refresher.expire(credential_id)
    sandbox.behave(token_endpoint="slow", slow_seconds=1, times=1)
    env = {
        "EMBEDDED_UI_DATABASE_URL": settings.database_url,
        "EMBEDDED_UI_SANDBOX_PUBLIC_URL": sandbox.url,
        "EMBEDDED_UI_LOG_LEVEL": "WARNING",
    }
    arguments = json.dumps(
        {"env": env, "scope": [scope.workspace_id, scope.environment], "credential": credential_id}
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _REFRESH_IN_A_PROCESS,
            arguments,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [await asyncio.wait_for(p.communicate(), timeout=60) for p in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()
    tokens = {json.loads(out)["access_token"] for out, _ in outputs}
    assert len(tokens) == 1
    assert sandbox.stats()["refresh_requests"] == 1
    assert (await refresher(scope, credential_id))["access_token"] in tokens


async def test_a_refused_refresh_marks_the_credential_broken(
    connected: tuple[Scope, str],
    refresher: Refresher,
    sandbox: Sandbox,
    client: Client,
    tenant: Any,
) -> None:
    scope, credential_id = connected
    async with httpx.AsyncClient() as http:  # the user disconnects the app at the provider
        revoked = await http.post(
            f"{sandbox.url}/_sandbox/tokens/revoke", json={}, headers=sandbox.admin
        )
    assert revoked.status_code == 200
    with pytest.raises(CredentialBroken) as raised:
        await refresher(scope, credential_id, force=True)
    assert raised.value.status_code == 409
    assert "reconnect" in raised.value.message
    assert (await refresher.row(credential_id)).status == "broken"
    calls = sandbox.stats()["refresh_requests"]
    with pytest.raises(CredentialBroken):
        await refresher(scope, credential_id)
    assert sandbox.stats()["refresh_requests"] == calls  # no second try with a dead token

    users = (await client.get("/2024-03/users", headers=tenant.headers)).json()["data"]
    listed = await client.get(
        f"/2024-03/users/{users[0]['userId']}/credentials", headers=tenant.headers
    )
    assert [c["status"] for c in listed.json()["data"]] == ["broken"]


async def test_a_failing_provider_leaves_the_credential_as_it_was(
    connected: tuple[Scope, str], refresher: Refresher, sandbox: Sandbox
) -> None:
    scope, credential_id = connected
    before = await refresher(scope, credential_id)
    sandbox.behave(token_endpoint="error500", times=1)
    with pytest.raises(ProviderUnavailable) as raised:
        await refresher(scope, credential_id, force=True)
    assert raised.value.status_code == 502
    assert (await refresher.row(credential_id)).status == "active"
    assert await refresher(scope, credential_id) == before
    assert (await refresher(scope, credential_id, force=True))["access_token"] != (
        before["access_token"]
    )
