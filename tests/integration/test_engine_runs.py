"""The engine end to end through HTTP: `POST /run/event` and `/run/workflow` queue executions
that the in-process worker runs against a real loopback receiver (Stream Data) and the real
sandbox app (app actions); logs, errors, reruns, analytics, the error URL, idempotency,
retries and 410, GDPR erasure, and tenant isolation. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import create_async_engine
from standardwebhooks.webhooks import Webhook

from conftest import SandboxProcess
from embedded_ui.engine.retention import purge
from embedded_ui.settings import Settings
from embedded_ui.store import AuditEntry, CustomEvent, Execution, WorkflowError, utcnow
from receiver import Answer, Received, Receiver

V = "/2024-03"
EVENT = "Order Shipped"
DEFINITION = """
integration: {key: engine-test, app: sandbox, name: Engine test}
events:
  - name: Order Shipped
    schema:
      type: object
      required: [orderId]
      properties:
        orderId: {type: string}
        note: {type: string}
workflows:
  - key: ship-stream
    name: Stream shipped orders
    trigger: {type: custom_event, event: Order Shipped}
    blocks:
      - id: send
        type: stream_data
        name: Send to the ISV
        url:
          configurable: {label: Receiver, type: url, default: "http://127.0.0.1:9/unused"}
        data: {order: "{{ trigger.orderId }}", who: "{{ user.username }}"}
  - key: ship-update
    name: Mark the order shipped
    trigger: {type: custom_event, event: Order Shipped}
    blocks:
      - id: update
        type: app_action
        action: update_order_status
        inputs: {order_id: "{{ trigger.orderId }}", status: shipped}
"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with loopback receivers allowed (the outbound guard refuses them
    otherwise) and the engine's limits this module exercises."""
    return replace(settings, outbound_allow=("127.0.0.0/8",), retry_schedule=(0.2, 0.2, 0.2))


@dataclass
class Shop:
    client: Any
    tenant: Any
    sandbox: SandboxProcess
    receiver: Receiver
    user_id: str
    sandbox_key: str
    workflows: dict[str, str]

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.tenant.headers)

    async def run_event(self, data: dict[str, Any], **headers: str) -> httpx.Response:
        response: httpx.Response = await self.client.post(
            f"{V}/run/event",
            json={"event": EVENT, "userId": self.user_id, "data": data},
            headers={**self.headers, **headers},
        )
        return response

    async def logs(self, workflow: str, **params: Any) -> dict[str, Any]:
        response = await self.client.get(
            f"{V}/workflows/{self.workflows[workflow]}/logs", params=params, headers=self.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def settled(self, workflow: str, count: int, within: float = 15) -> list[dict[str, Any]]:
        """The workflow's executions once ``count`` of them have finished (bounded wait)."""
        deadline = time.monotonic() + within
        while True:
            runs = (await self.logs(workflow, limit=100))["data"]
            done = [r for r in runs if r["status"] in ("succeeded", "failed")]
            if len(done) >= count:
                return runs
            assert time.monotonic() < deadline, f"only {len(done)} of {count} finished: {runs}"
            await asyncio.sleep(0.05)

    def order(self, order_id: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.sandbox.url}/api/orders/{order_id}",
            headers={"Authorization": f"Bearer {self.sandbox_key}"},
            timeout=10,
        )
        response.raise_for_status()
        order: dict[str, Any] = response.json()
        return order

    def new_order(self) -> str:
        response = httpx.post(
            f"{self.sandbox.url}/api/orders",
            json={"total": "10.00"},
            headers={"Authorization": f"Bearer {self.sandbox_key}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        order_id: str = response.json()["id"]
        return order_id

    async def secret_for(self, url: str) -> str:
        response = await self.client.get(f"{V}/stream-endpoints", headers=self.headers)
        assert response.status_code == 200, response.text
        (endpoint,) = [e for e in response.json()["data"] if e["url"] == url]
        secret: str = endpoint["secret"]
        return secret


async def install(client: Any, tenant: Any, sandbox: SandboxProcess, receiver: Receiver) -> Shop:
    headers = tenant.headers
    applied = await client.post(
        f"{V}/manage/apply",
        json={"files": [{"name": "engine.yaml", "content": DEFINITION}], "release": True},
        headers=headers,
    )
    assert applied.status_code == 200, applied.text
    created = await client.post(f"{V}/users", json={"username": "merchant"}, headers=headers)
    user_id = created.json()["userId"]
    key = sandbox.new_key()
    credential = await client.post(
        f"{V}/users/{user_id}/credentials",
        json={"app": "sandbox", "type": "api_key", "data": {"access_token": key}},
        headers=headers,
    )
    assert credential.status_code in (200, 201), credential.text
    listing = await client.get(f"{V}/integrations", params={"userId": user_id}, headers=headers)
    (integration,) = [i for i in listing.json()["data"] if i["app"] == "sandbox"]
    workflows = {w["name"]: w["workflowId"] for w in integration["workflows"]}
    names = {"Stream shipped orders": "stream", "Mark the order shipped": "update"}
    workflows = {names[n]: wid for n, wid in workflows.items()}
    started = await client.post(
        f"{V}/headless/startInstallation",
        json={
            "userId": user_id,
            "integrationId": integration["integrationId"],
            "credentialIds": [credential.json()["credentialId"]],
        },
        headers=headers,
    )
    assert started.status_code == 200, started.text
    done = await client.post(
        f"{V}/headless/completeInstallation",
        json={
            "installationId": started.json()["installationId"],
            "data": [
                {
                    "workflowId": workflows["stream"],
                    "blockId": "send",
                    "fields": [{"name": "url", "value": receiver.url()}],
                }
            ],
        },
        headers=headers,
    )
    assert done.status_code == 200, done.text
    return Shop(client, tenant, sandbox, receiver, user_id, key, workflows)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


@pytest.fixture
async def shop(client: Any, tenant: Any, sandbox: SandboxProcess, receiver: Receiver) -> Shop:
    return await install(client, tenant, sandbox, receiver)


def verify(secret: str, request: Received) -> Any:
    """The Standard Webhooks reference verifier's verdict on what we sent."""
    headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
    return Webhook(secret).verify(request.body, headers)


# --- the happy path ---------------------------------------------------------------------


async def test_an_event_streams_data_and_runs_the_app_action(shop: Shop) -> None:
    order_id = shop.new_order()
    response = await shop.run_event({"orderId": order_id, "note": "first"})
    assert response.status_code == 202, response.text
    execution_ids = response.json()["executionIds"]
    assert len(execution_ids) == 2

    (delivered,) = await shop.receiver.wait_for(1)
    assert delivered.json() == {"order": order_id, "who": "merchant"}
    assert verify(await shop.secret_for(shop.receiver.url()), delivered) == delivered.json()
    assert delivered.headers["webhook-id"].startswith("msg_")
    assert delivered.headers["x-alloy-signature"]
    assert delivered.headers["x-alloy-userid"] == shop.user_id

    (stream_run,) = await shop.settled("stream", 1)
    (update_run,) = await shop.settled("update", 1)
    assert {stream_run["executionId"], update_run["executionId"]} == set(execution_ids)
    assert stream_run["status"] == update_run["status"] == "succeeded"
    (block,) = update_run["results"]
    assert block["blockId"] == "update" and block["status"] == "succeeded"
    assert block["input"]["inputs"] == {"order_id": order_id, "status": "shipped"}
    (sent,) = stream_run["results"]
    assert sent["input"]["data"] == {"order": order_id, "who": "merchant"}
    assert sent["data"]["status"] == 200
    assert shop.order(order_id)["status"] == "shipped"


async def test_an_idle_worker_sleeps_until_there_is_an_outcome_to_record(shop: Shop) -> None:
    """The worker's flush loop waits for an outcome instead of waking on a timer: an idle
    service used to record nothing 200 times a second per process."""
    worker = shop.client.app.state.runtime.worker
    flush = worker._flush
    flushes = 0

    async def counted() -> None:
        nonlocal flushes
        flushes += 1
        await flush()

    worker._flush = counted
    await asyncio.sleep(0.3)
    assert flushes == 0

    response = await shop.run_event({"orderId": shop.new_order(), "note": "wake"})
    assert response.status_code == 202, response.text
    await shop.settled("stream", 1)
    await shop.settled("update", 1)
    assert 1 <= flushes <= 4  # the outcomes are recorded in a batch or two, then it sleeps
    recorded = flushes
    await asyncio.sleep(0.3)
    assert flushes == recorded


async def test_event_data_is_checked_against_the_schema_and_nothing_is_queued(
    shop: Shop,
) -> None:
    missing = await shop.run_event({"note": "no order"})
    assert missing.status_code == 422, missing.text
    assert "orderId" in missing.json()["message"]
    wrong_type = await shop.run_event({"orderId": 42})
    assert wrong_type.status_code == 422
    assert "data.orderId" in wrong_type.json()["message"]
    assert (await shop.logs("stream"))["data"] == []

    unknown = await shop.client.post(
        f"{V}/run/event",
        json={"event": "Nope", "userId": shop.user_id, "data": {}},
        headers=shop.headers,
    )
    assert unknown.status_code == 404 and "Nope" in unknown.json()["message"]
    nobody = await shop.client.post(
        f"{V}/run/event",
        json={"event": EVENT, "userId": "nobody", "data": {"orderId": "1"}},
        headers=shop.headers,
    )
    assert nobody.status_code == 404
    malformed = await shop.client.post(
        f"{V}/run/event", json={"event": EVENT}, headers=shop.headers
    )
    assert malformed.status_code == 400 and "userId" in malformed.json()["message"]


async def test_a_schema_pointing_outside_itself_is_refused_without_a_connection(
    shop: Shop, database_url: str
) -> None:
    """An event schema stored before apply refused remote references (definitions.py): the
    check resolves nothing outside the schema, so ``POST /run/event`` answers 422 naming the
    reference, queues nothing, and nothing connects to where it points."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/schema.json"
    connections: list[str] = []
    stop = threading.Event()

    def accept() -> None:  # closes at once: a fetching validator fails fast, never hangs
        while not stop.is_set():
            with suppress(TimeoutError):
                connection, peer = listener.accept()
                connections.append(f"{peer}")
                connection.close()

    watcher = threading.Thread(target=accept, daemon=True)
    watcher.start()
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(CustomEvent).where(CustomEvent.name == EVENT).values(schema={"$ref": url})
            )
    finally:
        await engine.dispose()
    try:
        refused = await shop.run_event({"orderId": "o-1"})
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        watcher.join(timeout=5)
        listener.close()
    assert connections == []
    assert refused.status_code == 422, refused.text
    assert url in refused.json()["message"], refused.text
    assert (await shop.logs("stream"))["data"] == []


async def test_an_idempotency_key_answers_twice_and_runs_once(shop: Shop) -> None:
    order_id = shop.new_order()
    first = await shop.run_event({"orderId": order_id}, **{"Idempotency-Key": "k-1"})
    again = await shop.run_event({"orderId": order_id}, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    await shop.settled("stream", 1)
    await asyncio.sleep(0.3)
    assert len(shop.receiver.requests) == 1
    other = await shop.run_event({"orderId": "different"}, **{"Idempotency-Key": "k-1"})
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["message"]


async def test_run_workflow_by_id_or_name(shop: Shop) -> None:
    by_name = await shop.client.post(
        f"{V}/run/workflow",
        json={"workflowName": "ship-stream", "userId": shop.user_id, "data": {"orderId": "7"}},
        headers=shop.headers,
    )
    assert by_name.status_code == 202, by_name.text
    by_id = await shop.client.post(
        f"{V}/run/workflow",
        json={"workflowId": shop.workflows["stream"], "userId": "merchant", "data": {}},
        headers=shop.headers,
    )
    assert by_id.status_code == 202, by_id.text
    bodies = [r.json() for r in await shop.receiver.wait_for(2)]
    assert {"order": "7", "who": "merchant"} in bodies
    both = await shop.client.post(
        f"{V}/run/workflow",
        json={"workflowId": "a", "workflowName": "b", "userId": shop.user_id},
        headers=shop.headers,
    )
    assert both.status_code == 400


# --- failures, retries, the error URL -----------------------------------------------------


async def test_a_failing_receiver_is_retried_with_the_same_delivery_id(shop: Shop) -> None:
    answers = iter([Answer(500), Answer(429, {"Retry-After": "1"}), Answer(200)])
    shop.receiver.answer = lambda _: next(answers)
    await shop.run_event({"orderId": "r1"})
    attempts = await shop.receiver.wait_for(3, within=20)
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    (run,) = await shop.settled("stream", 1)
    assert run["status"] == "succeeded" and run["attempt"] == 3
    errors = await shop.client.get(
        f"{V}/workflows/{shop.workflows['stream']}/errors", headers=shop.headers
    )
    assert len(errors.json()["data"]) == 2
    assert {e["block"] for e in errors.json()["data"]} == {"Send to the ISV"}


async def test_a_gone_endpoint_is_disabled_until_enabled(shop: Shop) -> None:
    shop.receiver.answer = lambda _: Answer(410)
    await shop.run_event({"orderId": "g1"})
    (run,) = await shop.settled("stream", 1)
    assert run["status"] == "failed" and "410" in run["error"]
    await shop.run_event({"orderId": "g2"})
    await shop.settled("stream", 2)
    assert len(shop.receiver.requests) == 1  # the second run sent nothing
    listed = (await shop.client.get(f"{V}/stream-endpoints", headers=shop.headers)).json()
    (endpoint,) = [e for e in listed["data"] if e["url"] == shop.receiver.url()]
    assert endpoint["disabled"] is True
    enabled = await shop.client.post(
        f"{V}/stream-endpoints/{endpoint['id']}/enable", headers=shop.headers
    )
    assert enabled.status_code == 200
    shop.receiver.answer = lambda _: Answer(200)
    # Workers cache an endpoint's state for a few seconds.
    await asyncio.sleep(5.2)
    await shop.run_event({"orderId": "g3"})
    await shop.receiver.wait_for(2)


async def test_errors_reach_the_error_url_signed_with_alloy_headers(
    shop: Shop,
) -> None:
    async with Receiver() as alarms:
        updated = await shop.client.put(
            f"{V}/environment", json={"errorUrl": alarms.url("/errors")}, headers=shop.headers
        )
        assert updated.status_code == 200 and updated.json()["errorUrl"] == alarms.url("/errors")
        shop.receiver.answer = lambda _: Answer(400)
        await shop.run_event({"orderId": "e1"})
        # Both workflows fail: the stream's receiver says 400, the sandbox has no order e1.
        alarms_seen = await alarms.wait_for(2)
        (alarm,) = [
            a for a in alarms_seen if a.headers["x-alloy-workflowid"] == shop.workflows["stream"]
        ]
        assert alarm.headers["x-alloy-workflowid"] == shop.workflows["stream"]
        assert alarm.headers["x-alloy-userid"] == shop.user_id
        assert alarm.headers["x-alloy-blockname"] == "Send to the ISV"
        assert alarm.headers["x-alloy-blocktype"] == "stream_data"
        (run,) = await shop.settled("stream", 1)
        assert alarm.headers["x-alloy-executionuuid"] == run["executionId"]
        secret = await shop.secret_for(alarms.url("/errors"))
        assert verify(secret, alarm)["message"].startswith("Delivery to")


async def test_an_unreachable_private_address_is_refused_without_a_connection(
    shop: Shop, client: Any, with_settings: Any
) -> None:
    """The allow-list is what lets the tests reach loopback: without it, blocked."""
    from embedded_ui.engine.ssrf import OutboundPolicy

    runtime = client.app.state.runtime
    runtime.deliverer._policy = OutboundPolicy.from_settings(with_settings(outbound_allow=()))
    await shop.run_event({"orderId": "s1"})
    (run,) = await shop.settled("stream", 1)
    assert run["status"] == "failed"
    assert shop.receiver.connections == 0


# --- logs, reruns, analytics, erasure, isolation ----------------------------------------


async def test_logs_page_order_and_filter(shop: Shop) -> None:
    shop.receiver.answer = lambda r: Answer(400 if r.json()["order"] == "bad" else 200)
    for order in ("a", "bad", "c"):
        await shop.run_event({"orderId": order})
    runs = await shop.settled("stream", 3)
    assert [r["status"] for r in runs].count("failed") == 1
    newest = await shop.logs("stream", limit=2, order="desc")
    oldest = await shop.logs("stream", limit=2, order="asc")
    assert newest["meta"]["total"] == 3 and newest["meta"]["hasMore"] is True
    assert newest["data"][0]["createdAt"] >= newest["data"][1]["createdAt"]
    assert oldest["data"][0]["createdAt"] <= oldest["data"][1]["createdAt"]
    failed = await shop.logs("stream", error="true")
    assert [r["status"] for r in failed["data"]] == ["failed"]
    mine = await shop.logs("stream", userId="merchant")
    assert mine["meta"]["total"] == 3


async def test_rerun_runs_the_same_trigger_again(shop: Shop) -> None:
    await shop.run_event({"orderId": "again"})
    (first,) = await shop.settled("stream", 1)
    rerun = await shop.client.post(
        f"{V}/workflows/{shop.workflows['stream']}/rerun/{first['executionId']}",
        headers=shop.headers,
    )
    assert rerun.status_code == 202, rerun.text
    await shop.settled("stream", 2)
    assert [r.json()["order"] for r in await shop.receiver.wait_for(2)] == ["again", "again"]
    missing = await shop.client.post(
        f"{V}/workflows/{shop.workflows['stream']}/rerun/nope", headers=shop.headers
    )
    assert missing.status_code == 404


async def test_analytics_counts_runs_per_status_per_day(shop: Shop) -> None:
    shop.receiver.answer = lambda r: Answer(400 if r.json()["order"] == "bad" else 200)
    for order in ("a", "bad"):
        await shop.run_event({"orderId": order})
    await shop.settled("stream", 2)
    response = await shop.client.get(
        f"{V}/workflows/{shop.workflows['stream']}/analytics",
        params={"days": 3},
        headers=shop.headers,
    )
    days = response.json()["data"]
    assert len(days) == 3 and days[-1]["date"] == utcnow().date().isoformat()
    assert (days[-1]["succeeded"], days[-1]["failed"]) == (1, 1)
    assert days[0]["succeeded"] == 0


async def test_erasing_a_users_logs_removes_them_and_audits_without_payload(
    shop: Shop, database_url: str
) -> None:
    shop.receiver.answer = lambda _: Answer(400)
    await shop.run_event({"orderId": "secret-order-123"})
    await shop.settled("stream", 1)
    erased = await shop.client.delete(f"{V}/users/{shop.user_id}/logs", headers=shop.headers)
    assert erased.status_code == 200, erased.text
    assert erased.json()["executionsDeleted"] == 2
    again = await shop.client.delete(f"{V}/users/{shop.user_id}/logs", headers=shop.headers)
    assert again.status_code == 200 and again.json()["executionsDeleted"] == 0
    assert (await shop.logs("stream"))["data"] == []
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            errors = await connection.scalar(select(func.count()).select_from(WorkflowError))
            audits = (
                await connection.execute(
                    select(AuditEntry.details).where(AuditEntry.action == "logs.erase")
                )
            ).all()
    finally:
        await engine.dispose()
    assert errors == 0
    assert len(audits) == 2
    assert "secret-order-123" not in json.dumps([a[0] for a in audits])


async def test_another_tenant_sees_none_of_it(shop: Shop, make_tenant: Any) -> None:
    await shop.run_event({"orderId": "mine"})
    (run,) = await shop.settled("stream", 1)
    other = await make_tenant("rival")
    workflow = shop.workflows["stream"]
    for method, path in (
        ("GET", f"{V}/workflows/{workflow}/logs"),
        ("GET", f"{V}/workflows/{workflow}/errors"),
        ("GET", f"{V}/workflows/{workflow}/analytics"),
        ("POST", f"{V}/workflows/{workflow}/rerun/{run['executionId']}"),
        ("DELETE", f"{V}/users/{shop.user_id}/logs"),
    ):
        response = await shop.client.request(method, path, headers=other.headers)
        assert response.status_code == 404, (path, response.text)
    event = await shop.client.post(
        f"{V}/run/event",
        json={"event": EVENT, "userId": shop.user_id, "data": {"orderId": "x"}},
        headers=other.headers,
    )
    assert event.status_code == 404
    production = await make_tenant("acme", "production")
    listed = await shop.client.get(f"{V}/stream-endpoints", headers=production.headers)
    assert listed.json()["data"] == []
    assert (await shop.logs("stream"))["meta"]["total"] == 1


async def test_old_logs_are_purged_and_recent_ones_kept(
    shop: Shop, settings: Settings, database_url: str
) -> None:
    await shop.run_event({"orderId": "old"})
    await shop.run_event({"orderId": "new"})
    runs = await shop.settled("stream", 2)
    old_id = next(
        r["executionId"] for r in runs if r["createdAt"] == min(x["createdAt"] for x in runs)
    )
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(Execution)
                .where(Execution.id == old_id)
                .values(created_at=utcnow() - timedelta(days=61))
            )
        counts = await purge(engine, settings)
    finally:
        await engine.dispose()
    assert counts["executions"] == 1
    remaining = [r["executionId"] for r in (await shop.logs("stream"))["data"]]
    assert old_id not in remaining and len(remaining) == 1


async def test_deleting_a_user_deletes_their_executions_and_errors(
    shop: Shop, database_url: str
) -> None:
    shop.receiver.answer = lambda _: Answer(400)
    await shop.run_event({"orderId": "bye"})
    await shop.settled("stream", 1)
    deleted = await shop.client.delete(f"{V}/users/{shop.user_id}", headers=shop.headers)
    assert deleted.status_code in (200, 204), deleted.text
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            executions = await connection.scalar(select(func.count()).select_from(Execution))
            errors = await connection.scalar(select(func.count()).select_from(WorkflowError))
    finally:
        await engine.dispose()
    assert (executions, errors) == (0, 0)
