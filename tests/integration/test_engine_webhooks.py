"""App webhooks in, against the real sandbox app: installing a workflow with an app-event
trigger subscribes to the sandbox's webhooks; the sandbox's own signed delivery (read back from
its admin API, byte for byte) is accepted, queued and streamed on; duplicates, forgeries,
strangers and oversized bodies are refused; uninstalling unsubscribes. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import PUBLIC_URL, SandboxProcess
from embedded_ui.settings import Settings
from receiver import Receiver

V = "/2024-03"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "fulfillmently"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with loopback receivers allowed (the outbound guard refuses them
    otherwise) and the engine's limits this module exercises."""
    return replace(settings, outbound_allow=("127.0.0.0/8",), max_request_bytes=65_536)


@dataclass
class Store:
    client: Any
    tenant: Any
    sandbox: SandboxProcess
    receiver: Receiver
    user_id: str
    key: str
    workflow_id: str
    integration_id: str
    credential_id: str

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.tenant.headers)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.sandbox.url}/api{path}",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=10,
            **kwargs,
        )

    def subscriptions(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.api("GET", "/webhooks").json()["data"]
        return listed

    def new_order(self) -> str:
        created = self.api("POST", "/orders", json={"total": "12.50"})
        assert created.status_code == 201, created.text
        order_id: str = created.json()["id"]
        return order_id

    def delivery_of(self, order_id: str) -> dict[str, Any]:
        """The sandbox's signed delivery of ``order.created`` for that order (its own
        attempt went to the unreachable public URL; the test carries it to the app)."""
        deadline = time.monotonic() + 10
        while True:
            listed = httpx.get(
                f"{self.sandbox.url}/_sandbox/deliveries",
                params={"event": "order.created"},
                headers=self.sandbox.admin,
                timeout=10,
            ).json()["data"]
            for delivery in listed:
                if f'"id":"{order_id}"' in delivery["body"]:
                    found: dict[str, Any] = delivery
                    return found
            assert time.monotonic() < deadline, "the sandbox never recorded the delivery"
            time.sleep(0.05)

    async def deliver(
        self, delivery: dict[str, Any], *, body: str | None = None, path: str | None = None
    ) -> httpx.Response:
        response: httpx.Response = await self.client.post(
            path or delivery["url"].removeprefix(PUBLIC_URL),
            content=(body if body is not None else delivery["body"]).encode(),
            headers=delivery["headers"],
        )
        return response

    async def runs(self) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"{V}/workflows/{self.workflow_id}/logs", headers=self.headers
        )
        assert response.status_code == 200, response.text
        runs: list[dict[str, Any]] = response.json()["data"]
        return runs


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


@pytest.fixture
async def store(client: Any, tenant: Any, sandbox: SandboxProcess, receiver: Receiver) -> Store:
    headers = tenant.headers
    files = [
        {"name": p.name, "content": p.read_text()}
        for p in sorted(EXAMPLES.glob("*.yaml"))
        if p.name in ("sandbox.yaml", "events.yaml")
    ]
    applied = await client.post(
        f"{V}/manage/apply", json={"files": files, "release": True}, headers=headers
    )
    assert applied.status_code == 200, applied.text
    user_id = (await client.post(f"{V}/users", json={"username": "shop"}, headers=headers)).json()[
        "userId"
    ]
    key = sandbox.new_key()
    credential = await client.post(
        f"{V}/users/{user_id}/credentials",
        json={"app": "sandbox", "type": "api_key", "data": {"access_token": key}},
        headers=headers,
    )
    assert credential.status_code in (200, 201), credential.text
    listing = await client.get(f"{V}/integrations", params={"userId": user_id}, headers=headers)
    (integration,) = [i for i in listing.json()["data"] if i["app"] == "sandbox"]
    (workflow_id,) = [
        w["workflowId"] for w in integration["workflows"] if "new Sandbox order" in w["name"]
    ]
    found = Store(
        client,
        tenant,
        sandbox,
        receiver,
        user_id,
        key,
        workflow_id,
        integration["integrationId"],
        credential.json()["credentialId"],
    )
    await install(found)
    return found


async def install(store: Store) -> httpx.Response:
    started = await store.client.post(
        f"{V}/headless/startInstallation",
        json={
            "userId": store.user_id,
            "integrationId": store.integration_id,
            "workflowIds": [store.workflow_id],
            "credentialIds": [store.credential_id],
        },
        headers=store.headers,
    )
    assert started.status_code == 200, started.text
    done: httpx.Response = await store.client.post(
        f"{V}/headless/completeInstallation",
        json={
            "installationId": started.json()["installationId"],
            "data": [
                {
                    "workflowId": store.workflow_id,
                    "blockId": "stream_orders",
                    "fields": [{"name": "url", "value": store.receiver.url()}],
                }
            ],
        },
        headers=store.headers,
    )
    return done


async def settled(store: Store, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        runs = await store.runs()
        if len([r for r in runs if r["status"] in ("succeeded", "failed")]) >= count:
            return runs
        assert time.monotonic() < deadline, runs
        await asyncio.sleep(0.05)


async def test_installing_subscribes_and_a_sandbox_delivery_streams_on(store: Store) -> None:
    (subscription,) = store.subscriptions()
    assert subscription["event"] == "order.created"
    assert subscription["url"] == f"{PUBLIC_URL}/webhooks/{store.workflow_id}/{store.user_id}"

    order_id = store.new_order()
    delivery = store.delivery_of(order_id)
    accepted = await store.deliver(delivery)
    assert accepted.status_code == 202, accepted.text
    assert len(accepted.json()["executionIds"]) == 1

    (streamed,) = await store.receiver.wait_for(1)
    assert streamed.json()["data"]["id"] == order_id
    (run,) = await settled(store, 1)
    assert run["status"] == "succeeded" and run["triggerType"] == "app_event"


async def test_a_redelivery_is_accepted_once(store: Store) -> None:
    delivery = store.delivery_of(store.new_order())
    first = await store.deliver(delivery)
    again = await store.deliver(delivery)
    assert first.status_code == again.status_code == 202
    assert again.json()["duplicate"] is True and again.json()["executionIds"] == []
    await settled(store, 1)
    await asyncio.sleep(0.2)
    assert len(store.receiver.requests) == 1


async def test_forged_unsigned_and_misdirected_deliveries_are_refused(store: Store) -> None:
    delivery = store.delivery_of(store.new_order())
    tampered = delivery["body"].replace('"12.50"', '"0.01"')
    assert tampered != delivery["body"]
    assert (await store.deliver(delivery, body=tampered)).status_code == 401
    unsigned = {**delivery, "headers": {"Content-Type": "application/json"}}
    assert (await store.deliver(unsigned)).status_code == 401
    elsewhere = f"/webhooks/{store.workflow_id}/someone-else"
    assert (await store.deliver(delivery, path=elsewhere)).status_code == 404
    not_ours = f"/webhooks/{'0' * 24}/{store.user_id}"
    assert (await store.deliver(delivery, path=not_ours)).status_code == 404
    # The sandbox's trigger takes a per-workflow URL, not the user-wide one.
    assert (await store.deliver(delivery, path=f"/webhooks/{store.user_id}")).status_code == 404
    assert await store.runs() == []


async def test_an_oversized_delivery_is_refused(store: Store) -> None:
    delivery = store.delivery_of(store.new_order())
    huge = delivery["body"][:-1] + ',"pad":"' + "x" * 70_000 + '"}'
    response = await store.deliver(delivery, body=huge)
    assert response.status_code == 413
    assert await store.runs() == []


async def test_a_deactivated_installation_takes_no_webhooks(store: Store) -> None:
    delivery = store.delivery_of(store.new_order())
    off = await store.client.put(
        f"{V}/workflows/deactivate",
        json={"workflowId": store.workflow_id, "userId": store.user_id},
        headers=store.headers,
    )
    assert off.status_code == 200, off.text
    assert (await store.deliver(delivery)).status_code == 404


async def test_uninstalling_unsubscribes_and_reinstalling_subscribes_once(store: Store) -> None:
    again = await install(store)
    assert again.status_code == 200, again.text
    assert len(store.subscriptions()) == 1  # the reinstall replaced the old subscription
    removed = await store.client.delete(
        f"{V}/workflows/{store.workflow_id}",
        params={"userId": store.user_id},
        headers=store.headers,
    )
    assert removed.status_code in (200, 204), removed.text
    assert store.subscriptions() == []


async def test_deleting_the_user_unsubscribes_its_webhooks_first(store: Store) -> None:
    # After the delete the credential the app needs for it is gone with the user: a
    # subscription left behind would keep the app posting deliveries we can only refuse.
    assert len(store.subscriptions()) == 1
    deleted = await store.client.delete(f"{V}/users/{store.user_id}", headers=store.headers)
    assert deleted.status_code == 200, deleted.text
    assert store.subscriptions() == []
    gone = await store.client.get(f"{V}/users/{store.user_id}", headers=store.headers)
    assert gone.status_code == 404


async def test_an_installation_the_app_refuses_to_subscribe_is_not_installed(
    store: Store, client: Any
) -> None:
    """The app fails the subscription: nothing is installed, and the answer says why."""
    removed = await client.delete(
        f"{V}/workflows/{store.workflow_id}",
        params={"userId": store.user_id},
        headers=store.headers,
    )
    assert removed.status_code in (200, 204)
    # The sandbox's API is down for this one call: a stand-in transport answers 503.
    registrar = client.app.state.runtime.webhooks
    real_http = registrar._http
    registrar._http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(503, json={"message": "down"}))
    )
    try:
        refused = await install(store)
    finally:
        await registrar._http.aclose()
        registrar._http = real_http
    assert refused.status_code == 422, refused.text
    assert "subscribe" in refused.json()["message"]
    listing = await client.get(
        f"{V}/integrations", params={"userId": store.user_id}, headers=store.headers
    )
    workflows = {w["workflowId"]: w for i in listing.json()["data"] for w in i["workflows"]}
    assert workflows[store.workflow_id]["installed"] is False
