"""The hot path (api/hot.py) answers exactly as Litestar would, or leaves the request alone.

Each request is sent twice over the same database: to an instance with the hot path on and to
one with it off. Status, headers and body must be the same (a user token's random and
time-bound parts aside), and a spy records which requests the hot path answered itself, so
the comparison cannot pass by the hot path never running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import jwt
import pytest
import yaml
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.types import HTTPScope, Send
from sqlalchemy.ext.asyncio import async_sessionmaker

from conftest import PUBLIC_URL, MakeTenant, Tenant
from embedded_ui.app import EmbeddedUI, create_app
from embedded_ui.catalog import load_catalog
from embedded_ui.integrations import InstallationService
from embedded_ui.settings import Settings
from embedded_ui.store import Scope, User, create_engine
from embedded_ui.workspaces import WorkspaceService
from embedded_ui.workspaces.service import KEY_CACHE

USERS = "/2024-03/users"
LISTING = "/2024-03/integrations"


@dataclass
class Spy:
    """Wraps an app's hot path and records, per path, whether it answered."""

    answered: list[tuple[str, bool]] = field(default_factory=list)

    def install(self, app: EmbeddedUI) -> None:
        hot = app.hot_path
        assert hot is not None, "the hot path is on for SQLite files by default"
        answer = hot.answer

        async def spy(scope: HTTPScope, send: Send, *args: Any) -> bool:
            answered = await answer(scope, send, *args)
            self.answered.append((scope["path"], answered))
            return answered

        hot.answer = spy  # type: ignore[method-assign]


@asynccontextmanager
async def instance(settings: Settings) -> AsyncIterator[tuple[AsyncTestClient[Litestar], Spy]]:
    app = create_app(settings)
    assert isinstance(app, EmbeddedUI)
    spy = Spy()
    if app.hot_path is not None:
        spy.install(app)
    async with AsyncTestClient(app, base_url=PUBLIC_URL) as client:
        yield client, spy


@pytest.fixture
async def pair(
    settings: Settings, database_url: str
) -> AsyncIterator[tuple[AsyncTestClient[Litestar], AsyncTestClient[Litestar], Spy]]:
    if not database_url.startswith("sqlite"):
        pytest.skip("the hot path runs on SQLite files only (covered by test_off_on_postgres)")
    async with (
        instance(settings) as (hot, spy),
        instance(replace(settings, hot_path=False)) as (ordinary, _),
    ):
        yield hot, ordinary, spy


def _typo(key: str) -> str:
    """The key with its last character changed (so its checksum no longer matches)."""
    return key[:-1] + ("x" if key[-1] != "x" else "y")


def _comparable_headers(response: Response) -> dict[str, str]:
    headers = {name: value for name, value in response.headers.items() if name != "date"}
    if "allow" in headers:  # Litestar lists a 405's methods from a set, in no fixed order
        headers["allow"] = ", ".join(sorted(headers["allow"].split(", ")))
    return headers


def _token_claims(response: Response) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        response.json()["token"], options={"verify_signature": False}
    )
    for varying in ("iat", "nbf", "exp", "jti"):
        assert varying in claims
        claims.pop(varying)
    return claims


async def _both(
    hot: AsyncTestClient[Litestar],
    ordinary: AsyncTestClient[Litestar],
    path: str,
    headers: dict[str, str],
) -> tuple[Response, Response]:
    return await hot.get(path, headers=headers), await ordinary.get(path, headers=headers)


def _assert_same(hot: Response, ordinary: Response, token: bool = False) -> None:
    assert hot.status_code == ordinary.status_code, (hot.text, ordinary.text)
    if token and hot.status_code == 200:
        assert _token_claims(hot) == _token_claims(ordinary)
        assert hot.json().keys() == ordinary.json().keys() == {"token", "expiresAt"}
        assert _comparable_headers(hot).keys() - {"content-length"} == _comparable_headers(
            ordinary
        ).keys() - {"content-length"}
        return
    assert hot.content == ordinary.content
    assert _comparable_headers(hot) == _comparable_headers(ordinary)


async def _user(client: AsyncTestClient[Litestar], tenant: Tenant, name: str) -> dict[str, Any]:
    response = await client.post(
        USERS, json={"username": name, "fullName": "Zoë Ünicode"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_successes_are_answered_by_the_hot_path_with_litestars_bytes(
    pair: tuple[AsyncTestClient[Litestar], AsyncTestClient[Litestar], Spy], tenant: Tenant
) -> None:
    hot, ordinary, spy = pair
    user = await _user(hot, tenant, "hot-path-user")
    lowercase_scheme = {"Authorization": f"bearer {tenant.key}"}
    cases = [
        (f"{USERS}/{user['userId']}", tenant.headers, False),
        (f"{USERS}/hot-path-user", tenant.headers, False),
        (f"{USERS}/{user['userId']}", lowercase_scheme, False),
        (f"/2022-09/users/{user['userId']}", tenant.headers, False),
        (f"{USERS}/{user['userId']}/token", tenant.headers, True),
        (f"/2024-03/user/{user['userId']}/token", tenant.headers, True),
        ("/2023-06/users/hot-path-user/token", tenant.headers, True),
    ]
    for path, headers, token in cases:
        spy.answered.clear()
        fast, slow = await _both(hot, ordinary, path, headers)
        assert fast.status_code == 200, fast.text
        _assert_same(fast, slow, token)
        assert spy.answered == [("/2024-03/" + path.split("/", 2)[2], True)]
    body = (await hot.get(f"{USERS}/{user['userId']}", headers=tenant.headers)).json()
    assert body == user  # what POST /users answered, read back


async def test_everything_else_falls_through_and_gets_the_ordinary_answer(
    pair: tuple[AsyncTestClient[Litestar], AsyncTestClient[Litestar], Spy],
    tenant: Tenant,
    make_tenant: MakeTenant,
) -> None:
    hot, ordinary, spy = pair
    user = await _user(hot, tenant, "someone")
    other = await make_tenant("other-workspace")
    production = await make_tenant("acme", "production")
    user_path = f"{USERS}/{user['userId']}"
    cases: list[tuple[str, dict[str, str]]] = [
        (f"{USERS}/nobody", tenant.headers),  # unknown user: 404
        (user_path, other.headers),  # another workspace's user: 404
        (user_path, production.headers),  # the other environment's user: 404
        (user_path, {}),  # no key: 401
        (user_path, {"Authorization": "Bearer eui_dev_not-a-key"}),  # malformed: 401
        (user_path, {"Authorization": tenant.key}),  # no scheme: 401
        (user_path, {"Authorization": f"Bearer {_typo(tenant.key)}"}),  # checksum: 401
        (user_path, {**tenant.headers, "Origin": "https://isv.example"}),  # CORS stays put
        (f"{user_path}/", tenant.headers),  # trailing slash
        (f"{USERS}/batch", tenant.headers),  # static sibling: 405
        (f"{USERS}/nobody/token", tenant.headers),  # token for nobody: 404
        (f"/2024-03/user/{user['userId']}", tenant.headers),  # not a route
    ]
    for path, headers in cases:
        spy.answered.clear()
        fast, slow = await _both(hot, ordinary, path, headers)
        assert fast.status_code >= 400 or "Origin" in headers or path.endswith("/"), path
        _assert_same(fast, slow)
        assert all(not answered for _, answered in spy.answered), path
    head = await hot.head(user_path, headers=tenant.headers)
    assert head.status_code == (await ordinary.head(user_path, headers=tenant.headers)).status_code


async def test_a_revoked_key_is_refused_by_both_paths(
    pair: tuple[AsyncTestClient[Litestar], AsyncTestClient[Litestar], Spy],
    tenant: Tenant,
    make_tenant: MakeTenant,
    settings: Settings,
) -> None:
    hot, ordinary, spy = pair
    user = await _user(hot, tenant, "revocation")
    doomed = await make_tenant("acme")
    path = f"{USERS}/{user['userId']}"
    assert (await hot.get(path, headers=doomed.headers)).status_code == 200
    engine = create_engine(settings)
    async with async_sessionmaker(engine)() as session:
        await WorkspaceService(session, actor="test").revoke_key(doomed.key_id)
        await session.commit()
    await engine.dispose()
    KEY_CACHE.clear()  # what KEY_CACHE_SECONDS does for another process
    spy.answered.clear()
    fast, slow = await _both(hot, ordinary, path, doomed.headers)
    assert fast.status_code == 401
    _assert_same(fast, slow)
    assert spy.answered == [(path, False)]


async def test_a_request_is_counted_once_against_the_rate_limit(
    with_settings: Callable[..., Settings], tenant: Tenant, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the hot path runs on SQLite files only")
    async with instance(with_settings(rate_limit_per_minute=4)) as (client, spy):
        user = await _user(client, tenant, "counted")  # 1
        assert (await client.get(f"{USERS}/nobody", headers=tenant.headers)).status_code == 404  # 2
        path = f"{USERS}/{user['userId']}"
        assert (await client.get(path, headers=tenant.headers)).status_code == 200  # 3
        assert (await client.get(f"{path}/token", headers=tenant.headers)).status_code == 200  # 4
        refused = await client.get(path, headers=tenant.headers)  # 5: over the limit
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) > 0
        assert refused.json()["code"] == "rate_limited"
        assert [answered for _, answered in spy.answered] == [True, False, True, True, False]


async def test_off_on_postgres_and_when_switched_off(settings: Settings, database_url: str) -> None:
    app = create_app(settings)
    assert isinstance(app, EmbeddedUI)
    assert (app.hot_path is not None) == database_url.startswith("sqlite")
    switched_off = create_app(replace(settings, hot_path=False))
    assert isinstance(switched_off, EmbeddedUI)
    assert switched_off.hot_path is None


async def test_post_users_is_answered_by_the_hot_path_and_reads_back(
    pair: tuple[AsyncTestClient[Litestar], AsyncTestClient[Litestar], Spy], tenant: Tenant
) -> None:
    hot, ordinary, spy = pair
    created = await hot.post(
        USERS, json={"username": "ünïcødé 名前", "fullName": "Zoë"}, headers=tenant.headers
    )
    by_ordinary = await ordinary.post(
        USERS, json={"username": "other", "fullName": "Zoë"}, headers=tenant.headers
    )
    assert created.status_code == by_ordinary.status_code == 201, created.text
    assert spy.answered == [(USERS, True)]
    assert created.json().keys() == by_ordinary.json().keys()
    assert _comparable_headers(created).keys() == _comparable_headers(by_ordinary).keys()
    body = created.json()
    assert body["username"] == "ünïcødé 名前" and body["fullName"] == "Zoë"
    # Committed before the answer, and read back the same through both paths.
    for client in (ordinary, hot):
        read = await client.get(f"{USERS}/{body['userId']}", headers=tenant.headers)
        assert read.json() == body
    listed = await ordinary.get(USERS, headers=tenant.headers)
    assert {user["username"] for user in listed.json()["data"]} == {"ünïcødé 名前", "other"}


async def test_post_users_refusals_fall_through_and_write_nothing(
    pair: tuple[AsyncTestClient[Litestar], AsyncTestClient[Litestar], Spy], tenant: Tenant
) -> None:
    hot, ordinary, spy = pair
    await _user(ordinary, tenant, "taken")
    json_type = {**tenant.headers, "Content-Type": "application/json"}
    cases: list[tuple[bytes, dict[str, str]]] = [
        (b'{"username": "taken"}', json_type),  # duplicate: 409
        (b'{"username": ', json_type),  # invalid JSON
        (b'{"username": 7}', json_type),  # wrong type
        (b"{}", json_type),  # missing field
        (b'{"username": "x", "admin": true}', json_type),  # unknown field
        (b'{"username": "   "}', json_type),  # blank
        (b'{"username": "a\\u200bb"}', json_type),  # invisible character
        (b'{"username": "' + b"n" * 300 + b'"}', json_type),  # too long
        (b'{"username": "' + b"n" * 20_000 + b'"}', json_type),  # beyond the hot path's size
        (b'{"username": "plain"}', {**tenant.headers, "Content-Type": "text/plain"}),
        (b'{"username": "nokey"}', {"Content-Type": "application/json"}),
    ]
    for body, headers in cases:
        spy.answered.clear()
        fast = await hot.post(USERS, content=body, headers=headers)
        slow = await ordinary.post(USERS, content=body, headers=headers)
        assert all(not answered for _, answered in spy.answered), body[:40]
        if fast.status_code == 201:  # accepted by the ordinary path after falling through
            assert slow.status_code == 409, (body[:40], slow.text)
            continue
        assert fast.status_code == slow.status_code, (body[:40], fast.text, slow.text)
        if fast.status_code >= 400:
            assert fast.content == slow.content, body[:40]
            assert _comparable_headers(fast) == _comparable_headers(slow)
    listed = await ordinary.get(USERS, headers=tenant.headers)
    names = sorted(user["username"] for user in listed.json()["data"])
    # Only what the ordinary path accepts was created, once by each path at most.
    assert names.count("taken") == 1
    assert not any(name.strip() == "" or "\u200b" in name for name in names)


# --- the listing: GET /integrations?userId= ----------------------------------------------------


def _integration_file(number: int) -> dict[str, str]:
    """A sandbox integration with two workflows on a custom event (no credential needed)."""
    document = {
        "integration": {"key": f"hot-{number}", "app": "sandbox", "name": f"Hot {number}"},
        "workflows": [
            {
                "key": f"hot-{number}-{index}",
                "name": f"Shipped parcels {number}.{index}",
                "trigger": {"type": "custom_event", "event": "Parcel Shipped"},
                "blocks": [
                    {"id": "forward", "type": "stream_data", "url": "https://hooks.example.com"}
                ],
            }
            for index in range(2)
        ],
    }
    return {"name": f"hot-{number}.yaml", "content": yaml.safe_dump(document, sort_keys=False)}


async def _apply(client: AsyncTestClient[Litestar], tenant: Tenant, count: int) -> None:
    events = {"events": [{"name": "Parcel Shipped", "schema": {"type": "object"}}]}
    files = [
        {"name": "events.yaml", "content": yaml.safe_dump(events)},
        *(_integration_file(number) for number in range(count)),
    ]
    response = await client.post(
        "/2024-03/manage/apply", json={"files": files, "release": True}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text


async def _install(settings: Settings, tenant: Tenant, user_id: str, count: int) -> list[str]:
    """Install the first ``count`` released workflows for the user; their ids."""
    engine = create_engine(settings)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            service = InstallationService(
                session,
                Scope(tenant.workspace_id, tenant.environment),
                load_catalog(),
                settings.public_url,
            )
            chosen = [w.workflow_id for w in await service.released()][:count]
            await service.install(await session.get_one(User, user_id), chosen, [], {})
            await session.commit()
    finally:
        await engine.dispose()
    return chosen


async def _warm(hot: AsyncTestClient[Litestar], tenant: Tenant, user_id: str, spy: Spy) -> None:
    """The first listing after a release falls through: the route encodes the environment's
    JSON for that revision, which the hot path then reuses."""
    spy.answered.clear()
    first = await hot.get(f"{LISTING}?userId={user_id}", headers=tenant.headers)
    assert first.status_code == 200, first.text
    assert spy.answered == [(LISTING, False)]


async def test_the_listing_is_answered_by_the_hot_path_with_litestars_bytes(
    pair: tuple[AsyncTestClient[Litestar], AsyncTestClient[Litestar], Spy],
    tenant: Tenant,
    settings: Settings,
) -> None:
    hot, ordinary, spy = pair
    await _apply(hot, tenant, 3)
    merchant = await _user(hot, tenant, "merchant")
    # Neither an id nor a plain token: percent escapes, decoded as the route decodes them.
    odd = await _user(hot, tenant, "zoë's shop@example.com")
    await _warm(hot, tenant, merchant["userId"], spy)

    async def compare(step: str) -> list[bytes]:
        """Every way of asking, both paths; the bodies for the merchant and the other user."""
        bodies: dict[str, bytes] = {}
        for user, reference in (
            (merchant, merchant["userId"]),
            (merchant, "merchant"),
            (odd, odd["userId"]),
            (odd, "zo%C3%AB's%20shop%40example.com"),
            (odd, "zo%c3%ab%27s%20shop@example.com"),
        ):
            for path, headers in (
                (f"{LISTING}?userId={reference}", tenant.headers),
                (f"{LISTING}?userId={reference}", {"Authorization": f"bearer {tenant.key}"}),
                (f"/2023-06/integrations?userId={reference}", tenant.headers),
            ):
                spy.answered.clear()
                fast, slow = await _both(hot, ordinary, path, headers)
                assert fast.status_code == 200, (step, path, fast.text)
                _assert_same(fast, slow)
                assert spy.answered == [(LISTING, True)], (step, path)
                assert bodies.setdefault(user["userId"], fast.content) == fast.content
        return list(bodies.values())

    nothing = await compare("nothing installed")
    installed = await _install(settings, tenant, merchant["userId"], 3)  # 2 + 1 of the next
    some = await compare("installed")
    assert some[0] != nothing[0] and some[1] == nothing[1]  # the other user's is unchanged
    listed = (await hot.get(f"{LISTING}?userId=merchant", headers=tenant.headers)).json()
    assert [[w["installed"] for w in i["workflows"]] for i in listed["data"]] == [
        [True, True],
        [True, False],
        [False, False],
    ]
    assert [i["installed"] for i in listed["data"]] == [True, True, False]
    gone = await hot.delete(
        f"/2024-03/workflows/{installed[0]}?userId=merchant", headers=tenant.headers
    )
    assert gone.status_code == 200, gone.text
    fewer = await compare("one uninstalled")
    assert fewer[0] not in (nothing[0], some[0])
    off = await hot.put(
        "/2024-03/workflows/deactivate",
        json={"userId": "merchant", "workflowId": installed[2]},
        headers=tenant.headers,
    )
    assert off.status_code == 200, off.text
    assert (await compare("one deactivated"))[0] != fewer[0]

    # A release changes the revision: the first listing falls through and encodes it again.
    await _apply(hot, tenant, 4)
    await _warm(hot, tenant, merchant["userId"], spy)
    released = await compare("released")
    assert len(released[0]) > len(fewer[0]) and b'"name":"Hot 3"' in released[0]


async def test_every_other_listing_request_falls_through(
    pair: tuple[AsyncTestClient[Litestar], AsyncTestClient[Litestar], Spy],
    tenant: Tenant,
    make_tenant: MakeTenant,
    settings: Settings,
) -> None:
    hot, ordinary, spy = pair
    await _apply(hot, tenant, 2)
    merchant = await _user(hot, tenant, "merchant")
    other = await _user(hot, tenant, "other-merchant")
    await _install(settings, tenant, merchant["userId"], 1)
    await _warm(hot, tenant, merchant["userId"], spy)
    token = (await hot.get(f"{USERS}/{other['userId']}/token", headers=tenant.headers)).json()
    production = await make_tenant("acme", "production")
    mine = f"{LISTING}?userId={merchant['userId']}"
    cases: list[tuple[str, dict[str, str], int]] = [
        (LISTING, tenant.headers, 400),  # no userId
        (f"{LISTING}?userId=", tenant.headers, 400),  # an empty one
        (f"{LISTING}?userid=merchant", tenant.headers, 400),  # not the parameter's name
        (f"{LISTING}?userId=nobody", tenant.headers, 404),  # unknown user
        (mine, production.headers, 404),  # another environment's user
        (f"{mine}&userId=merchant", tenant.headers, 200),  # repeated
        (f"{mine}&page=2", tenant.headers, 200),  # a parameter the route does not take
        (f"{mine}&", tenant.headers, 200),  # an empty one
        ("/2024-03/integrations?userId=other+merchant", tenant.headers, 404),  # + is a space
        (f"{LISTING}?userId=%FF", tenant.headers, 404),  # an escape that is not UTF-8
        (f"{LISTING}/?userId=merchant", tenant.headers, 200),  # trailing slash
        (mine, {**tenant.headers, "Origin": "https://isv.example"}, 200),  # CORS stays put
        (mine, {}, 401),  # no key
        (mine, {"Authorization": f"Bearer {_typo(tenant.key)}"}, 401),  # checksum
        # User tokens: the ordinary path decides (it may only name its own user).
        (LISTING, {"x-alloy-user-token": token["token"]}, 200),
        (mine, {"x-alloy-user-token": token["token"]}, 404),
        (mine, {**tenant.headers, "x-alloy-user-token": token["token"]}, 404),
        (mine, {"Authorization": f"Bearer {token['token']}"}, 404),
        (f"{LISTING}?userId=other-merchant", {"x-alloy-user-token": token["token"]}, 200),
    ]
    for path, headers, status in cases:
        spy.answered.clear()
        fast, slow = await _both(hot, ordinary, path, headers)
        assert fast.status_code == status, (path, headers, fast.text)
        _assert_same(fast, slow)
        assert all(not answered for _, answered in spy.answered), (path, headers)
    # The same listing, answered by the hot path once the request is plain.
    spy.answered.clear()
    plain = await hot.get(mine, headers=tenant.headers)
    assert spy.answered == [(LISTING, True)]
    repeated = await hot.get(f"{mine}&userId=merchant", headers=tenant.headers)
    assert plain.content == repeated.content
    head = await hot.head(mine, headers=tenant.headers)
    assert head.status_code == (await ordinary.head(mine, headers=tenant.headers)).status_code
