"""ISV API keys over HTTP: the header, the checksum, revocation, rotation, environments,
CORS and security headers, and what is stored. Security anchors §3.3, §5.1, §5.4 and
adversarial case 13."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import async_sessionmaker

import embedded_ui.api.auth
from conftest import TEST_SIGNING_KEYS
from embedded_ui.cli import main as cli
from embedded_ui.security import api_keys
from embedded_ui.settings import Settings
from embedded_ui.store import ApiKey, Base, create_engine, utcnow
from embedded_ui.workspaces import WorkspaceService
from embedded_ui.workspaces.service import KEY_CACHE_SECONDS

USERS = "/2024-03/users"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def unauthorized(response: Any, *fragments: str) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"message", "code"}, body
    assert body["code"] == "unauthorized"
    for fragment in fragments:
        assert fragment.lower() in body["message"].lower(), body["message"]


def bearer(key: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {key}"}


async def revoke(settings: Settings, key_id: str) -> None:
    engine = create_engine(settings)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            await WorkspaceService(session, actor="test").revoke_key(key_id)
            await session.commit()
    finally:
        await engine.dispose()


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every key hash that request authentication looks up in the database."""
    calls: list[str] = []
    real = embedded_ui.api.auth.authenticate_key

    async def spy(session: Any, environment: str, key_hash: str, *rest: Any) -> Any:
        calls.append(key_hash)
        return await real(session, environment, key_hash, *rest)

    monkeypatch.setattr(embedded_ui.api.auth, "authenticate_key", spy)
    return calls


def _change_one_body_character(key: str, position: int) -> str:
    body_start = key.index("_", 4) + 1  # after eui_dev_ / eui_live_
    index = body_start + position
    replacement = _ALPHABET[(_ALPHABET.index(key[index]) + 1) % len(_ALPHABET)]
    return key[:index] + replacement + key[index + 1 :]


# --- presenting a key ------------------------------------------------------------------------


async def test_no_authorization_header_is_401(
    client: AsyncTestClient[Litestar], tenant: Any
) -> None:
    response = await client.get(USERS)
    unauthorized(response, "Authorization")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_the_bearer_scheme_is_case_insensitive(
    client: AsyncTestClient[Litestar], tenant: Any, scheme: str
) -> None:
    response = await client.get(USERS, headers=bearer(tenant.key, scheme))
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


@pytest.mark.parametrize("header", ["Basic {key}", "Token {key}", "{key}", "Bearer", "Bearer   "])
async def test_another_scheme_or_no_credential_is_401(
    client: AsyncTestClient[Litestar], tenant: Any, header: str
) -> None:
    response = await client.get(USERS, headers={"Authorization": header.format(key=tenant.key)})
    unauthorized(response)


@pytest.mark.parametrize("position", [0, 21, 42])
async def test_a_checksum_mismatch_is_401_without_a_database_lookup(
    client: AsyncTestClient[Litestar], tenant: Any, lookups: list[str], position: int
) -> None:
    typo = _change_one_body_character(tenant.key, position)
    assert typo != tenant.key
    assert len(typo) == len(tenant.key)

    unauthorized(await client.get(USERS, headers=bearer(typo)), "checksum")
    assert lookups == []

    # Control: the spy does see lookups, so the empty list above means none happened.
    assert (await client.get(USERS, headers=tenant.headers)).status_code == 200
    assert lookups == [hashlib.sha256(tenant.key.encode()).hexdigest()]


async def test_a_changed_checksum_is_401_without_a_database_lookup(
    client: AsyncTestClient[Litestar], tenant: Any, lookups: list[str]
) -> None:
    last = tenant.key[-1]
    typo = tenant.key[:-1] + ("A" if last != "A" else "B")
    unauthorized(await client.get(USERS, headers=bearer(typo)), "checksum")
    assert lookups == []


@pytest.mark.parametrize(
    "mangle",
    [
        lambda key: key[:-1],  # truncated
        lambda key: key + "x",  # trailing junk
        lambda key: key.replace("eui_dev_", "eui_test_"),  # unknown environment tag
        lambda key: key.replace("eui_dev_", "sk_live_"),
        lambda key: key.replace("_", "-"),
        lambda key: key[:20] + "!" + key[21:],  # outside the alphabet
        lambda key: key.upper(),
        lambda key: " ".join([key, key]),
        lambda key: "eui_dev_",
        lambda key: "x" * 10_000,
    ],
)
async def test_a_malformed_key_is_401_without_a_database_lookup(
    client: AsyncTestClient[Litestar],
    tenant: Any,
    lookups: list[str],
    mangle: Callable[[str], str],
) -> None:
    presented = mangle(tenant.key)
    assert presented != tenant.key
    unauthorized(await client.get(USERS, headers=bearer(presented)))
    assert lookups == []


@pytest.mark.parametrize("environment", ["development", "production"])
async def test_a_well_formed_key_that_was_never_issued_is_401(
    client: AsyncTestClient[Litestar], tenant: Any, lookups: list[str], environment: str
) -> None:
    stranger = api_keys.mint(environment).plaintext
    api_keys.parse(stranger)  # its shape and checksum are fine
    unauthorized(await client.get(USERS, headers=bearer(stranger)), "not recognised")
    assert lookups == [hashlib.sha256(stranger.encode()).hexdigest()]


# --- revocation and rotation -----------------------------------------------------------------


async def test_a_revoked_key_is_401(
    client: AsyncTestClient[Litestar], tenant: Any, settings: Settings
) -> None:
    assert (await client.get(USERS, headers=tenant.headers)).status_code == 200
    await revoke(settings, tenant.key_id)
    unauthorized(await client.get(USERS, headers=tenant.headers), "revoked")
    unauthorized(
        await client.post(USERS, json={"username": "after-revoke"}, headers=tenant.headers),
        "revoked",
    )


async def test_a_key_revoked_by_another_process_is_refused_within_a_second(
    client: AsyncTestClient[Litestar], tenant: Any, settings: Settings
) -> None:
    """Each process trusts a key it looked up for KEY_CACHE_SECONDS (docs/security.md): a
    revocation it did not make itself (here a plain UPDATE, as another process's commit looks
    from this one) is honoured within that bound."""
    assert KEY_CACHE_SECONDS <= 1.0
    assert (await client.get(USERS, headers=tenant.headers)).status_code == 200  # now cached
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(ApiKey).where(ApiKey.id == tenant.key_id).values(revoked_at=utcnow())
            )
    finally:
        await engine.dispose()
    await asyncio.sleep(KEY_CACHE_SECONDS + 0.05)
    unauthorized(await client.get(USERS, headers=tenant.headers), "revoked")


async def test_a_revocation_in_this_process_wins_over_a_lookup_before_its_commit(
    client: AsyncTestClient[Litestar], tenant: Any, settings: Settings
) -> None:
    """A request that reads the key between ``revoke_key`` and the COMMIT caches the old row;
    the commit forgets it again, so the revoking process refuses the key at once."""
    engine = create_engine(settings)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            await WorkspaceService(session, actor="test").revoke_key(tenant.key_id)
            assert (await client.get(USERS, headers=tenant.headers)).status_code == 200
            await session.commit()
    finally:
        await engine.dispose()
    unauthorized(await client.get(USERS, headers=tenant.headers), "revoked")


async def test_revoking_twice_keeps_the_first_revocation(
    client: AsyncTestClient[Litestar], tenant: Any, settings: Settings
) -> None:
    await revoke(settings, tenant.key_id)
    engine = create_engine(settings)
    try:
        read = select(ApiKey.revoked_at).where(ApiKey.id == tenant.key_id)
        async with async_sessionmaker(engine)() as session:
            first = await session.scalar(read)
        await revoke(settings, tenant.key_id)
        async with async_sessionmaker(engine)() as session:
            second = await session.scalar(read)
    finally:
        await engine.dispose()
    assert first is not None
    assert second == first
    unauthorized(await client.get(USERS, headers=tenant.headers), "revoked")


async def test_the_cli_revokes_a_key(
    client: AsyncTestClient[Litestar], tenant: Any, database_url: str
) -> None:
    env = {
        "EMBEDDED_UI_DATABASE_URL": database_url,
        "EMBEDDED_UI_SIGNING_KEYS": TEST_SIGNING_KEYS,
        "EMBEDDED_UI_LOG_LEVEL": "WARNING",
    }
    stray = [k for k in os.environ if k.startswith("EMBEDDED_UI_") and k not in env]
    runner = CliRunner()
    # The CLI runs its own event loop, so it runs in a thread beside the test's loop.
    result = await asyncio.to_thread(
        runner.invoke,
        cli,
        ["keys", "revoke", tenant.key_id, "--json"],
        env={**env, **dict.fromkeys(stray)},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    described = json.loads(result.output)
    assert described["id"] == tenant.key_id
    assert described["revokedAt"] is not None
    assert tenant.key not in result.output
    unauthorized(await client.get(USERS, headers=tenant.headers), "revoked")


async def test_two_active_keys_rotate_independently(
    client: AsyncTestClient[Litestar], make_tenant: Any, settings: Settings
) -> None:
    old = await make_tenant("acme", "development")
    new = await make_tenant("acme", "development")
    assert (old.workspace_id, old.environment) == (new.workspace_id, new.environment)
    assert old.key != new.key

    created = await client.post(USERS, json={"username": "shared"}, headers=old.headers)
    assert created.status_code == 201, created.text
    user_id = created.json()["userId"]
    # Both keys act for the same environment: each sees what the other made.
    seen = await client.get(f"{USERS}/{user_id}", headers=new.headers)
    assert seen.status_code == 200, seen.text

    await revoke(settings, old.key_id)
    unauthorized(await client.get(USERS, headers=old.headers), "revoked")
    listed = await client.get(USERS, headers=new.headers)
    assert listed.status_code == 200, listed.text
    assert [u["userId"] for u in listed.json()["data"]] == [user_id]


# --- environments ------------------------------------------------------------------------------


async def test_keys_carry_their_environment_in_the_prefix(make_tenant: Any) -> None:
    dev = await make_tenant("acme", "development")
    prod = await make_tenant("acme", "production")
    assert dev.key.startswith("eui_dev_")
    assert prod.key.startswith("eui_live_")
    assert api_keys.parse(dev.key)[0] == "development"
    assert api_keys.parse(prod.key)[0] == "production"


async def test_production_and_development_do_not_see_each_other(
    client: AsyncTestClient[Litestar], make_tenant: Any
) -> None:
    dev = await make_tenant("acme", "development")
    prod = await make_tenant("acme", "production")
    made = {}
    for tenant in (dev, prod):
        created = await client.post(
            USERS, json={"username": f"only-{tenant.environment}"}, headers=tenant.headers
        )
        assert created.status_code == 201, created.text
        made[tenant.environment] = created.json()["userId"]

    for reader, other in ((prod, "development"), (dev, "production")):
        user_id = made[other]
        response = await client.get(f"{USERS}/{user_id}", headers=reader.headers)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "not_found"
        by_name = await client.get(f"{USERS}/only-{other}", headers=reader.headers)
        assert by_name.status_code == 404, by_name.text
        token = await client.get(f"{USERS}/{user_id}/token", headers=reader.headers)
        assert token.status_code == 404, token.text
        listed = await client.get(USERS, headers=reader.headers)
        assert [u["userId"] for u in listed.json()["data"]] == [made[reader.environment]]


async def test_a_key_row_edited_into_another_environment_is_refused(
    client: AsyncTestClient[Litestar], tenant: Any, settings: Settings
) -> None:
    """The prefix says development; a row saying production must not grant production."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE api_key SET environment = 'production' WHERE id = :id"),
                {"id": tenant.key_id},
            )
    finally:
        await engine.dispose()
    unauthorized(await client.get(USERS, headers=tenant.headers), "environment")


# --- CORS and headers --------------------------------------------------------------------------

_CORS_HEADERS = (
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
)


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://embedded-ui.test"])
async def test_the_api_sends_no_cors_headers(
    client: AsyncTestClient[Litestar], tenant: Any, origin: str
) -> None:
    created = await client.post(
        USERS, json={"username": "cors"}, headers={**tenant.headers, "Origin": origin}
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["userId"]
    responses = [
        created,
        await client.get(USERS, headers={**tenant.headers, "Origin": origin}),
        await client.get(f"{USERS}/{user_id}/token", headers={**tenant.headers, "Origin": origin}),
        await client.get(USERS, headers={"Origin": origin}),  # 401
        await client.options(
            USERS,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        ),
        await client.options(
            f"{USERS}/{user_id}",
            headers={
                **tenant.headers,
                "Origin": origin,
                "Access-Control-Request-Method": "DELETE",
            },
        ),
    ]
    for response in responses:
        present = [h for h in _CORS_HEADERS if h in response.headers]
        assert present == [], (response.request.method, response.request.url, present)


async def test_responses_carry_the_security_headers(
    client: AsyncTestClient[Litestar], tenant: Any
) -> None:
    responses = [
        await client.get(USERS, headers=tenant.headers),  # 200
        await client.get(USERS),  # 401
        await client.get(f"{USERS}/nobody", headers=tenant.headers),  # 404
        await client.post(USERS, json={}, headers=tenant.headers),  # 400
        await client.get("/no/such/route"),  # router 404
        await client.get("/.well-known/jwks.json"),
    ]
    assert [r.status_code for r in responses] == [200, 401, 404, 400, 404, 200]
    for response in responses:
        csp = response.headers["Content-Security-Policy"]
        directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";")}
        assert directives["frame-ancestors"] == "frame-ancestors 'none'", csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"


# --- storage -----------------------------------------------------------------------------------


async def test_only_the_hash_and_a_display_prefix_are_stored(
    client: AsyncTestClient[Litestar], make_tenant: Any, settings: Settings
) -> None:
    tenants = [await make_tenant("acme", "development"), await make_tenant("acme", "production")]
    for tenant in tenants:  # the keys have been used, so nothing was cached on first use either
        assert (await client.get(USERS, headers=tenant.headers)).status_code == 200

    engine = create_engine(settings)
    try:
        async with async_sessionmaker(engine)() as session:
            rows = {row.id: row for row in await session.scalars(select(ApiKey))}
        async with engine.connect() as connection:
            dumped: list[str] = []
            for table in Base.metadata.sorted_tables:
                for record in (await connection.execute(table.select())).mappings():
                    dumped.extend(str(value) for value in record.values() if value is not None)
    finally:
        await engine.dispose()

    for tenant in tenants:
        row = rows[tenant.key_id]
        assert row.key_hash == hashlib.sha256(tenant.key.encode()).hexdigest()
        assert tenant.key.startswith(row.display_prefix)
        environment_prefix = api_keys.PREFIX_BY_ENVIRONMENT[tenant.environment]
        # The display prefix may show a few characters of the secret, never a useful part.
        assert len(row.display_prefix) - len(environment_prefix) <= 8
        assert row.last_four == tenant.key[-4:]  # from the checksum, not the secret
        secret_body = tenant.key.split("_")[2]
        assert len(secret_body) == 43
        for value in dumped:
            assert tenant.key not in value
            assert secret_body not in value
            assert value not in (tenant.key, secret_body)
