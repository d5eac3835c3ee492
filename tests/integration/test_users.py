"""/users through HTTP: shapes, every dated prefix, pagination, batches and bad input."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from embedded_ui.api import API_VERSIONS
from embedded_ui.store import User

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


async def count_users(settings) -> int:
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(User)) or 0)
    finally:
        await engine.dispose()


async def create(client, tenant, username: str, **extra) -> dict:
    response = await client.post(
        "/2024-03/users", json={"username": username, **extra}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_user_returns_the_documented_shape(client, tenant):
    body = await create(client, tenant, "gregg", fullName="Gregg Smith")
    assert set(body) == {"userId", "username", "fullName", "createdAt"}
    assert re.fullmatch(r"[0-9a-f]{24}", body["userId"])
    assert body["username"] == "gregg"
    assert body["fullName"] == "Gregg Smith"
    assert ISO_MS.match(body["createdAt"])


@pytest.mark.parametrize("version", API_VERSIONS)
async def test_every_dated_prefix_reaches_the_same_users(client, tenant, version):
    user = await create(client, tenant, f"user-{version}")
    response = await client.get(f"/{version}/users/{user['userId']}", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json() == user


async def test_unknown_prefix_is_404_with_error_body(client, tenant):
    response = await client.get("/2021-01/users", headers=tenant.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "/2021-01/users" in response.json()["message"]


async def test_get_update_delete_by_id_or_username(client, tenant):
    user = await create(client, tenant, "shop-owner")
    by_name = await client.get("/2024-03/users/shop-owner", headers=tenant.headers)
    assert by_name.json() == user

    updated = await client.put(
        "/2024-03/users/shop-owner",
        json={"username": "shop-owner-2", "fullName": "Ada"},
        headers=tenant.headers,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json() == {**user, "username": "shop-owner-2", "fullName": "Ada"}

    cleared = await client.put(
        f"/2024-03/users/{user['userId']}", json={"fullName": None}, headers=tenant.headers
    )
    assert cleared.json()["fullName"] is None
    assert cleared.json()["username"] == "shop-owner-2"

    deleted = await client.delete("/2024-03/users/shop-owner-2", headers=tenant.headers)
    assert deleted.status_code == 200
    assert deleted.json()["userId"] == user["userId"]
    gone = await client.get(f"/2024-03/users/{user['userId']}", headers=tenant.headers)
    assert gone.status_code == 404
    assert gone.json()["code"] == "not_found"
    again = await client.delete(f"/2024-03/users/{user['userId']}", headers=tenant.headers)
    assert again.status_code == 404


async def test_duplicate_username_is_409_and_writes_nothing(client, tenant, settings):
    await create(client, tenant, "gregg")
    response = await client.post(
        "/2024-03/users", json={"username": "gregg"}, headers=tenant.headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert "gregg" in response.json()["message"]
    assert await count_users(settings) == 1


async def test_renaming_onto_an_existing_username_is_409_and_changes_nothing(client, tenant):
    await create(client, tenant, "first")
    second = await create(client, tenant, "second")
    response = await client.put(
        "/2024-03/users/second", json={"username": "first"}, headers=tenant.headers
    )
    assert response.status_code == 409
    still = await client.get(f"/2024-03/users/{second['userId']}", headers=tenant.headers)
    assert still.json()["username"] == "second"


async def test_unicode_usernames_are_normalised_and_round_trip(client, tenant):
    composed = await create(client, tenant, "Jos\u00e9 \u5f20\u4f1f")
    assert composed["username"] == "Jos\u00e9 \u5f20\u4f1f"
    # The same name typed with a combining accent is the same user (NFC).
    response = await client.post(
        "/2024-03/users", json={"username": "Jose\u0301 \u5f20\u4f1f"}, headers=tenant.headers
    )
    assert response.status_code == 409
    fetched = await client.get("/2024-03/users/Jos\u00e9 \u5f20\u4f1f", headers=tenant.headers)
    assert fetched.json()["userId"] == composed["userId"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "username"),
        ({"username": 42}, "username"),
        ({"username": None}, "username"),
        ({"username": ""}, "username"),
        ({"username": "   "}, "username"),
        ({"username": " padded"}, "username"),
        ({"username": "x" * 256}, "username"),
        ({"username": "zero\u200bwidth"}, "username"),
        ({"username": "bidi\u202eevil"}, "username"),
        ({"username": "line\nbreak"}, "username"),
        ({"username": "nul\u0000"}, "username"),
        ({"username": "ok", "fullName": 3}, "fullName"),
        ({"username": "ok", "fullName": "f" * 257}, "fullName"),
        ({"username": "ok", "fullname": "typo"}, "fullname"),
        (["username"], ""),
    ],
)
async def test_bad_user_input_is_400_naming_the_field_and_writes_nothing(
    client, tenant, settings, body, field
):
    response = await client.post("/2024-03/users", json=body, headers=tenant.headers)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == "invalid_request"
    assert field in error["message"]
    assert await count_users(settings) == 0


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b'{"username": "a"', b"\xff\xfe", b'{"username": "\\ud800"}'],
)
async def test_invalid_json_is_400(client, tenant, settings, raw):
    response = await client.post(
        "/2024-03/users",
        content=raw,
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["message"]
    assert await count_users(settings) == 0


async def test_ten_megabyte_body_is_413(client, tenant, settings):
    huge = b'{"username": "' + b"a" * (10 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/2024-03/users",
        content=huge,
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert await count_users(settings) == 0


async def test_update_needs_something_to_change(client, tenant):
    await create(client, tenant, "gregg")
    empty = await client.put("/2024-03/users/gregg", json={}, headers=tenant.headers)
    assert empty.status_code == 400
    assert "Nothing to update" in empty.json()["message"]
    null_name = await client.put(
        "/2024-03/users/gregg", json={"username": None}, headers=tenant.headers
    )
    assert null_name.status_code == 400
    assert "username" in null_name.json()["message"]


async def test_list_is_paginated_oldest_first(client, tenant):
    names = [f"user-{index:02d}" for index in range(7)]
    for name in names:
        await create(client, tenant, name)
    first = await client.get("/2024-03/users?limit=3", headers=tenant.headers)
    assert first.status_code == 200
    body = first.json()
    assert [user["username"] for user in body["data"]] == names[:3]
    assert body["meta"] == {"page": 1, "limit": 3, "total": 7, "hasMore": True}
    last = await client.get("/2024-03/users?limit=3&page=3", headers=tenant.headers)
    assert [user["username"] for user in last.json()["data"]] == names[6:]
    assert last.json()["meta"]["hasMore"] is False


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "page=0", "limit=abc", "page=-1"])
async def test_bad_paging_is_400_naming_the_parameter(client, tenant, query):
    response = await client.get(f"/2024-03/users?{query}", headers=tenant.headers)
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()["message"]


async def test_batch_creates_the_valid_items_and_reports_each(client, tenant, settings):
    await create(client, tenant, "taken")
    response = await client.post(
        "/2024-03/users/batch",
        json={
            "users": [
                {"username": "alpha", "fullName": "Alpha"},
                {"username": "taken"},
                {"username": 7},
                {"username": "beta"},
                {"username": "beta"},
                {"username": "zero\u200bwidth"},
                "not an object",
            ]
        },
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["created"] == 2
    assert body["failed"] == 5
    outcomes = {item["index"]: item for item in body["data"]}
    assert sorted(outcomes) == list(range(7))
    assert outcomes[0]["success"] and outcomes[0]["user"]["username"] == "alpha"
    assert outcomes[1]["error"]["code"] == "conflict"
    assert outcomes[2]["error"]["code"] == "invalid_request"
    assert "username" in outcomes[2]["error"]["message"]
    assert outcomes[3]["success"]
    assert outcomes[4]["error"]["code"] == "conflict"
    assert "U+200B" in outcomes[5]["error"]["message"]
    assert outcomes[6]["error"]["code"] == "invalid_request"
    assert await count_users(settings) == 3


async def test_batch_of_1000_is_accepted(client, tenant, settings):
    users = [{"username": f"bulk-{index}"} for index in range(1000)]
    response = await client.post(
        "/2024-03/users/batch", json={"users": users}, headers=tenant.headers
    )
    assert response.status_code == 200
    assert response.json()["created"] == 1000
    assert await count_users(settings) == 1000


async def test_batch_of_1001_is_refused_whole(client, tenant, settings):
    users = [{"username": f"bulk-{index}"} for index in range(1001)]
    response = await client.post(
        "/2024-03/users/batch", json={"users": users}, headers=tenant.headers
    )
    assert response.status_code == 400
    assert "1000" in response.json()["message"]
    assert "users" in response.json()["message"]
    assert await count_users(settings) == 0


@pytest.mark.parametrize("body", [{}, {"users": "x"}, {"users": None}, {"people": []}])
async def test_batch_body_shape_errors_are_400(client, tenant, body):
    response = await client.post("/2024-03/users/batch", json=body, headers=tenant.headers)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


async def test_token_routes_return_a_token_for_id_or_username(client, tenant):
    user = await create(client, tenant, "gregg")
    plural = await client.get(f"/2024-03/users/{user['userId']}/token", headers=tenant.headers)
    singular = await client.get("/2022-09/user/gregg/token", headers=tenant.headers)
    for response in (plural, singular):
        assert response.status_code == 200
        assert response.json()["token"].count(".") == 2
        assert ISO_MS.match(response.json()["expiresAt"])
    missing = await client.get("/2024-03/users/nobody/token", headers=tenant.headers)
    assert missing.status_code == 404


async def test_user_token_authenticates_the_session_route(client, tenant):
    user = await create(client, tenant, "gregg")
    token = (
        await client.get(f"/2024-03/users/{user['userId']}/token", headers=tenant.headers)
    ).json()["token"]
    for headers in ({"x-alloy-user-token": token}, {"Authorization": f"Bearer {token}"}):
        response = await client.get("/2024-03/session", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "userId": user["userId"],
            "workspaceId": tenant.workspace_id,
            "environment": "development",
        }
    # A user token is not an API key.
    refused = await client.get("/2024-03/users", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
