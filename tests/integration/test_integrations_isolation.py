"""Integrations, workflows, installations and credentials across tenants and users.

Another workspace, or the same workspace's other environment, gets 404 for every id of the
victim's (integration, workflow, user, credential, pending installation), even when it has
applied the very same files; a user token answers only for its own user. Afterwards the
victim's data reads back unchanged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from conftest import SandboxProcess
from embedded_ui.settings import Settings
from embedded_ui.store import Credential, Installation, PendingInstallation, WorkflowVersion

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "fulfillmently"
V = "/2024-03"
FILES = [{"name": p.name, "content": p.read_text()} for p in sorted(EXAMPLES.glob("*.yaml"))]
SANDBOX_SECRET = "sbx_" + "Victim0Secret0Value0"
ATTACKER_SECRET = "sbx_" + "B" * 20


@dataclass
class Side:
    """One tenant with the quickstart released, one user with a sandbox install."""

    tenant: Any
    user_id: str
    username: str
    integrations: dict[str, str]  # app → integrationId
    workflows: dict[str, str]  # name → workflowId
    status_workflow: str
    credential_id: str
    pending_id: str


async def setup_side(
    client: Any, tenant: Any, username: str, secret: str, sandbox: SandboxProcess
) -> Side:
    sandbox.new_key(username, api_key=secret)
    h = tenant.headers
    applied = await client.post(
        f"{V}/manage/apply", json={"files": FILES, "release": True}, headers=h
    )
    assert applied.status_code == 200, applied.text
    created = {c["action"] for c in applied.json()["changes"] if c["kind"] == "integration"}
    assert created == {"create"}, "the same keys in another tenant are new integrations"
    user = await client.post(f"{V}/users", json={"username": username}, headers=h)
    assert user.status_code == 201, user.text
    user_id = user.json()["userId"]
    credential = await client.post(
        f"{V}/users/{user_id}/credentials",
        json={"app": "sandbox", "type": "api_key", "data": {"access_token": secret}},
        headers=h,
    )
    assert credential.status_code == 201, credential.text
    credential_id = credential.json()["credentialId"]
    listed = (await client.get(f"{V}/integrations?userId={user_id}", headers=h)).json()["data"]
    integrations = {i["app"]: i["integrationId"] for i in listed}
    workflows = {w["name"]: w["workflowId"] for i in listed for w in i["workflows"]}
    status_workflow = workflows["Update the Sandbox order status when a fulfillment is updated"]

    started = await client.post(
        f"{V}/headless/startInstallation",
        json={
            "userId": user_id,
            "integrationId": integrations["sandbox"],
            "credentialIds": [credential_id],
        },
        headers=h,
    )
    assert started.status_code == 200, started.text
    done = await client.post(
        f"{V}/headless/completeInstallation",
        json={
            "installationId": started.json()["installationId"],
            "data": [
                {
                    "workflowId": status_workflow,
                    "blockId": "update_order_status",
                    "fields": [{"name": "status", "value": "delivered"}],
                }
            ],
        },
        headers=h,
    )
    assert done.status_code == 200, done.text
    # A second installation left pending, for the complete attempt.
    pending = await client.post(
        f"{V}/headless/startInstallation",
        json={
            "userId": user_id,
            "integrationId": integrations["sandbox"],
            "credentialIds": [credential_id],
        },
        headers=h,
    )
    assert pending.status_code == 200, pending.text
    return Side(
        tenant,
        user_id,
        username,
        integrations,
        workflows,
        status_workflow,
        credential_id,
        pending.json()["installationId"],
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(settings.database_url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


async def snapshot(client: Any, db: async_sessionmaker[AsyncSession], side: Side) -> dict[str, Any]:
    """Everything of the side's, through its own key and straight from the tables."""
    h = side.tenant.headers
    reads = {
        "integrations": f"{V}/integrations?userId={side.user_id}",
        "workflows": f"{V}/workflows?userId={side.user_id}",
        "credentials": f"{V}/users/{side.user_id}/credentials",
        "events": f"{V}/events",
        "user": f"{V}/users/{side.user_id}",
    }
    for workflow_id in side.workflows.values():
        reads[f"versions {workflow_id}"] = f"{V}/workflows/{workflow_id}/versions"
        reads[f"users {workflow_id}"] = f"{V}/workflows/{workflow_id}/users"
    state: dict[str, Any] = {}
    for name, path in reads.items():
        response = await client.get(path, headers=h)
        assert response.status_code == 200, f"{name}: {response.text}"
        state[name] = response.json()

    def owned(model: Any) -> Any:
        return select(model).where(
            model.workspace_id == side.tenant.workspace_id,
            model.environment == side.tenant.environment,
        )

    async with db() as session:
        state["rows"] = {
            "installations": sorted(
                (
                    i.id,
                    i.workflow_id,
                    i.version_id,
                    i.active,
                    repr(i.values),
                    repr(i.credential_ids),
                )
                for i in await session.scalars(owned(Installation))
            ),
            "credentials": sorted(
                (c.id, c.key_id, bytes(c.ciphertext), c.status)
                for c in await session.scalars(owned(Credential))
            ),
            "pending": sorted(p.id for p in await session.scalars(owned(PendingInstallation))),
            "versions": sorted(
                (v.id, v.number, v.content_hash)
                for v in await session.scalars(owned(WorkflowVersion))
            ),
        }
    return state


@pytest.fixture(params=["other-workspace", "other-environment"])
async def pair(request: pytest.FixtureRequest, make_tenant: Any) -> tuple[Any, Any]:
    """``(attacker, victim)`` tenants."""
    victim = await make_tenant("globex", "development")
    if request.param == "other-workspace":
        attacker = await make_tenant("acme", "development")
        assert attacker.workspace_id != victim.workspace_id
    else:
        attacker = await make_tenant("globex", "production")
        assert attacker.workspace_id == victim.workspace_id
    return attacker, victim


def attempts(attacker: Side, victim: Side) -> dict[str, tuple[str, str, Any]]:
    """name → (method, path, JSON body). Each must answer 404 to the attacker's key."""
    mine, theirs = attacker.user_id, victim.user_id
    workflow = victim.status_workflow
    integration = victim.integrations["sandbox"]
    step = {
        "workflowId": workflow,
        "blockId": "update_order_status",
        "fields": [{"name": "status", "value": "shipped"}],
    }
    found: dict[str, tuple[str, str, Any]] = {}
    for label, user in (("victim's user", theirs), ("victim's username", victim.username)):
        found |= {
            f"GET /integrations ({label})": ("GET", f"{V}/integrations?userId={user}", None),
            f"GET /workflows ({label})": ("GET", f"{V}/workflows?userId={user}", None),
            f"PUT deactivate ({label})": (
                "PUT",
                f"{V}/workflows/deactivate",
                {"userId": user, "workflowId": workflow},
            ),
            f"PUT upgrade ({label})": (
                "PUT",
                f"{V}/workflows/{workflow}/upgrade?userId={user}",
                None,
            ),
            f"DELETE workflow ({label})": (
                "DELETE",
                f"{V}/workflows/{workflow}?userId={user}",
                None,
            ),
            f"PUT deactivate-workflows ({label})": (
                "PUT",
                f"{V}/users/{user}/deactivate-workflows",
                None,
            ),
            f"GET credentials ({label})": ("GET", f"{V}/users/{user}/credentials", None),
            f"POST credentials ({label})": (
                "POST",
                f"{V}/users/{user}/credentials",
                {"app": "sandbox", "type": "api_key", "data": {"access_token": "sbx_" + "A" * 20}},
            ),
            f"DELETE credential ({label})": (
                "DELETE",
                f"{V}/users/{user}/credentials/{victim.credential_id}",
                None,
            ),
            f"GET /events ({label})": ("GET", f"{V}/events?userId={user}", None),
            f"start headless ({label})": (
                "POST",
                f"{V}/headless/startInstallation",
                {"userId": user, "integrationId": attacker.integrations["sandbox"]},
            ),
        }
    return found | {
        "GET /integrations/{victim's id} (own user)": (
            "GET",
            f"{V}/integrations/{integration}?userId={mine}",
            None,
        ),
        "GET /workflows/{victim's id} (own user)": (
            "GET",
            f"{V}/workflows/{workflow}?userId={mine}",
            None,
        ),
        "GET versions of the victim's workflow": (
            "GET",
            f"{V}/workflows/{workflow}/versions",
            None,
        ),
        "GET users of the victim's workflow": ("GET", f"{V}/workflows/{workflow}/users", None),
        "PUT activate the victim's workflow (own user)": (
            "PUT",
            f"{V}/workflows/activate",
            {"userId": mine, "workflowId": workflow},
        ),
        "PUT deactivate the victim's workflow (own user)": (
            "PUT",
            f"{V}/workflows/deactivate",
            {"userId": mine, "workflowId": workflow},
        ),
        "PUT upgrade the victim's workflow (own user)": (
            "PUT",
            f"{V}/workflows/{workflow}/upgrade?userId={mine}",
            None,
        ),
        "DELETE the victim's workflow (own user)": (
            "DELETE",
            f"{V}/workflows/{workflow}?userId={mine}",
            None,
        ),
        "DELETE the victim's credential (own user)": (
            "DELETE",
            f"{V}/users/{mine}/credentials/{victim.credential_id}",
            None,
        ),
        "start headless for the victim's integration (own user)": (
            "POST",
            f"{V}/headless/startInstallation",
            {"userId": mine, "integrationId": integration},
        ),
        "start headless with the victim's credential (own user)": (
            "POST",
            f"{V}/headless/startInstallation",
            {
                "userId": mine,
                "integrationId": attacker.integrations["sandbox"],
                "credentialIds": [victim.credential_id],
            },
        ),
        "complete the victim's pending installation": (
            "POST",
            f"{V}/headless/completeInstallation",
            {"installationId": victim.pending_id, "data": [step]},
        ),
        "release the victim's workflow": (
            "POST",
            f"{V}/manage/release",
            {"workflowIds": [workflow]},
        ),
    }


async def test_another_tenant_gets_404_for_every_id_and_changes_nothing(
    client: Any,
    pair: tuple[Any, Any],
    db: async_sessionmaker[AsyncSession],
    sandbox: SandboxProcess,
) -> None:
    attacker_tenant, victim_tenant = pair
    victim = await setup_side(client, victim_tenant, "victim-shop", SANDBOX_SECRET, sandbox)
    attacker = await setup_side(client, attacker_tenant, "attacker-shop", ATTACKER_SECRET, sandbox)
    assert set(attacker.workflows.values()).isdisjoint(victim.workflows.values())
    assert set(attacker.integrations.values()).isdisjoint(victim.integrations.values())
    before = await snapshot(client, db, victim)

    wrong: list[str] = []
    for name, (method, path, body) in attempts(attacker, victim).items():
        response = await client.request(method, path, json=body, headers=attacker_tenant.headers)
        if response.status_code != 404:
            wrong.append(f"{name}: {response.status_code} {response.text}")
        sent = path + json.dumps(body)
        for value in (SANDBOX_SECRET, victim.user_id, victim.username, victim.credential_id):
            if value in response.text and value not in sent:
                wrong.append(f"{name}: the answer shows {value!r}, which was not asked about")
    assert wrong == [], "\n".join(wrong)

    # The attacker's own view has nothing of the victim's.
    for path in (
        f"{V}/integrations?userId={attacker.user_id}",
        f"{V}/workflows?userId={attacker.user_id}",
        f"{V}/users/{attacker.user_id}/credentials",
    ):
        own = await client.get(path, headers=attacker_tenant.headers)
        assert own.status_code == 200, own.text
        for victim_id in (*victim.workflows.values(), victim.credential_id, victim.user_id):
            assert victim_id not in own.text

    assert await snapshot(client, db, victim) == before


async def test_a_user_token_answers_only_for_its_own_user(
    client: Any,
    pair: tuple[Any, Any],
    db: async_sessionmaker[AsyncSession],
    sandbox: SandboxProcess,
) -> None:
    attacker_tenant, victim_tenant = pair
    victim = await setup_side(client, victim_tenant, "victim-shop", SANDBOX_SECRET, sandbox)
    attacker = await setup_side(client, attacker_tenant, "attacker-shop", ATTACKER_SECRET, sandbox)
    # A neighbour in the victim's own tenant.
    neighbour = await client.post(
        f"{V}/users", json={"username": "neighbour"}, headers=victim_tenant.headers
    )
    assert neighbour.status_code == 201, neighbour.text
    before = await snapshot(client, db, victim)

    async def token(tenant: Any, user_id: str) -> dict[str, str]:
        issued = await client.get(f"{V}/users/{user_id}/token", headers=tenant.headers)
        assert issued.status_code == 200, issued.text
        return {"x-alloy-user-token": issued.json()["token"]}

    tokens = {
        "neighbour (same tenant)": await token(victim_tenant, neighbour.json()["userId"]),
        "attacker's user (other tenant)": await token(attacker_tenant, attacker.user_id),
    }
    workflow = victim.status_workflow
    user_scoped = {
        "GET /integrations": ("GET", f"{V}/integrations?userId={victim.user_id}", None),
        "GET /integrations by username": ("GET", f"{V}/integrations?userId=victim-shop", None),
        "GET /integrations/{id}": (
            "GET",
            f"{V}/integrations/{victim.integrations['sandbox']}?userId={victim.user_id}",
            None,
        ),
        "GET /workflows": ("GET", f"{V}/workflows?userId={victim.user_id}", None),
        "GET /workflows/{id}": ("GET", f"{V}/workflows/{workflow}?userId={victim.user_id}", None),
        "PUT deactivate": (
            "PUT",
            f"{V}/workflows/deactivate",
            {"userId": victim.user_id, "workflowId": workflow},
        ),
        "PUT activate": (
            "PUT",
            f"{V}/workflows/activate",
            {"userId": victim.user_id, "workflowId": workflow},
        ),
        "PUT deactivate own (victim's workflow)": (
            "PUT",
            f"{V}/workflows/deactivate",
            {"workflowId": workflow},
        ),
    }
    isv_only = {
        "PUT upgrade": ("PUT", f"{V}/workflows/{workflow}/upgrade?userId={victim.user_id}", None),
        "DELETE workflow": ("DELETE", f"{V}/workflows/{workflow}?userId={victim.user_id}", None),
        "GET credentials": ("GET", f"{V}/users/{victim.user_id}/credentials", None),
        "GET users of a workflow": ("GET", f"{V}/workflows/{workflow}/users", None),
        "PUT deactivate-workflows": (
            "PUT",
            f"{V}/users/{victim.user_id}/deactivate-workflows",
            None,
        ),
    }
    wrong: list[str] = []
    for who, headers in tokens.items():
        for expected, routes in ((404, user_scoped), (401, isv_only)):
            for name, (method, path, body) in routes.items():
                response = await client.request(method, path, json=body, headers=headers)
                if response.status_code != expected:
                    wrong.append(f"{who} {name}: {response.status_code} {response.text}")
    assert wrong == [], "\n".join(wrong)

    # The neighbour's token still works for the neighbour.
    own = await client.get(f"{V}/integrations", headers=tokens["neighbour (same tenant)"])
    assert own.status_code == 200, own.text
    assert not any(i["installed"] for i in own.json()["data"])

    assert await snapshot(client, db, victim) == before
