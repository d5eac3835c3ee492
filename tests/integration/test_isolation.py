"""The IDOR matrix: one tenant's credentials against every route of another tenant's data.

Tenants differ by workspace or, within one workspace, by environment. Every attempt must answer
404 (or an empty list), and the victim's data must read back unchanged with the victim's own key.
Security anchors §6.1-6.2 and adversarial cases 12 and 14.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from embedded_ui.api import API_VERSIONS

Client = AsyncTestClient[Litestar]


@dataclass(frozen=True)
class Victim:
    tenant: Any
    user_id: str
    username: str
    snapshot: dict[str, Any]
    listing: dict[str, Any]


async def make_victim(client: Client, tenant: Any) -> Victim:
    created = await client.post(
        "/2024-03/users",
        json={"username": "victim", "fullName": "Victim Person"},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    listing = await client.get("/2024-03/users", headers=tenant.headers)
    assert listing.status_code == 200
    return Victim(tenant, body["userId"], body["username"], body, listing.json())


async def assert_unchanged(client: Client, victim: Victim) -> None:
    """Read the victim's data back with the victim's own key."""
    fetched = await client.get(f"/2024-03/users/{victim.user_id}", headers=victim.tenant.headers)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == victim.snapshot
    listing = await client.get("/2024-03/users", headers=victim.tenant.headers)
    assert listing.json() == victim.listing
    token = await client.get(
        f"/2024-03/users/{victim.user_id}/token", headers=victim.tenant.headers
    )
    assert token.status_code == 200, token.text
    session = await client.get(
        "/2024-03/session", headers={"x-alloy-user-token": token.json()["token"]}
    )
    assert session.status_code == 200, session.text
    assert session.json()["userId"] == victim.user_id


Attempt = Callable[[Client, dict[str, str], str], Awaitable[Any]]

ATTEMPTS: dict[str, Attempt] = {
    "GET /users/{id}": lambda c, h, ref: c.get(f"/2024-03/users/{ref}", headers=h),
    "PUT /users/{id}": lambda c, h, ref: c.put(
        f"/2024-03/users/{ref}", json={"username": "hijacked", "fullName": "Mallory"}, headers=h
    ),
    "PUT /users/{id} fullName only": lambda c, h, ref: c.put(
        f"/2024-03/users/{ref}", json={"fullName": None}, headers=h
    ),
    "DELETE /users/{id}": lambda c, h, ref: c.delete(f"/2024-03/users/{ref}", headers=h),
    "GET /users/{id}/token": lambda c, h, ref: c.get(f"/2024-03/users/{ref}/token", headers=h),
    "GET /user/{id}/token": lambda c, h, ref: c.get(f"/2022-09/user/{ref}/token", headers=h),
    "GET /users/{id}/integrations-page-url": lambda c, h, ref: c.get(
        f"/2024-03/users/{ref}/integrations-page-url", headers=h
    ),
}


@pytest.fixture(params=["other-workspace", "other-environment"])
async def pair(request: pytest.FixtureRequest, make_tenant: Any) -> tuple[Any, Any]:
    """``(attacker, victim)`` tenants: another workspace, or the same one's other environment."""
    victim = await make_tenant("globex", "development")
    if request.param == "other-workspace":
        attacker = await make_tenant("acme", "development")
        assert attacker.workspace_id != victim.workspace_id
    else:
        attacker = await make_tenant("globex", "production")
        assert attacker.workspace_id == victim.workspace_id
    return attacker, victim


@pytest.mark.parametrize("by", ["id", "username"])
@pytest.mark.parametrize("route", list(ATTEMPTS))
async def test_another_tenants_user_is_404_and_untouched(
    client: Client, pair: tuple[Any, Any], route: str, by: str
) -> None:
    attacker, victim_tenant = pair
    victim = await make_victim(client, victim_tenant)
    reference = victim.user_id if by == "id" else victim.username

    response = await ATTEMPTS[route](client, attacker.headers, reference)
    assert response.status_code == 404, response.text
    body = response.json()
    assert body["code"] == "not_found"
    # The answer names nothing of the victim's beyond what the caller sent.
    assert "Victim Person" not in response.text
    if by == "username":
        assert victim.user_id not in response.text
    assert "token" not in body

    await assert_unchanged(client, victim)


async def test_listing_shows_only_the_callers_own_users(
    client: Client, pair: tuple[Any, Any]
) -> None:
    attacker, victim_tenant = pair
    victim = await make_victim(client, victim_tenant)

    listed = await client.get("/2024-03/users", headers=attacker.headers)
    assert listed.status_code == 200, listed.text
    assert listed.json()["data"] == []
    assert listed.json()["meta"]["total"] == 0
    for page in (1, 2):
        paged = await client.get(f"/2024-03/users?page={page}&limit=1", headers=attacker.headers)
        assert paged.json()["data"] == []

    # The attacker's own user is all it sees, even with the victim's username.
    own = await client.post("/2024-03/users", json={"username": "victim"}, headers=attacker.headers)
    assert own.status_code == 201, own.text
    assert own.json()["userId"] != victim.user_id
    listed = await client.get("/2024-03/users", headers=attacker.headers)
    assert [u["userId"] for u in listed.json()["data"]] == [own.json()["userId"]]
    by_name = await client.get("/2024-03/users/victim", headers=attacker.headers)
    assert by_name.json()["userId"] == own.json()["userId"]

    await assert_unchanged(client, victim)


async def test_a_colliding_username_is_no_oracle(client: Client, pair: tuple[Any, Any]) -> None:
    """Renaming one's own user to the victim's username succeeds: usernames are per tenant."""
    attacker, victim_tenant = pair
    victim = await make_victim(client, victim_tenant)
    own = await client.post("/2024-03/users", json={"username": "mine"}, headers=attacker.headers)
    assert own.status_code == 201, own.text
    renamed = await client.put(
        f"/2024-03/users/{own.json()['userId']}",
        json={"username": victim.username},
        headers=attacker.headers,
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["username"] == victim.username
    batch = await client.post(
        "/2024-03/users/batch",
        json={"users": [{"username": "victim"}, {"username": "other"}]},
        headers=attacker.headers,
    )
    assert batch.status_code == 200, batch.text
    # "victim" collides with the attacker's own renamed user, not with the victim's.
    assert [item["success"] for item in batch.json()["data"]] == [False, True]

    await assert_unchanged(client, victim)


@pytest.mark.parametrize("version", API_VERSIONS)
async def test_every_api_version_is_scoped(client: Client, make_tenant: Any, version: str) -> None:
    attacker = await make_tenant("acme", "development")
    victim = await make_victim(client, await make_tenant("globex", "development"))
    fetched = await client.get(f"/{version}/users/{victim.user_id}", headers=attacker.headers)
    assert fetched.status_code == 404, fetched.text
    token = await client.get(f"/{version}/user/{victim.user_id}/token", headers=attacker.headers)
    assert token.status_code == 404, token.text
    await assert_unchanged(client, victim)


async def test_an_unknown_id_and_a_foreign_id_answer_alike(
    client: Client, pair: tuple[Any, Any]
) -> None:
    """404 for someone else's id is indistinguishable from 404 for an id that never existed."""
    attacker, victim_tenant = pair
    victim = await make_victim(client, victim_tenant)
    unknown = "0" * len(victim.user_id)
    foreign = await client.get(f"/2024-03/users/{victim.user_id}", headers=attacker.headers)
    missing = await client.get(f"/2024-03/users/{unknown}", headers=attacker.headers)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["message"].replace(victim.user_id, unknown) == missing.json()["message"]
    assert foreign.json()["code"] == missing.json()["code"]


# --- user tokens ---------------------------------------------------------------------------


async def token_of(client: Client, tenant: Any, user_id: str) -> str:
    response = await client.get(f"/2024-03/users/{user_id}/token", headers=tenant.headers)
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


async def test_a_user_token_answers_only_for_its_own_user(client: Client, tenant: Any) -> None:
    alice = await client.post("/2024-03/users", json={"username": "alice"}, headers=tenant.headers)
    bob = await client.post("/2024-03/users", json={"username": "bob"}, headers=tenant.headers)
    alice_id, bob_id = alice.json()["userId"], bob.json()["userId"]
    alice_token = await token_of(client, tenant, alice_id)
    bob_token = await token_of(client, tenant, bob_id)

    for token, expected in ((alice_token, alice_id), (bob_token, bob_id)):
        for headers in ({"x-alloy-user-token": token}, {"Authorization": f"Bearer {token}"}):
            session = await client.get("/2024-03/session", headers=headers)
            assert session.status_code == 200, session.text
            assert session.json()["userId"] == expected

    # Naming Bob anywhere in the request does not make Alice's token act for Bob.
    for path in (f"/2024-03/session?userId={bob_id}", f"/2024-03/session?user_id={bob_id}"):
        session = await client.get(path, headers={"x-alloy-user-token": alice_token})
        assert session.status_code == 200, session.text
        assert session.json()["userId"] == alice_id
    # With the API key present too, the user token decides who the session is.
    both = await client.get(
        "/2024-03/session", headers={**tenant.headers, "x-alloy-user-token": alice_token}
    )
    assert both.json()["userId"] == alice_id


async def test_a_user_token_cannot_use_the_api_key_routes(client: Client, tenant: Any) -> None:
    alice = await client.post("/2024-03/users", json={"username": "alice"}, headers=tenant.headers)
    bob = await client.post("/2024-03/users", json={"username": "bob"}, headers=tenant.headers)
    alice_id, bob_id = alice.json()["userId"], bob.json()["userId"]
    alice_token = await token_of(client, tenant, alice_id)

    for headers in (
        {"Authorization": f"Bearer {alice_token}"},
        {"x-alloy-user-token": alice_token},
    ):
        for target in (bob_id, alice_id):
            for name, attempt in ATTEMPTS.items():
                response = await attempt(client, headers, target)
                assert response.status_code == 401, (name, response.text)
                assert response.json()["code"] == "unauthorized"
        listed = await client.get("/2024-03/users", headers=headers)
        assert listed.status_code == 401, listed.text

    # Bob is unharmed and still reachable with the key.
    fetched = await client.get(f"/2024-03/users/{bob_id}", headers=tenant.headers)
    assert fetched.status_code == 200
    assert fetched.json() == bob.json()


async def test_a_user_token_of_another_tenant_reports_its_own_tenant(
    client: Client, make_tenant: Any
) -> None:
    """A token carries its workspace and environment; a second tenant's key changes nothing."""
    acme = await make_tenant("acme", "development")
    globex = await make_tenant("globex", "production")
    user = await client.post("/2024-03/users", json={"username": "u"}, headers=acme.headers)
    token = await token_of(client, acme, user.json()["userId"])
    session = await client.get(
        "/2024-03/session", headers={**globex.headers, "x-alloy-user-token": token}
    )
    assert session.status_code == 200, session.text
    assert session.json() == {
        "userId": user.json()["userId"],
        "workspaceId": acme.workspace_id,
        "environment": "development",
    }
