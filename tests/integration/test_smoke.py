from __future__ import annotations


async def test_create_and_fetch_user(client, tenant):
    created = await client.post(
        "/2024-03/users", json={"username": "gregg"}, headers=tenant.headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    fetched = await client.get(f"/2022-09/users/{body['userId']}", headers=tenant.headers)
    assert fetched.json() == body
