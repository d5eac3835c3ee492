"""Per-credential rate limits over HTTP, in one process and shared through Redis.

Security anchors §6.3 and adversarial case 24. The Redis tests run when
``EMBEDDED_UI_TEST_REDIS_URL`` is set; set but unreachable, they fail rather than skip.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

import embedded_ui.api.auth
from conftest import PUBLIC_URL
from embedded_ui.app import create_app
from embedded_ui.security.rate_limit import WINDOW_SECONDS, RedisRateLimiter
from embedded_ui.settings import Settings

USERS = "/2024-03/users"
LIMIT = 5
REDIS_URL = os.environ.get("EMBEDDED_UI_TEST_REDIS_URL")


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A separate instance of the service (its own limiter) on the test database."""
    async with AsyncTestClient(create_app(settings), base_url=PUBLIC_URL) as instance:
        yield instance


def assert_rate_limited(response: Any) -> int:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["code"] == "rate_limited"
    assert isinstance(body["message"], str)
    assert body["message"]
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit(), retry_after  # delta-seconds, RFC 9110 §10.2.3
    seconds = int(retry_after)
    assert 1 <= seconds <= WINDOW_SECONDS
    return seconds


async def spend(instance: AsyncTestClient[Litestar], headers: dict[str, str], count: int) -> None:
    for number in range(1, count + 1):
        response = await instance.get(USERS, headers=headers)
        assert response.status_code == 200, f"request {number}: {response.text}"


@pytest.fixture
def limited(with_settings: Callable[..., Settings]) -> Settings:
    return with_settings(rate_limit_per_minute=LIMIT)


async def test_the_request_after_the_limit_is_429_with_retry_after(
    make_tenant: Any, limited: Settings
) -> None:
    tenant = await make_tenant("acme", "development")
    async with running(limited) as instance:
        await spend(instance, tenant.headers, LIMIT)
        assert_rate_limited(await instance.get(USERS, headers=tenant.headers))
        # It stays limited, whatever the route or method.
        assert_rate_limited(
            await instance.post(USERS, json={"username": "late"}, headers=tenant.headers)
        )
        assert_rate_limited(await instance.get(f"{USERS}/anyone/token", headers=tenant.headers))
        # The rejected create did not happen.
        listed = await instance.get(USERS, headers=tenant.headers)
        assert listed.status_code == 429


async def test_the_limit_is_counted_before_the_database(
    make_tenant: Any, limited: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await make_tenant("acme", "development")
    lookups: list[str] = []
    real = embedded_ui.api.auth.authenticate_key

    async def spy(session: Any, environment: str, key_hash: str, *rest: Any) -> Any:
        lookups.append(key_hash)
        return await real(session, environment, key_hash, *rest)

    monkeypatch.setattr(embedded_ui.api.auth, "authenticate_key", spy)
    async with running(limited) as instance:
        await spend(instance, tenant.headers, LIMIT)
        assert len(lookups) == LIMIT
        assert_rate_limited(await instance.get(USERS, headers=tenant.headers))
        assert len(lookups) == LIMIT


async def test_another_key_is_unaffected(make_tenant: Any, limited: Settings) -> None:
    noisy = await make_tenant("acme", "development")
    same_environment = await make_tenant("acme", "development")
    other_workspace = await make_tenant("globex", "production")
    async with running(limited) as instance:
        await spend(instance, noisy.headers, LIMIT)
        assert_rate_limited(await instance.get(USERS, headers=noisy.headers))
        # Each key has its own budget, even a second key of the same environment.
        await spend(instance, same_environment.headers, LIMIT)
        await spend(instance, other_workspace.headers, LIMIT)
        assert_rate_limited(await instance.get(USERS, headers=same_environment.headers))
        assert_rate_limited(await instance.get(USERS, headers=noisy.headers))


async def test_a_spoofed_forwarded_for_does_not_reset_the_count(
    make_tenant: Any, limited: Settings
) -> None:
    tenant = await make_tenant("acme", "development")
    async with running(limited) as instance:
        for number in range(LIMIT):
            spoofed = {
                **tenant.headers,
                "X-Forwarded-For": f"203.0.113.{number}",
                "X-Real-IP": f"198.51.100.{number}",
                "Forwarded": f"for=192.0.2.{number}",
            }
            assert (await instance.get(USERS, headers=spoofed)).status_code == 200
        fresh = {
            **tenant.headers,
            "X-Forwarded-For": "198.18.0.1, 10.0.0.1",
            "X-Real-IP": "198.18.0.2",
            "Forwarded": "for=198.18.0.3",
        }
        assert_rate_limited(await instance.get(USERS, headers=fresh))


async def test_the_bearer_scheme_spelling_does_not_reset_the_count(
    make_tenant: Any, limited: Settings
) -> None:
    tenant = await make_tenant("acme", "development")
    async with running(limited) as instance:
        for scheme in ("Bearer", "bearer", "BEARER", "Bearer", "bEaReR"):
            response = await instance.get(
                USERS, headers={"Authorization": f"{scheme} {tenant.key}"}
            )
            assert response.status_code == 200, response.text
        assert_rate_limited(
            await instance.get(USERS, headers={"Authorization": f"bearer  {tenant.key} "})
        )


async def test_user_tokens_are_limited_per_user(
    client: AsyncTestClient[Litestar], make_tenant: Any, limited: Settings
) -> None:
    tenant = await make_tenant("acme", "development")
    tokens = []
    for name in ("alice", "bob"):
        created = await client.post(USERS, json={"username": name}, headers=tenant.headers)
        minted = await client.get(
            f"{USERS}/{created.json()['userId']}/token", headers=tenant.headers
        )
        tokens.append({"x-alloy-user-token": minted.json()["token"]})
    alice, bob = tokens
    async with running(limited) as instance:
        for _ in range(LIMIT):
            assert (await instance.get("/2024-03/session", headers=alice)).status_code == 200
        assert_rate_limited(await instance.get("/2024-03/session", headers=alice))
        assert (await instance.get("/2024-03/session", headers=bob)).status_code == 200
        # The ISV's key has its own budget, apart from its users'.
        await spend(instance, tenant.headers, LIMIT)


async def test_zero_turns_the_limit_off(
    make_tenant: Any, with_settings: Callable[..., Settings]
) -> None:
    tenant = await make_tenant("acme", "development")
    async with running(with_settings(rate_limit_per_minute=0)) as instance:
        await spend(instance, tenant.headers, 3 * LIMIT)


async def test_in_memory_counts_are_per_process(make_tenant: Any, limited: Settings) -> None:
    """Why Redis exists: two processes without it each grant the full limit."""
    tenant = await make_tenant("acme", "development")
    async with running(limited) as first, running(limited) as second:
        await spend(first, tenant.headers, LIMIT)
        await spend(second, tenant.headers, LIMIT)
        assert_rate_limited(await first.get(USERS, headers=tenant.headers))
        assert_rate_limited(await second.get(USERS, headers=tenant.headers))


async def test_an_unreachable_redis_fails_open(
    make_tenant: Any, with_settings: Callable[..., Settings], unused_port: int
) -> None:
    """Limiting is protection, not correctness: the API keeps answering without Redis."""
    tenant = await make_tenant("acme", "development")
    settings = with_settings(
        rate_limit_per_minute=LIMIT, redis_url=f"redis://127.0.0.1:{unused_port}/0"
    )
    async with running(settings) as instance:
        await spend(instance, tenant.headers, LIMIT + 2)


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- shared through Redis -------------------------------------------------------------------


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    if REDIS_URL is None:
        pytest.skip("Redis variant off: set EMBEDDED_UI_TEST_REDIS_URL to run it")
    client = Redis.from_url(REDIS_URL, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        await client.ping()
    except Exception as exc:
        pytest.fail(f"Redis variant is on but {REDIS_URL} is unreachable: {exc!r}")
    finally:
        await client.aclose()
    yield REDIS_URL


async def _forget(redis_url: str, *identifiers: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        for identifier in identifiers:
            async for key in client.scan_iter(match=f"eui:rate:{identifier}:*"):
                await client.delete(key)
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_instances_sharing_redis_share_the_count(
    make_tenant: Any, limited: Settings, redis_url: str, with_settings: Callable[..., Settings]
) -> None:
    tenant = await make_tenant("acme", "development")
    bystander = await make_tenant("globex", "development")
    shared = with_settings(rate_limit_per_minute=LIMIT, redis_url=redis_url)
    identifiers = [
        f"key:{hashlib.sha256(t.key.encode()).hexdigest()[:32]}" for t in (tenant, bystander)
    ]
    try:
        async with running(shared) as first, running(shared) as second:
            instances = [first, second]
            for number in range(LIMIT):  # alternate: neither instance alone reaches the limit
                response = await instances[number % 2].get(USERS, headers=tenant.headers)
                assert response.status_code == 200, f"request {number + 1}: {response.text}"
            assert_rate_limited(await first.get(USERS, headers=tenant.headers))
            assert_rate_limited(await second.get(USERS, headers=tenant.headers))
            # Another key is unaffected on both.
            await spend(second, bystander.headers, LIMIT - 1)
            assert (await first.get(USERS, headers=bystander.headers)).status_code == 200
            assert_rate_limited(await second.get(USERS, headers=bystander.headers))
    finally:
        await _forget(redis_url, *identifiers)


@pytest.mark.redis
async def test_a_new_instance_sees_the_count_so_far(
    make_tenant: Any, redis_url: str, with_settings: Callable[..., Settings]
) -> None:
    """A restart (or a new worker) does not hand out a fresh budget."""
    tenant = await make_tenant("acme", "development")
    shared = with_settings(rate_limit_per_minute=LIMIT, redis_url=redis_url)
    identifier = f"key:{hashlib.sha256(tenant.key.encode()).hexdigest()[:32]}"
    try:
        async with running(shared) as before_restart:
            await spend(before_restart, tenant.headers, LIMIT)
        async with running(shared) as after_restart:
            assert_rate_limited(await after_restart.get(USERS, headers=tenant.headers))
    finally:
        await _forget(redis_url, identifier)


@pytest.mark.redis
async def test_the_redis_limiter_slides_like_the_memory_one(redis_url: str) -> None:
    now = [600.0 + 30]  # halfway through window 10
    identifier = f"test:{secrets.token_hex(8)}"
    limiter = RedisRateLimiter(redis_url, limit=10, clock=lambda: now[0])
    try:
        for _ in range(10):
            assert await limiter.hit(identifier) is None
        assert await limiter.hit(identifier) == 30.0
        now[0] = 660.0 + 30  # halfway through window 11: the 11 hits of window 10 weigh 5.5
        for _ in range(4):
            assert await limiter.hit(identifier) is None
        assert await limiter.hit(identifier) == 30.0  # 5.5 + 5 > 10
        now[0] = 780.0  # two windows on: nothing counts any more
        assert await limiter.hit(identifier) is None
    finally:
        await limiter.close()
        await _forget(redis_url, identifier)
