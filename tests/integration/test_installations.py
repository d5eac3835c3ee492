"""Installations end to end: the quickstart's files applied and released, a merchant with a
sandbox and a BigCommerce credential, headless install, and every route on top of it —
listings in Alloy's exact shape, versions, upgrade, activation, uninstall, user tokens, the
catalog, events, and credentials (never a secret out, sealed at rest, rotatable)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from litestar.serialization import encode_json
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from conftest import BIGCOMMERCE_REJECTED, PUBLIC_URL, SandboxProcess
from embedded_ui.api.integrations import IntegrationsListOut
from embedded_ui.app import create_app
from embedded_ui.catalog import load_catalog
from embedded_ui.credentials import CredentialService, Vault, VaultError, credential_aad
from embedded_ui.engine.destinations import DestinationService
from embedded_ui.integrations import InstallationService
from embedded_ui.rotation import SEALED
from embedded_ui.settings import Settings, VaultKey
from embedded_ui.store import Credential, Installation, Scope, User
from oauth_driver import OAuthDriver

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "fulfillmently"
V = "/2024-03"
INTEGRATION_KEYS = {
    "integrationId",
    "app",
    "name",
    "description",
    "categories",
    "icon",
    "installed",
    "workflows",
}
WORKFLOW_KEYS = {
    "workflowId",
    "name",
    "installed",
    "version",
    "installedVersion",
    "active",
    "blocks",
}
BLOCK_KEYS = {"id", "name", "type", "icon"}
DEFAULT_URL = "http://127.0.0.1:8000/demo/receiver"

# Edits of sandbox.yaml's "fulfillment updated" workflow, and whether an upgrade may follow.
STATUS_OPTIONS = (
    "              type: select\n"
    "              options:\n"
    "                - {label: Shipped, value: shipped}\n"
    "                - {label: Delivered, value: delivered}\n"
)
STATUS_BLOCK = (
    "          status:\n"
    "            configurable:\n"
    "              label: Sandbox status for fulfilled orders\n"
    f"{STATUS_OPTIONS}"
    "              default: shipped\n"
)
RENAME = (
    "name: Update the Sandbox order status when a fulfillment is updated",
    "name: Sandbox status updates",
)
MORE_OPTIONS = (
    "                - {label: Delivered, value: delivered}\n",
    "                - {label: Delivered, value: delivered}\n"
    "                - {label: Cancelled, value: cancelled}\n",
)
UPGRADE_CASES: dict[str, tuple[tuple[str, str], list[str]]] = {
    "renamed workflow": (RENAME, []),
    "fixed input changed": (
        ('order_id: "{{ trigger.orderId }}"', 'order_id: "{{ trigger.order.id }}"'),
        [],
    ),
    "option added": (MORE_OPTIONS, ["update_order_status.status"]),
    "type changed": (
        (STATUS_OPTIONS, "              type: text\n"),
        ["update_order_status.status"],
    ),
    "made optional": (
        (
            "              type: select\n",
            "              type: select\n              required: false\n",
        ),
        ["update_order_status.status"],
    ),
    "field removed": (
        (STATUS_BLOCK, "          status: shipped\n"),
        ["update_order_status.status"],
    ),
}


def example_files(*sandbox_edits: tuple[str, str]) -> list[dict[str, str]]:
    files = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        content = path.read_text()
        for old, new in sandbox_edits if path.name == "sandbox.yaml" else ():
            assert old in content, f"{old!r} not in {path.name}"
            content = content.replace(old, new)
        files.append({"name": path.name, "content": content})
    return files


def unknown_sandbox_token() -> str:
    """Well formed, but no sandbox account has it."""
    return "sbx_" + secrets.token_hex(12)


def bigcommerce_token() -> str:
    return secrets.token_hex(16)


@dataclass
class World:
    """One tenant with the quickstart released, a merchant and its two credentials."""

    client: Any
    tenant: Any
    db: async_sessionmaker[AsyncSession]
    user_id: str
    integrations: dict[str, str]  # app → integrationId
    workflows: dict[str, str]  # workflow name → workflowId
    sandbox_credential: str
    sandbox_secret: str
    bigcommerce_credential: str
    bigcommerce_secret: str
    sandbox: SandboxProcess

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.tenant.headers)

    async def apply(self, *sandbox_edits: tuple[str, str]) -> dict[str, Any]:
        response = await self.client.post(
            f"{V}/manage/apply",
            json={"files": example_files(*sandbox_edits), "release": True},
            headers=self.headers,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def listing(self, user: str | None = None) -> dict[str, Any]:
        response = await self.client.get(
            f"{V}/integrations", params={"userId": user or self.user_id}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def workflow(self, workflow_id: str, user: str | None = None) -> dict[str, Any]:
        for integration in (await self.listing(user))["data"]:
            for workflow in integration["workflows"]:
                if workflow["workflowId"] == workflow_id:
                    found: dict[str, Any] = workflow
                    return found
        raise AssertionError(f"{workflow_id} not listed")

    async def start(self, app: str, user: str | None = None, **extra: Any) -> Any:
        credentials = {
            "sandbox": self.sandbox_credential,
            "bigcommerce": self.bigcommerce_credential,
        }
        body = {
            "userId": user or self.user_id,
            "integrationId": self.integrations[app],
            "credentialIds": [credentials[app]],
            **extra,
        }
        return await self.client.post(
            f"{V}/headless/startInstallation", json=body, headers=self.headers
        )

    async def complete(self, installation_id: str, values: dict[tuple[str, str], Any]) -> Any:
        """``values``: ``(workflowId, blockId) → {name: value}``."""
        data = [
            {
                "workflowId": workflow_id,
                "blockId": block_id,
                "fields": [{"name": n, "value": v} for n, v in fields.items()],
            }
            for (workflow_id, block_id), fields in values.items()
        ]
        return await self.client.post(
            f"{V}/headless/completeInstallation",
            json={"installationId": installation_id, "data": data},
            headers=self.headers,
        )

    async def install_sandbox(self, user: str | None = None, status: str = "delivered") -> None:
        started = await self.start("sandbox", user)
        assert started.status_code == 200, started.text
        done = await self.complete(
            started.json()["installationId"],
            {
                (self.workflows["sandbox-fulfillment-updated"], "update_order_status"): {
                    "status": status
                }
            },
        )
        assert done.status_code == 200, done.text

    async def installations(self) -> list[Installation]:
        async with self.db() as session:
            rows = await session.scalars(
                select(Installation).where(
                    Installation.workspace_id == self.tenant.workspace_id,
                    Installation.environment == self.tenant.environment,
                )
            )
            return list(rows)


async def create_user(client: Any, tenant: Any, username: str) -> str:
    response = await client.post(f"{V}/users", json={"username": username}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    user_id: str = response.json()["userId"]
    return user_id


async def create_credential(
    client: Any, tenant: Any, user_id: str, app: str, data: dict[str, str]
) -> Any:
    return await client.post(
        f"{V}/users/{user_id}/credentials",
        json={"app": app, "type": "api_key", "data": data},
        headers=tenant.headers,
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(settings.database_url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


@pytest.fixture
async def world(
    client: Any, tenant: Any, db: async_sessionmaker[AsyncSession], sandbox: SandboxProcess
) -> World:
    applied = await client.post(
        f"{V}/manage/apply",
        json={"files": example_files(), "release": True},
        headers=tenant.headers,
    )
    assert applied.status_code == 200, applied.text
    user_id = await create_user(client, tenant, "merchant")
    sandbox_secret = sandbox.new_key()
    created = await create_credential(
        client, tenant, user_id, "sandbox", {"access_token": sandbox_secret}
    )
    assert created.status_code == 201, created.text
    bigcommerce_secret = bigcommerce_token()
    bigcommerce = await create_credential(
        client,
        tenant,
        user_id,
        "bigcommerce",
        {"store_hash": "abc123xyz", "access_token": bigcommerce_secret},
    )
    assert bigcommerce.status_code == 201, bigcommerce.text
    listed = await client.get(f"{V}/integrations?userId={user_id}", headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    data = listed.json()["data"]
    return World(
        client=client,
        tenant=tenant,
        db=db,
        user_id=user_id,
        integrations={i["app"]: i["integrationId"] for i in data},
        workflows={w["name"]: w["workflowId"] for i in data for w in i["workflows"]}
        | _by_key(data),
        sandbox_credential=created.json()["credentialId"],
        sandbox_secret=sandbox_secret,
        bigcommerce_credential=bigcommerce.json()["credentialId"],
        bigcommerce_secret=bigcommerce_secret,
        sandbox=sandbox,
    )


def _by_key(data: list[dict[str, Any]]) -> dict[str, str]:
    """Workflow keys of the example files → ids, matched through the (unique) names."""
    names = {}
    for path in EXAMPLES.glob("*.yaml"):
        for workflow in yaml.safe_load(path.read_text()).get("workflows", []):
            names[workflow["name"]] = workflow["key"]
    return {names[w["name"]]: w["workflowId"] for i in data for w in i["workflows"]}


def assert_listing_shape(body: dict[str, Any]) -> None:
    assert set(body) == {"data"}
    for integration in body["data"]:
        assert set(integration) == INTEGRATION_KEYS, integration
        assert isinstance(integration["installed"], bool)
        assert isinstance(integration["categories"], list)
        for workflow in integration["workflows"]:
            assert set(workflow) == WORKFLOW_KEYS, workflow
            assert isinstance(workflow["version"], int)
            assert workflow["installedVersion"] is None or isinstance(
                workflow["installedVersion"], int
            )
            assert isinstance(workflow["active"], bool)
            for block in workflow["blocks"]:
                assert set(block) == BLOCK_KEYS, block
                assert all(isinstance(block[k], str) for k in BLOCK_KEYS)


# --- headless installation ------------------------------------------------------------------


async def test_headless_start_returns_the_fields_per_block(world: World) -> None:
    started = await world.start("sandbox")
    assert started.status_code == 200, started.text
    body = started.json()
    assert set(body) == {"installationId", "data"}
    new_orders = world.workflows["sandbox-new-orders"]
    status = world.workflows["sandbox-fulfillment-updated"]
    assert body["data"] == [
        {
            "workflowId": new_orders,
            "blockId": "stream_orders",
            "app": "sandbox",
            "fields": [
                {
                    "name": "url",
                    "displayName": "Where to send new orders",
                    "type": "url",
                    "required": True,
                    "default": DEFAULT_URL,
                    "options": [],
                    "optionsFrom": None,
                }
            ],
        },
        {
            "workflowId": status,
            "blockId": "update_order_status",
            "app": "sandbox",
            "fields": [
                {
                    "name": "status",
                    "displayName": "Sandbox status for fulfilled orders",
                    "type": "select",
                    "required": True,
                    "default": "shipped",
                    "options": [
                        {"displayName": "Shipped", "value": "shipped"},
                        {"displayName": "Delivered", "value": "delivered"},
                    ],
                    "optionsFrom": None,
                }
            ],
        },
    ]

    # Options loaded from the app are named by their source.
    bigcommerce = await world.start("bigcommerce")
    assert bigcommerce.status_code == 200, bigcommerce.text
    (group,) = bigcommerce.json()["data"]
    assert group["workflowId"] == world.workflows["bigcommerce-fulfillment-updated"]
    assert group["fields"][0]["optionsFrom"] == "order_statuses"

    # A subset of workflows may be chosen; one of another integration is not found.
    subset = await world.start("sandbox", workflowIds=[status])
    assert [g["workflowId"] for g in subset.json()["data"]] == [status]
    wrong = await world.start("sandbox", workflowIds=[world.workflows["bigcommerce-new-orders"]])
    assert wrong.status_code == 404, wrong.text


@pytest.mark.parametrize(
    ("case", "values", "named"),
    [
        ("missing required value", {"status": None}, "update_order_status.status"),
        ("empty required value", {"status": "  "}, "update_order_status.status"),
        ("bad select value", {"status": "teleported"}, "update_order_status.status"),
        ("unknown field", {"status": "shipped", "colour": "red"}, "update_order_status.colour"),
    ],
)
async def test_complete_refuses_bad_values_and_installs_nothing(
    world: World, case: str, values: dict[str, Any], named: str
) -> None:
    started = await world.start("sandbox")
    installation_id = started.json()["installationId"]
    status = world.workflows["sandbox-fulfillment-updated"]
    new_orders = world.workflows["sandbox-new-orders"]
    response = await world.complete(
        installation_id,
        {
            (new_orders, "stream_orders"): {"url": "https://orders.example.com/in"},
            (status, "update_order_status"): values,
        },
    )
    assert response.status_code == 422, f"{case}: {response.text}"
    body = response.json()
    assert body["code"] == "unprocessable"
    assert f"{status}/{named}" in body["message"], body
    assert f"{status}/{named}" in " ".join(body["fields"]), body
    assert await world.installations() == []
    listing = await world.listing()
    assert not any(i["installed"] for i in listing["data"])

    # The pending installation survives the refusal and completes with good values.
    fixed = await world.complete(
        installation_id, {(status, "update_order_status"): {"status": "delivered"}}
    )
    assert fixed.status_code == 200, fixed.text


async def test_complete_refuses_a_bad_url_and_a_foreign_workflow(world: World) -> None:
    started = await world.start("sandbox")
    installation_id = started.json()["installationId"]
    new_orders = world.workflows["sandbox-new-orders"]
    bad_url = await world.complete(
        installation_id, {(new_orders, "stream_orders"): {"url": "not a url"}}
    )
    assert bad_url.status_code == 422, bad_url.text
    assert f"{new_orders}/stream_orders.url" in bad_url.json()["message"]
    foreign = await world.complete(
        installation_id,
        {(world.workflows["bigcommerce-new-orders"], "stream_orders"): {"url": DEFAULT_URL}},
    )
    assert foreign.status_code == 422, foreign.text
    assert "data[0].workflowId" in foreign.json()["message"]
    assert await world.installations() == []


async def test_a_workflow_needing_a_credential_is_not_installed_without_one(world: World) -> None:
    started = await world.start("sandbox", credentialIds=[])
    assert started.status_code == 200, started.text
    refused = await world.complete(started.json()["installationId"], {})
    assert refused.status_code == 422, refused.text
    assert "credential" in refused.json()["message"]
    assert await world.installations() == []

    # Another user's credential is not this user's.
    other = await create_user(world.client, world.tenant, "someone-else")
    foreign = await world.start("sandbox", user=other)
    assert foreign.status_code == 404, foreign.text
    # A credential for another app does not count either.
    wrong_app = await world.start("sandbox", credentialIds=[world.bigcommerce_credential])
    refused = await world.complete(wrong_app.json()["installationId"], {})
    assert refused.status_code == 422, refused.text
    assert await world.installations() == []


async def test_complete_installs_every_workflow_with_its_values(world: World) -> None:
    started = await world.start("sandbox")
    installation_id = started.json()["installationId"]
    status = world.workflows["sandbox-fulfillment-updated"]
    new_orders = world.workflows["sandbox-new-orders"]
    done = await world.complete(
        installation_id, {(status, "update_order_status"): {"status": "delivered"}}
    )
    assert done.status_code == 200, done.text
    assert done.json()["userId"] == world.user_id
    assert sorted(done.json()["workflowIds"]) == sorted([new_orders, status])

    stored = {i.workflow_id: i for i in await world.installations()}
    assert set(stored) == {new_orders, status}
    assert stored[new_orders].values == {"stream_orders.url": DEFAULT_URL}
    assert stored[status].values == {"update_order_status.status": "delivered"}
    assert stored[status].credential_ids == {"sandbox": world.sandbox_credential}
    assert {i.version_number for i in stored.values()} == {1}

    again = await world.complete(installation_id, {})
    assert again.status_code == 404, "a completed installation cannot be replayed"

    # BigCommerce: a select whose options come from the app takes the value as given.
    bigcommerce = await world.start("bigcommerce")
    update = world.workflows["bigcommerce-fulfillment-updated"]
    done = await world.complete(
        bigcommerce.json()["installationId"], {(update, "update_order_status"): {"status_id": "10"}}
    )
    assert done.status_code == 200, done.text
    stored = {i.workflow_id: i for i in await world.installations()}
    assert len(stored) == 4
    assert stored[update].values == {"update_order_status.status_id": "10"}
    assert stored[update].credential_ids == {"bigcommerce": world.bigcommerce_credential}
    assert stored[world.workflows["bigcommerce-new-orders"]].values == {}
    assert all(i["installed"] for i in (await world.listing())["data"])


# --- listings ---------------------------------------------------------------------------------


async def test_integrations_listing_has_exactly_the_documented_shape(
    world: World, settings: Settings
) -> None:
    before = await world.listing()
    assert_listing_shape(before)
    assert [i["app"] for i in before["data"]] == ["bigcommerce", "sandbox"]
    for integration in before["data"]:
        assert integration["installed"] is False
        for workflow in integration["workflows"]:
            assert (workflow["installed"], workflow["version"]) == (False, 1)
            assert (workflow["installedVersion"], workflow["active"]) == (None, False)

    await world.install_sandbox()
    after = await world.listing()
    assert_listing_shape(after)
    bigcommerce, sandbox = after["data"]
    catalog = load_catalog()["sandbox"]
    assert sandbox["integrationId"] == world.integrations["sandbox"]
    assert sandbox["name"] == "Sandbox Commerce"
    assert sandbox["description"] == catalog.description
    assert sandbox["categories"] == list(catalog.categories)
    assert sandbox["icon"] == f"{settings.public_url}/apps/sandbox/icon.svg"
    assert sandbox["installed"] is True and bigcommerce["installed"] is False
    assert [w["name"] for w in sandbox["workflows"]] == [
        "Create an internal order for each new Sandbox order",
        "Update the Sandbox order status when a fulfillment is updated",
    ]
    for workflow in sandbox["workflows"]:
        assert workflow["installed"] is True
        assert (workflow["version"], workflow["installedVersion"]) == (1, 1)
        assert workflow["active"] is True
    new_orders, status = sandbox["workflows"]
    assert [(b["id"], b["name"], b["type"]) for b in new_orders["blocks"]] == [
        ("trigger", "Order created", "app_event"),
        ("stream_orders", "Send the order to Fulfillmently", "stream_data"),
    ]
    assert [(b["id"], b["name"], b["type"]) for b in status["blocks"]] == [
        ("trigger", "Fulfillment Updated", "custom_event"),
        ("update_order_status", "Update an existing order status", "app_action"),
    ]
    assert status["blocks"][1]["icon"] == sandbox["icon"]
    for workflow in bigcommerce["workflows"]:
        assert (workflow["installed"], workflow["installedVersion"]) == (False, None)

    # Every icon the listing names is served, as SVG.
    icons = {b["icon"] for i in after["data"] for w in i["workflows"] for b in w["blocks"]}
    for icon in icons | {i["icon"] for i in after["data"]}:
        answer = await world.client.get(icon)
        assert answer.status_code == 200, icon
        assert answer.headers["content-type"].startswith("image/svg+xml"), icon
        assert "<svg" in answer.text

    # One integration, by id, in the same shape.
    one = await world.client.get(
        f"{V}/integrations/{world.integrations['sandbox']}?userId={world.user_id}",
        headers=world.headers,
    )
    assert one.status_code == 200, one.text
    assert one.json() == {"data": [sandbox]}
    missing = await world.client.get(
        f"{V}/integrations/{'0' * 24}?userId={world.user_id}", headers=world.headers
    )
    assert missing.status_code == 404
    no_user = await world.client.get(f"{V}/integrations", headers=world.headers)
    assert no_user.status_code == 400 and "userId" in no_user.json()["message"]
    unknown_user = await world.client.get(f"{V}/integrations?userId=nobody", headers=world.headers)
    assert unknown_user.status_code == 404


async def test_workflow_routes_for_a_user(world: World) -> None:
    await world.install_sandbox()
    status = world.workflows["sandbox-fulfillment-updated"]
    listed = await world.client.get(f"{V}/workflows?userId=merchant", headers=world.headers)
    assert listed.status_code == 200, listed.text
    data = listed.json()["data"]
    assert {w["workflowId"] for w in data} == set(world.workflows.values())
    for workflow in data:
        assert set(workflow) == WORKFLOW_KEYS | {"integrationId", "app"}
    one = await world.client.get(f"{V}/workflows/{status}?userId=merchant", headers=world.headers)
    assert one.status_code == 200, one.text
    assert one.json() == next(w for w in data if w["workflowId"] == status)
    assert one.json()["integrationId"] == world.integrations["sandbox"]
    assert (one.json()["installed"], one.json()["installedVersion"]) == (True, 1)
    missing = await world.client.get(
        f"{V}/workflows/{'0' * 24}?userId=merchant", headers=world.headers
    )
    assert missing.status_code == 404


# --- the listing's encoded answer -----------------------------------------------------------


async def test_the_encoded_listing_is_the_views_encoded_and_never_stale(
    world: World, app: Any, settings: Settings
) -> None:
    """``GET /integrations`` splices JSON fragments cached per environment revision with the
    user's installations (``InstallationService.integrations_json``). Its bytes must be what
    encoding the views gives, for every user, and change after every install, deactivate,
    activate, release, upgrade and uninstall while the cache is warm."""
    status = world.workflows["sandbox-fulfillment-updated"]
    other = await create_user(world.client, world.tenant, "other-shop")
    scope = Scope(world.tenant.workspace_id, world.tenant.environment)

    async def expected(user_id: str, integration_id: str | None = None) -> bytes:
        async with world.db() as session:
            # No cache: views built from the database, encoded as Litestar encodes structs.
            service = InstallationService(session, scope, load_catalog(), settings.public_url)
            user = await session.get_one(User, user_id)
            views = await service.integrations_for(user, integration_id)
        return encode_json(IntegrationsListOut(views))

    async def served(user_id: str, integration_id: str | None = None) -> bytes:
        path = f"{V}/integrations/{integration_id}" if integration_id else f"{V}/integrations"
        response = await world.client.get(path, params={"userId": user_id}, headers=world.headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        return response.content

    async def check(step: str, previous: bytes | None) -> bytes:
        body = await served(world.user_id)
        assert body == await expected(world.user_id), step
        assert body != previous, f"{step}: the listing did not change"
        for integration_id in world.integrations.values():
            assert await served(world.user_id, integration_id) == await expected(
                world.user_id, integration_id
            ), step
        assert await served(other) == await expected(other), f"{step}: another user"
        cached = [entry.encoded for entry in app.state.released_cache._entries.values()]
        assert cached and all(e is not None for e in cached), "the listing used its cache"
        return body

    body = await check("nothing installed", None)
    await world.install_sandbox()
    body = await check("installed", body)
    toggle = {"userId": world.user_id, "workflowId": status}
    off = await world.client.put(f"{V}/workflows/deactivate", json=toggle, headers=world.headers)
    assert off.status_code == 200, off.text
    body = await check("deactivated", body)
    on = await world.client.put(f"{V}/workflows/activate", json=toggle, headers=world.headers)
    assert on.status_code == 200, on.text
    body = await check("activated", body)
    await world.apply(RENAME)
    body = await check("released", body)
    upgraded = await world.client.put(
        f"{V}/workflows/{status}/upgrade?userId={world.user_id}", headers=world.headers
    )
    assert upgraded.status_code == 200, upgraded.text
    body = await check("upgraded", body)
    everything = await world.client.put(
        f"{V}/users/{world.user_id}/deactivate-workflows", headers=world.headers
    )
    assert everything.status_code == 200, everything.text
    body = await check("deactivated all", body)
    gone = await world.client.delete(
        f"{V}/workflows/{status}?userId={world.user_id}", headers=world.headers
    )
    assert gone.status_code == 200, gone.text
    await check("uninstalled", body)


# --- versions and upgrade ---------------------------------------------------------------------


async def test_version_and_installed_version_through_release_and_upgrade(world: World) -> None:
    status = world.workflows["sandbox-fulfillment-updated"]
    new_orders = world.workflows["sandbox-new-orders"]
    await world.install_sandbox()
    assert _versions(await world.workflow(status)) == (True, 1, 1)

    # A release that keeps the configurable fields: a newer version, the install stays.
    await world.apply(RENAME)
    shown = await world.workflow(status)
    assert _versions(shown) == (True, 2, 1)
    assert shown["name"] == "Sandbox status updates"
    assert _versions(await world.workflow(new_orders)) == (True, 1, 1)

    upgraded = await world.client.put(
        f"{V}/workflows/{status}/upgrade?userId={world.user_id}", headers=world.headers
    )
    assert upgraded.status_code == 200, upgraded.text
    assert upgraded.json() == {
        "message": "Upgraded.",
        "workflowId": status,
        "previousVersion": 1,
        "installedVersion": 2,
    }
    assert _versions(await world.workflow(status)) == (True, 2, 2)
    again = await world.client.post(
        f"{V}/workflows/{status}/upgrade?userId=merchant", headers=world.headers
    )
    assert again.status_code == 200, again.text
    assert (again.json()["previousVersion"], again.json()["installedVersion"]) == (2, 2)
    values = {i.workflow_id: i.values for i in await world.installations()}
    assert values[status] == {"update_order_status.status": "delivered"}, "values are kept"

    # A release that changes a configurable field: upgrade is refused, naming it.
    await world.apply(RENAME, MORE_OPTIONS)
    assert _versions(await world.workflow(status)) == (True, 3, 2)
    for method in ("PUT", "POST"):
        refused = await world.client.request(
            method, f"{V}/workflows/{status}/upgrade?userId=merchant", headers=world.headers
        )
        assert refused.status_code == 409, refused.text
        body = refused.json()
        assert body["code"] == "conflict"
        assert "update_order_status.status" in body["message"]
        assert body["fields"] == ["update_order_status.status"]
    assert _versions(await world.workflow(status)) == (True, 3, 2)
    assert {i.version_number for i in await world.installations() if i.workflow_id == status} == {2}

    # Reinstalling is the way forward.
    await world.install_sandbox(status="cancelled")
    assert _versions(await world.workflow(status)) == (True, 3, 3)

    # Not installed: nothing to upgrade.
    not_installed = await world.client.put(
        f"{V}/workflows/{world.workflows['bigcommerce-new-orders']}/upgrade?userId=merchant",
        headers=world.headers,
    )
    assert not_installed.status_code == 404


def _versions(workflow: dict[str, Any]) -> tuple[bool, int, int | None]:
    return workflow["installed"], workflow["version"], workflow["installedVersion"]


@pytest.mark.parametrize("case", list(UPGRADE_CASES))
async def test_the_upgrade_rule(world: World, case: str) -> None:
    edit, differing = UPGRADE_CASES[case]
    status = world.workflows["sandbox-fulfillment-updated"]
    await world.install_sandbox()
    applied = await world.apply(edit)
    assert ("release", "workflow", "sandbox-fulfillment-updated") in {
        (c["action"], c["kind"], c["key"]) for c in applied["changes"]
    }
    assert _versions(await world.workflow(status)) == (True, 2, 1)
    response = await world.client.put(
        f"{V}/workflows/{status}/upgrade?userId=merchant", headers=world.headers
    )
    if differing:
        assert response.status_code == 409, response.text
        assert response.json()["fields"] == differing
        for name in differing:
            assert name in response.json()["message"]
        assert _versions(await world.workflow(status)) == (True, 2, 1)
    else:
        assert response.status_code == 200, response.text
        assert _versions(await world.workflow(status)) == (True, 2, 2)


# --- activation, uninstall, users of a workflow -------------------------------------------------


async def test_activate_and_deactivate_are_idempotent(world: World) -> None:
    await world.install_sandbox()
    status = world.workflows["sandbox-fulfillment-updated"]
    body = {"userId": world.user_id, "workflowId": status}
    for _ in range(2):
        off = await world.client.put(f"{V}/workflows/deactivate", json=body, headers=world.headers)
        assert off.status_code == 200, off.text
        assert off.json()["active"] is False
        shown = await world.workflow(status)
        assert (shown["installed"], shown["active"]) == (True, False)
    assert (await world.workflow(world.workflows["sandbox-new-orders"]))["active"] is True
    for _ in range(2):
        on = await world.client.put(f"{V}/workflows/activate", json=body, headers=world.headers)
        assert on.status_code == 200, on.text
        assert on.json()["active"] is True
        assert (await world.workflow(status))["active"] is True

    not_installed = {
        "userId": world.user_id,
        "workflowId": world.workflows["bigcommerce-new-orders"],
    }
    missing = await world.client.put(
        f"{V}/workflows/activate", json=not_installed, headers=world.headers
    )
    assert missing.status_code == 404


async def test_deactivate_all_of_a_users_workflows(world: World) -> None:
    await world.install_sandbox()
    other = await create_user(world.client, world.tenant, "neighbour")
    credential = await create_credential(
        world.client, world.tenant, other, "sandbox", {"access_token": world.sandbox.new_key()}
    )
    started = await world.start(
        "sandbox", user=other, credentialIds=[credential.json()["credentialId"]]
    )
    await world.complete(
        started.json()["installationId"],
        {
            (world.workflows["sandbox-fulfillment-updated"], "update_order_status"): {
                "status": "shipped"
            }
        },
    )

    response = await world.client.put(
        f"{V}/users/{world.user_id}/deactivate-workflows", headers=world.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 2
    sandbox = (await world.listing())["data"][1]
    assert [(w["installed"], w["active"]) for w in sandbox["workflows"]] == [(True, False)] * 2
    again = await world.client.put(
        f"{V}/users/merchant/deactivate-workflows", headers=world.headers
    )
    assert again.json()["count"] == 0
    # The neighbour's workflows were not touched.
    theirs = (await world.listing(other))["data"][1]
    assert [w["active"] for w in theirs["workflows"]] == [True, True]
    unknown = await world.client.put(
        f"{V}/users/nobody/deactivate-workflows", headers=world.headers
    )
    assert unknown.status_code == 404


async def test_uninstall_and_the_users_of_a_workflow(world: World) -> None:
    await world.install_sandbox()
    status = world.workflows["sandbox-fulfillment-updated"]
    new_orders = world.workflows["sandbox-new-orders"]
    other = await create_user(world.client, world.tenant, "second-shop")
    credential = await create_credential(
        world.client, world.tenant, other, "sandbox", {"access_token": world.sandbox.new_key()}
    )
    started = await world.start(
        "sandbox",
        user=other,
        credentialIds=[credential.json()["credentialId"]],
        workflowIds=[status],
    )
    done = await world.complete(
        started.json()["installationId"],
        {(status, "update_order_status"): {"status": "shipped"}},
    )
    assert done.status_code == 200, done.text

    users = await world.client.get(f"{V}/workflows/{status}/users", headers=world.headers)
    assert users.status_code == 200, users.text
    body = users.json()
    assert [u["userId"] for u in body["data"]] == [world.user_id, other]
    assert set(body["data"][0]) == {
        "userId",
        "username",
        "installedVersion",
        "active",
        "installedAt",
    }
    assert body["data"][1]["username"] == "second-shop"
    assert body["meta"] == {"page": 1, "limit": 100, "total": 2, "hasMore": False}
    paged = await world.client.get(
        f"{V}/workflows/{status}/users?page=1&limit=1", headers=world.headers
    )
    assert len(paged.json()["data"]) == 1 and paged.json()["meta"]["hasMore"] is True

    gone = await world.client.delete(
        f"{V}/workflows/{status}?userId={world.user_id}", headers=world.headers
    )
    assert gone.status_code == 200, gone.text
    shown = await world.workflow(status)
    assert (shown["installed"], shown["installedVersion"], shown["active"]) == (False, None, False)
    assert (await world.listing())["data"][1]["installed"] is True  # new orders still installed
    users = await world.client.get(f"{V}/workflows/{status}/users", headers=world.headers)
    assert [u["userId"] for u in users.json()["data"]] == [other]

    again = await world.client.delete(
        f"{V}/workflows/{status}?userId={world.user_id}", headers=world.headers
    )
    assert again.status_code == 404
    last = await world.client.delete(
        f"{V}/workflows/{new_orders}?userId=merchant", headers=world.headers
    )
    assert last.status_code == 200, last.text
    assert (await world.listing())["data"][1]["installed"] is False
    assert (await world.workflow(status, other))["installed"] is True


# --- user tokens ------------------------------------------------------------------------------


async def test_a_user_token_lists_its_own_integrations_only(world: World) -> None:
    await world.install_sandbox()
    other = await create_user(world.client, world.tenant, "other-merchant")
    token = await world.client.get(f"{V}/users/{world.user_id}/token", headers=world.headers)
    as_user = {"x-alloy-user-token": token.json()["token"]}

    mine = await world.client.get(f"{V}/integrations", headers=as_user)
    assert mine.status_code == 200, mine.text
    assert mine.json() == await world.listing()
    bearer = {"Authorization": f"Bearer {token.json()['token']}"}
    assert (await world.client.get(f"{V}/integrations", headers=bearer)).json() == mine.json()
    named = await world.client.get(f"{V}/integrations?userId=merchant", headers=as_user)
    assert named.json() == mine.json()
    for reference in (other, "other-merchant"):
        foreign = await world.client.get(f"{V}/integrations?userId={reference}", headers=as_user)
        assert foreign.status_code == 404, foreign.text
        foreign = await world.client.get(f"{V}/workflows?userId={reference}", headers=as_user)
        assert foreign.status_code == 404, foreign.text
    one = await world.client.get(
        f"{V}/integrations/{world.integrations['sandbox']}", headers=as_user
    )
    assert one.status_code == 200 and one.json()["data"][0]["installed"] is True
    workflows = await world.client.get(f"{V}/workflows", headers=as_user)
    assert workflows.status_code == 200, workflows.text

    status = world.workflows["sandbox-fulfillment-updated"]
    off = await world.client.put(
        f"{V}/workflows/deactivate", json={"workflowId": status}, headers=as_user
    )
    assert off.status_code == 200, off.text
    assert (await world.workflow(status))["active"] is False

    # The ISV's routes do not take a user token.
    for path in (f"{V}/workflows/{status}/users", f"{V}/users/{world.user_id}/credentials"):
        assert (await world.client.get(path, headers=as_user)).status_code == 401


# --- catalog and events -------------------------------------------------------------------------


async def test_apps_lists_the_catalog_with_working_icons(world: World) -> None:
    response = await world.client.get(f"{V}/apps", headers=world.headers)
    assert response.status_code == 200, response.text
    apps = {a["app"]: a for a in response.json()["data"]}
    assert len(apps) >= 3
    assert {"bigcommerce", "shopify", "sandbox"} <= set(apps)
    for app in apps.values():
        assert {"app", "name", "icon", "authTypes"} <= set(app)
        assert app["name"] and app["authTypes"]
    assert apps["sandbox"]["authTypes"] == ["oauth2", "api_key"]
    for key in ("bigcommerce", "shopify", "sandbox"):
        icon = await world.client.get(apps[key]["icon"])
        assert icon.status_code == 200
        assert icon.headers["content-type"].startswith("image/svg+xml")
        assert "<svg" in icon.text
    missing = await world.client.get("/apps/no-such-app/icon.svg")
    assert missing.status_code == 404
    assert (await world.client.get(f"{V}/apps")).status_code == 401


async def test_events_lists_the_declared_events_with_their_schema(world: World) -> None:
    response = await world.client.get(f"{V}/events", headers=world.headers)
    assert response.status_code == 200, response.text
    declared = yaml.safe_load((EXAMPLES / "events.yaml").read_text())["events"]
    assert response.json() == {"data": declared}
    assert response.json()["data"][0]["name"] == "Fulfillment Updated"
    for_user = await world.client.get(f"{V}/events?userId=merchant", headers=world.headers)
    assert for_user.json() == response.json()
    unknown = await world.client.get(f"{V}/events?userId=nobody", headers=world.headers)
    assert unknown.status_code == 404


# --- credentials --------------------------------------------------------------------------------


async def test_credentials_never_show_a_secret(world: World) -> None:
    path = f"{V}/users/{world.user_id}/credentials"
    listed = await world.client.get(path, headers=world.headers)
    assert listed.status_code == 200, listed.text
    assert world.sandbox_secret not in listed.text
    assert world.bigcommerce_secret not in listed.text
    by_app = {c["app"]: c for c in listed.json()["data"]}
    assert set(by_app) == {"sandbox", "bigcommerce"}
    for credential in by_app.values():
        assert set(credential) == {
            "credentialId",
            "app",
            "type",
            "name",
            "status",
            "details",
            "createdAt",
        }
        assert credential["type"] == "api_key" and credential["status"] == "active"
    assert by_app["sandbox"]["details"] == {}
    assert by_app["bigcommerce"]["details"] == {"store_hash": "abc123xyz"}

    secret = world.sandbox.new_key()
    created = await create_credential(
        world.client, world.tenant, world.user_id, "sandbox", {"access_token": secret}
    )
    assert created.status_code == 201, created.text
    assert secret not in created.text
    credential_id = created.json()["credentialId"]
    assert secret not in (await world.client.get(path, headers=world.headers)).text

    deleted = await world.client.delete(f"{path}/{credential_id}", headers=world.headers)
    assert deleted.status_code == 200, deleted.text
    assert secret not in deleted.text
    ids = [
        c["credentialId"]
        for c in (await world.client.get(path, headers=world.headers)).json()["data"]
    ]
    assert credential_id not in ids and len(ids) == 2
    again = await world.client.delete(f"{path}/{credential_id}", headers=world.headers)
    assert again.status_code == 404


@pytest.mark.parametrize(
    ("app_key", "data", "field"),
    [
        ("sandbox", {"access_token": "sbx_tooShort"}, "access_token"),
        ("sandbox", {"access_token": "live_" + "a" * 20}, "access_token"),
        ("bigcommerce", {"store_hash": "NOT A HASH", "access_token": "a" * 32}, "store_hash"),
        (
            "bigcommerce",
            {"store_hash": "abc123xyz", "access_token": "Secret-" + "Z" * 24},
            "access_token",
        ),
        ("bigcommerce", {"store_hash": "abc123xyz"}, "access_token"),
        ("sandbox", {"access_token": "sbx_" + "a" * 20, "password": "hunter2hunter2"}, "password"),
    ],
)
async def test_a_bad_credential_value_is_400_naming_the_field_not_the_value(
    world: World, app_key: str, data: dict[str, str], field: str
) -> None:
    response = await create_credential(world.client, world.tenant, world.user_id, app_key, data)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_request"
    assert field in body["message"]
    for value in data.values():
        assert value not in response.text
    listed = await world.client.get(f"{V}/users/{world.user_id}/credentials", headers=world.headers)
    assert len(listed.json()["data"]) == 2


async def test_credential_type_and_app_are_checked(world: World) -> None:
    for body, needle in [
        ({"app": "sandbox", "type": "oauth2", "data": {}}, "type"),
        ({"app": "sandbox", "type": "basic", "data": {}}, "type"),
        ({"app": "no-such-app", "type": "api_key", "data": {}}, "app"),
    ]:
        response = await world.client.post(
            f"{V}/users/{world.user_id}/credentials", json=body, headers=world.headers
        )
        assert response.status_code == 400, response.text
        assert needle in response.json()["message"]
    unknown_user = await create_credential(
        world.client, world.tenant, "nobody", "sandbox", {"access_token": world.sandbox.new_key()}
    )
    assert unknown_user.status_code == 404


async def test_credentials_are_sealed_to_their_row(world: World, settings: Settings) -> None:
    vault = Vault(settings.vault_keys)
    async with world.db() as session:
        rows = {c.app: c for c in await session.scalars(select(Credential))}
        sandbox, bigcommerce = rows["sandbox"], rows["bigcommerce"]
        for row, secret in (
            (sandbox, world.sandbox_secret),
            (bigcommerce, world.bigcommerce_secret),
        ):
            assert secret.encode() not in row.ciphertext
            assert secret not in json.dumps(row.details)
        aad = credential_aad(sandbox.workspace_id, sandbox.environment, sandbox.id)
        assert vault.open(sandbox.key_id, sandbox.ciphertext, aad) == {
            "access_token": world.sandbox_secret
        }
        bc_aad = credential_aad(bigcommerce.workspace_id, bigcommerce.environment, bigcommerce.id)
        assert vault.open(bigcommerce.key_id, bigcommerce.ciphertext, bc_aad) == {
            "store_hash": "abc123xyz",
            "access_token": world.bigcommerce_secret,
        }
        # The sandbox row's sealed bytes, copied into the BigCommerce row, do not open there.
        bigcommerce.key_id, bigcommerce.ciphertext = sandbox.key_id, sandbox.ciphertext
        await session.commit()
    async with world.db() as session:
        copied = await session.get_one(Credential, bigcommerce.id)
        with pytest.raises(VaultError):
            vault.open(copied.key_id, copied.ciphertext, bc_aad)
        tampered = bytearray(sandbox.ciphertext)
        tampered[-1] ^= 1
        with pytest.raises(VaultError):
            vault.open(sandbox.key_id, bytes(tampered), aad)


def _b64(secret: bytes) -> str:
    return base64.urlsafe_b64encode(secret).rstrip(b"=").decode()


def _sandbox_delivery(sandbox: SandboxProcess, order_id: str) -> dict[str, Any]:
    """The sandbox's signed ``order.created`` delivery for that order (its own attempt went
    to the unreachable public URL; the test carries it to the service)."""
    deadline = time.monotonic() + 10
    while True:
        listed = httpx.get(
            f"{sandbox.url}/_sandbox/deliveries",
            params={"event": "order.created"},
            headers=sandbox.admin,
            timeout=10,
        ).json()["data"]
        for delivery in listed:
            if f'"id":"{order_id}"' in delivery["body"]:
                found: dict[str, Any] = delivery
                return found
        assert time.monotonic() < deadline, "the sandbox never recorded the delivery"
        time.sleep(0.05)


async def test_vault_rotate_reseals_every_sealed_column_under_the_new_first_key(
    world: World, settings: Settings, tmp_path: Path
) -> None:
    """One row of each sealed kind, made through the API under the development key; `vault
    rotate` with a new key first; then a service holding the new key alone opens every one of
    them through its own routes and services."""
    # Sealed under the development key: two credentials (the world's), an installation's
    # webhook secret, an OAuth client and an OAuth flow, a Stream Data endpoint, a destination.
    await world.install_sandbox()
    (hooked,) = [row for row in await world.installations() if row.webhook_ciphertext]
    token = await world.client.get(f"{V}/users/{world.user_id}/token", headers=world.headers)
    oauth = OAuthDriver(
        client=world.client,
        sandbox=world.sandbox,
        api_headers=world.headers,
        user_id=world.user_id,
        user_headers={"x-alloy-user-token": token.json()["token"]},
        responses=[],
    )
    assert (await oauth.configure_client()).status_code == 200
    flow = await oauth.new_flow()
    endpoint = await world.client.post(
        f"{V}/stream-endpoints", json={"url": "https://hooks.example.com/in"}, headers=world.headers
    )
    assert endpoint.status_code == 200, endpoint.text
    warehouse = f"postgresql://loader:{secrets.token_hex(8)}@93.184.216.34:5432/warehouse"
    saved = await world.client.put(
        f"{V}/destinations/warehouse", json={"url": warehouse}, headers=world.headers
    )
    assert saved.status_code == 200, saved.text

    dev = Settings.from_env({}).vault_keys[0]
    new_secret = os.urandom(32)
    keys = f"new:{_b64(new_secret)},{dev.kid}:{_b64(dev.secret)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_UI_")}
    env.update(
        EMBEDDED_UI_DATABASE_URL=settings.database_url,
        EMBEDDED_UI_VAULT_KEYS=keys,
        EMBEDDED_UI_LOG_LEVEL="WARNING",
    )

    def rotate() -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "embedded_ui", "vault", "rotate", "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    every = {
        "credential": 2,
        "oauth_client": 1,
        "oauth_flow": 1,
        "installation_webhook": 1,
        "stream_endpoint": 1,
        "destination": 1,
    }
    assert rotate() == {"rotated": 7, "keyId": "new", "tables": every}
    assert rotate() == {"rotated": 0, "keyId": "new", "tables": dict.fromkeys(every, 0)}

    # At rest: every sealed value is under the new key, opens with it alone (with its owner's
    # associated data) and no longer with the old one.
    new_key = VaultKey("new", new_secret)
    only_new = Vault((new_key,))
    only_old = Vault(Settings.from_env({}).vault_keys)
    async with world.db() as session:
        for sealed in SEALED:
            rows = (
                await session.execute(
                    select(
                        sealed.model.id,
                        sealed.model.workspace_id,
                        sealed.model.environment,
                        sealed.key_id,
                        sealed.ciphertext,
                    ).where(sealed.key_id.is_not(None))
                )
            ).all()
            assert len(rows) == every[sealed.name], sealed.name
            for row_id, workspace_id, environment, key_id, blob in rows:
                aad = sealed.aad(workspace_id, environment, row_id)
                assert key_id == "new", sealed.name
                only_new.open(key_id, blob, aad)
                with pytest.raises(VaultError):
                    only_old.open(key_id, blob, aad)

    # A service configured with the new key alone (the old one removed from its settings).
    app = create_app(replace(settings, vault_keys=(new_key,)))
    async with AsyncTestClient(app, base_url=PUBLIC_URL) as client:
        # Credentials: the service opens each to the secret that was saved.
        async with world.db() as session:
            service = CredentialService(
                session, Scope(world.tenant.workspace_id, world.tenant.environment), only_new, {}
            )
            opened = {
                row.app: service.secret(row) for row in await session.scalars(select(Credential))
            }
        assert opened == {
            "sandbox": {"access_token": world.sandbox_secret},
            "bigcommerce": {"store_hash": "abc123xyz", "access_token": world.bigcommerce_secret},
        }
        # Stream Data endpoint: listed with the same signing secret.
        listed = await client.get(f"{V}/stream-endpoints", headers=world.headers)
        assert listed.status_code == 200, listed.text
        assert [e["secret"] for e in listed.json()["data"]] == [endpoint.json()["secret"]]
        # Destination: listed (masked), and its full URL opens for the runner.
        shown = await client.get(f"{V}/destinations", headers=world.headers)
        assert shown.status_code == 200, shown.text
        assert [d["url"] for d in shown.json()["data"]] == [saved.json()["url"]]
        async with world.db() as session:
            destinations = DestinationService(
                session, Scope(world.tenant.workspace_id, world.tenant.environment), only_new
            )
            full = await destinations.url("warehouse")
        assert full == warehouse.replace("postgresql://", "postgresql+asyncpg://")
        # OAuth flow and client: the flow made before the rotation completes (its connection
        # values and the client secret for the token request are opened).
        oauth.client = client
        start = await oauth.open_popup(flow["startUrl"])
        assert start.status_code == 302, start.text
        consent = await oauth.consent(start.headers["location"])
        assert consent.status_code == 302, consent.text
        back = await oauth.come_back(consent.headers["location"])
        assert back.status_code == 200, back.text
        assert (await oauth.flow(flow["flowId"]))["status"] == "succeeded"
        # Installation webhook secret: the sandbox's signed delivery is accepted.
        async with httpx.AsyncClient(timeout=10) as shop:
            created = await shop.post(
                f"{world.sandbox.url}/api/orders",
                json={"total": "12.50"},
                headers={"Authorization": f"Bearer {world.sandbox_secret}"},
            )
        assert created.status_code == 201, created.text
        delivery = _sandbox_delivery(world.sandbox, created.json()["id"])
        assert delivery["url"] == (f"{PUBLIC_URL}/webhooks/{hooked.workflow_id}/{world.user_id}")
        accepted = await client.post(
            delivery["url"].removeprefix(PUBLIC_URL),
            content=delivery["body"].encode(),
            headers=delivery["headers"],
        )
        assert accepted.status_code == 202, accepted.text


@pytest.mark.parametrize(
    ("app_key", "data", "reason"),
    [
        ("sandbox", {"access_token": unknown_sandbox_token()}, "Invalid API key."),
        (
            "bigcommerce",
            {"store_hash": "abc123xyz", "access_token": BIGCOMMERCE_REJECTED + "0" * 24},
            "Invalid X-Auth-Token",
        ),
    ],
)
async def test_a_credential_the_app_refuses_is_422_with_the_apps_reason_and_saves_nothing(
    world: World, app_key: str, data: dict[str, str], reason: str
) -> None:
    response = await create_credential(world.client, world.tenant, world.user_id, app_key, data)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "credential_rejected"
    assert reason in body["message"] and body["appStatus"] == 401
    assert data["access_token"] not in response.text
    listed = await world.client.get(f"{V}/users/{world.user_id}/credentials", headers=world.headers)
    assert len(listed.json()["data"]) == 2


async def test_a_sandbox_key_is_verified_against_the_running_sandbox(world: World) -> None:
    before = world.sandbox.stats()["api_calls"]
    created = await create_credential(
        world.client,
        world.tenant,
        world.user_id,
        "sandbox",
        {"access_token": world.sandbox.new_key()},
    )
    assert created.status_code == 201, created.text
    assert world.sandbox.stats()["api_calls"] == before + 1
