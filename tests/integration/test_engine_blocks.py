"""Blocks inside real executions: an app action whose OAuth access token the provider has
revoked early is refreshed once and retried; transform → filter → database moves rows into a
destination database and a filter that says no stops the run. SQLite and PostgreSQL (the
service's database); the destination is a SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Sandbox
from embedded_ui.catalog import load_catalog
from embedded_ui.credentials import Vault
from embedded_ui.oauth import fresh_secret
from embedded_ui.settings import Settings
from embedded_ui.store import Scope, create_engine
from oauth_driver import make_driver

V = "/2024-03"
DEFINITION = """
integration: {key: blocks-test, app: sandbox, name: Blocks test}
events:
  - name: Order Paid
    schema:
      type: object
      required: [orderId, amount]
      properties:
        orderId: {type: string}
        amount: {type: number}
        items: {type: array}
workflows:
  - key: mark-paid
    name: Mark the order delivered
    trigger: {type: custom_event, event: Order Paid}
    blocks:
      - id: update
        type: app_action
        action: update_order_status
        inputs: {order_id: "{{ trigger.orderId }}", status: delivered}
  - key: big-orders
    name: Keep big orders in the warehouse
    trigger: {type: custom_event, event: Order Paid}
    blocks:
      - id: shape
        type: transform
        output:
          order: "{{ trigger.orderId }}"
          cents: "{{ trigger.amount }}"
          lines: "{{ length(trigger.items || `[]`) }}"
      - id: only_big
        type: filter
        condition: "blocks.shape.cents >= `100`"
      - id: store
        type: database
        destination: warehouse
        table: paid_orders
        row: {order_id: "{{ blocks.shape.order }}", cents: "{{ blocks.shape.cents }}",
              lines: "{{ blocks.shape.lines }}", buyer: "{{ user.username }}"}
"""


@pytest.fixture
def settings(settings: Settings, sandbox: Sandbox) -> Settings:
    return replace(settings, sandbox_url=sandbox.url)


async def logs(client: Any, headers: dict[str, str], workflow_id: str, count: int) -> list[Any]:
    deadline = time.monotonic() + 15
    while True:
        response = await client.get(f"{V}/workflows/{workflow_id}/logs", headers=headers)
        runs: list[Any] = response.json()["data"]
        if len([r for r in runs if r["status"] in ("succeeded", "failed")]) >= count:
            return runs
        assert time.monotonic() < deadline, runs
        await asyncio.sleep(0.05)


@pytest.fixture
async def installed(
    client: Any, sandbox: Sandbox, tenant: Any, tmp_path: Path, settings: Settings
) -> dict[str, Any]:
    """A merchant connected over OAuth, both workflows installed, a warehouse destination."""
    applied = await client.post(
        f"{V}/manage/apply",
        json={"files": [{"name": "blocks.yaml", "content": DEFINITION}], "release": True},
        headers=tenant.headers,
    )
    assert applied.status_code == 200, applied.text
    driver = await make_driver(client, sandbox, tenant)
    assert (await driver.configure_client()).status_code == 200
    popup = await driver.run()
    assert popup.callback is not None and popup.callback.status_code == 200
    credential_id = (await driver.flow(popup.flow_id))["credentialId"]

    warehouse = tmp_path / "warehouse.sqlite3"
    with sqlite3.connect(warehouse) as db:
        db.execute(
            "CREATE TABLE paid_orders (order_id TEXT, cents INTEGER, lines INTEGER, buyer TEXT)"
        )
    destination = await client.put(
        f"{V}/destinations/warehouse",
        json={"url": f"sqlite+aiosqlite:///{warehouse}"},
        headers=tenant.headers,
    )
    assert destination.status_code == 200, destination.text

    listing = await client.get(
        f"{V}/integrations", params={"userId": driver.user_id}, headers=tenant.headers
    )
    (integration,) = [i for i in listing.json()["data"] if i["name"] == "Blocks test"]
    workflows = {w["name"]: w["workflowId"] for w in integration["workflows"]}
    started = await client.post(
        f"{V}/headless/startInstallation",
        json={
            "userId": driver.user_id,
            "integrationId": integration["integrationId"],
            "credentialIds": [credential_id],
        },
        headers=tenant.headers,
    )
    assert started.status_code == 200, started.text
    done = await client.post(
        f"{V}/headless/completeInstallation",
        json={"installationId": started.json()["installationId"], "data": []},
        headers=tenant.headers,
    )
    assert done.status_code == 200, done.text

    engine = create_engine(settings)
    try:
        secret = await fresh_secret(
            engine,
            Scope(tenant.workspace_id, tenant.environment),
            credential_id,
            vault=Vault(settings.vault_keys),
            apps=load_catalog(),
            settings=settings,
        )
    finally:
        await engine.dispose()
    return {
        "user_id": driver.user_id,
        "mark": workflows["Mark the order delivered"],
        "big": workflows["Keep big orders in the warehouse"],
        "token": secret["access_token"],
        "warehouse": warehouse,
    }


def sandbox_order(sandbox: Sandbox, token: str) -> str:
    created = httpx.post(
        f"{sandbox.url}/api/orders",
        json={"total": "5.00"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    order_id: str = created.json()["id"]
    return order_id


def order_status(sandbox: Sandbox, order_id: str) -> str:
    listed = httpx.get(f"{sandbox.url}/_sandbox/accounts", headers=sandbox.admin, timeout=10)
    key = next(a["api_key"] for a in listed.json()["data"] if a["id"] == "acct_demo")
    order = httpx.get(
        f"{sandbox.url}/api/orders/{order_id}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    status: str = order.json()["status"]
    return status


def expire_access_tokens(sandbox: Sandbox) -> int:
    expired = httpx.post(
        f"{sandbox.url}/_sandbox/tokens/expire", json={}, headers=sandbox.admin, timeout=10
    )
    assert expired.status_code == 200, expired.text
    count: int = expired.json()["expired"]
    return count


async def run(client: Any, tenant: Any, user_id: str, data: dict[str, Any]) -> None:
    response = await client.post(
        f"{V}/run/event",
        json={"event": "Order Paid", "userId": user_id, "data": data},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text


async def test_a_revoked_access_token_is_refreshed_once_and_the_action_retried(
    client: Any, sandbox: Sandbox, tenant: Any, installed: dict[str, Any]
) -> None:
    order_id = sandbox_order(sandbox, installed["token"])
    # The provider ends the access token early; by our clock it is still valid.
    assert expire_access_tokens(sandbox) >= 1
    refreshes_before = sandbox.stats()["refresh_requests"]

    await run(client, tenant, installed["user_id"], {"orderId": order_id, "amount": 5})
    (mark,) = await logs(client, tenant.headers, installed["mark"], 1)
    assert mark["status"] == "succeeded", mark
    assert mark["attempt"] == 1  # refreshed and retried inside the same attempt
    assert sandbox.stats()["refresh_requests"] == refreshes_before + 1
    assert order_status(sandbox, order_id) == "delivered"


async def test_transform_filter_and_database_blocks_move_rows(
    client: Any, tenant: Any, installed: dict[str, Any]
) -> None:
    user_id = installed["user_id"]
    await run(client, tenant, user_id, {"orderId": "o-1", "amount": 250, "items": [1, 2]})
    await run(client, tenant, user_id, {"orderId": "o-2", "amount": 40})
    runs = await logs(client, tenant.headers, installed["big"], 2)
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    small = next(r for r in runs if r["results"][0]["data"]["order"] == "o-2")
    assert [b["status"] for b in small["results"]] == ["succeeded", "succeeded", "skipped"]
    big = next(r for r in runs if r["results"][0]["data"]["order"] == "o-1")
    assert big["results"][2]["data"] == {"inserted": 1, "table": "paid_orders"}

    with sqlite3.connect(installed["warehouse"]) as db:
        rows = db.execute("SELECT order_id, cents, lines, buyer FROM paid_orders").fetchall()
    assert rows == [("o-1", 250, 2, "merchant")]


async def test_a_missing_destination_fails_the_run_with_a_clear_error(
    client: Any, tenant: Any, installed: dict[str, Any]
) -> None:
    removed = await client.delete(f"{V}/destinations/warehouse", headers=tenant.headers)
    assert removed.status_code in (200, 204), removed.text
    await run(client, tenant, installed["user_id"], {"orderId": "o-3", "amount": 500})
    (failed,) = await logs(client, tenant.headers, installed["big"], 1)
    assert failed["status"] == "failed"
    assert "warehouse" in failed["error"]
