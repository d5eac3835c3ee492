"""Webhooks the merchant registers by hand (the app's trigger says ``registration: manual``):
the modal's done step and the integrations page show our URL — and the installation's secret
when there is one — with copy buttons and instructions naming the app; nothing is shown for
apps we subscribe to ourselves (the sandbox). The secret shown is the one that verifies.

The manual-trigger apps are real catalog apps (Yotpo Loyalty: one URL per account, signed with
a secret we make; AfterShip: one URL per workflow, signed by AfterShip with the secret the
merchant entered). Their APIs are not reachable from tests, so a double answers the credential
check only, as ``conftest.bigcommerce_double`` does for BigCommerce; everything else is real.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from conftest import PUBLIC_URL, SandboxProcess, bigcommerce_double
from embedded_ui.app import create_app
from embedded_ui.engine.signing import headers as standard_webhook_headers
from embedded_ui.paths import EXAMPLES_DIR
from embedded_ui.settings import Settings

V = "/2024-03"
YOTPO_GUID = "Ab3dEf6hIj9lMn2pQr5tUv"
YOTPO_KEY = "yotpo_test_key_0123456789"
AFTERSHIP_KEY = "asat_" + "0123456789abcdef" * 2
AFTERSHIP_SECRET = "AfterShipWebhookSecret01"

MANUAL_APPS = """
integration: {key: loyalty, app: yotpo_loyalty, name: Yotpo Loyalty}
workflows:
  - key: loyalty-points
    name: Send points earned to Fulfillmently
    trigger: {type: app_event, event: points_earned}
    blocks:
      # A loopback URL the outbound guard refuses: the run fails at once, so it settles.
      - {id: stream_points, type: stream_data, url: "http://127.0.0.1:9/points"}
"""
AFTERSHIP = """
integration: {key: tracking, app: aftership, name: AfterShip}
workflows:
  - key: tracking-updates
    name: Send tracking updates to Fulfillmently
    trigger: {type: app_event, event: tracking_updated}
    blocks:
      - {id: stream_tracking, type: stream_data, url: "https://fulfillmently.example/tracking"}
"""


def app_doubles(request: httpx.Request) -> httpx.Response:
    """The credential checks of Yotpo Loyalty and AfterShip, answered as they would for a
    valid key (and BigCommerce's, as in conftest)."""
    if request.url.host == "loyalty.yotpo.com" and request.url.path == "/api/v2/campaigns":
        ok = request.headers.get("x-api-key") == YOTPO_KEY
        return httpx.Response(200 if ok else 401, json=[] if ok else {"error": "Unauthorized"})
    if request.url.host == "api.aftership.com" and request.url.path.endswith("/couriers"):
        ok = request.headers.get("as-api-key") == AFTERSHIP_KEY
        return httpx.Response(
            200 if ok else 401,
            json={"data": {"couriers": []}} if ok else {"meta": {"message": "Invalid API key"}},
        )
    return bigcommerce_double(request)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    created = create_app(settings)
    doubles = httpx.MockTransport(app_doubles)
    created.state.http = httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        mounts={
            "https://api.bigcommerce.com": doubles,
            "https://loyalty.yotpo.com": doubles,
            "https://api.aftership.com": doubles,
        },
    )
    return created


@dataclass
class Merchant:
    client: AsyncTestClient[Litestar]
    tenant: Any
    user_id: str
    token: str
    integrations: dict[str, dict[str, Any]]  # app key → integration

    async def step(self, app: str, action: str = "start", **body: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/modal/api/step",
            json={
                "operation": "install",
                "params": {"integrationId": self.integrations[app]["integrationId"]},
                "action": action,
                **body,
            },
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def install(self, app: str, auth_type: str, fields: dict[str, str]) -> dict[str, Any]:
        """Through the modal: start → auth → (configure) → review → install → done."""
        step = await self.step(app)
        if step["step"] == "workflows":
            every = [w["workflowId"] for w in self.integrations[app]["workflows"]]
            step = await self.step(app, "choose", state=step["state"], input={"workflowIds": every})
        assert step["step"] == "auth", step["html"]
        step = await self.step(
            app, "credential", state=step["state"], input={"type": auth_type, "fields": fields}
        )
        if step["step"] == "configure":
            step = await self.step(app, "configure", state=step["state"], input={"values": {}})
        assert step["step"] == "review", step["html"]
        done = await self.step(app, "install", state=step["state"])
        assert done["done"] and done["step"] == "done", done
        return done

    async def page(self) -> str:
        response = await self.client.post(
            "/modal/api/page", json={}, headers={"Authorization": f"Bearer {self.token}"}
        )
        assert response.status_code == 200, response.text
        content: str = response.json()["html"]
        return content

    def workflow_id(self, app: str) -> str:
        (workflow,) = self.integrations[app]["workflows"][:1]
        workflow_id: str = workflow["workflowId"]
        return workflow_id


@pytest.fixture
async def merchant(
    client: AsyncTestClient[Litestar], tenant: Any, sandbox: SandboxProcess
) -> AsyncIterator[Merchant]:
    files = [
        {
            "name": "events.yaml",
            "content": (EXAMPLES_DIR / "fulfillmently" / "events.yaml").read_text(),
        },
        {
            "name": "sandbox.yaml",
            "content": (EXAMPLES_DIR / "fulfillmently" / "sandbox.yaml").read_text(),
        },
        {"name": "loyalty.yaml", "content": MANUAL_APPS},
        {"name": "tracking.yaml", "content": AFTERSHIP},
    ]
    applied = await client.post(
        f"{V}/manage/apply", json={"files": files, "release": True}, headers=tenant.headers
    )
    assert applied.status_code == 200, applied.text
    created = await client.post(f"{V}/users", json={"username": "hooked"}, headers=tenant.headers)
    user_id = created.json()["userId"]
    token = (await client.get(f"{V}/users/{user_id}/token", headers=tenant.headers)).json()
    listed = await client.get(
        f"{V}/integrations", params={"userId": user_id}, headers=tenant.headers
    )
    integrations = {i["app"]: i for i in listed.json()["data"]}
    yield Merchant(client, tenant, user_id, token["token"], integrations)


async def settled_runs(merchant: Merchant, workflow_id: str) -> list[dict[str, Any]]:
    """The workflow's runs once none is queued or running (bounded)."""
    deadline = time.monotonic() + 15
    while True:
        response = await merchant.client.get(
            f"{V}/workflows/{workflow_id}/logs",
            params={"userId": merchant.user_id},
            headers=merchant.tenant.headers,
        )
        runs: list[dict[str, Any]] = response.json()["data"]
        if runs and all(r["status"] in ("succeeded", "failed") for r in runs):
            return runs
        assert time.monotonic() < deadline, runs
        await asyncio.sleep(0.05)


def field_value(page: str, label: str, within: str) -> str:
    """The value of the read-only field labelled ``label`` inside the hook box ``within``."""
    box = re.search(
        rf'<div class="eui-hook"[^>]*aria-labelledby="{within}-h".*?data-copied>', page, re.S
    )
    assert box, f"no hook box {within}"
    ids = re.findall(rf'<label class="eui-hook-label" for="([^"]+)">{label}</label>', box.group(0))
    assert len(ids) == 1, f"{label} in {within}: {ids}"
    value = re.search(rf'id="{ids[0]}"[^>]*value="([^"]*)"', box.group(0))
    assert value, ids[0]
    return html.unescape(value.group(1))


async def test_the_done_step_shows_the_url_and_secret_to_paste_and_they_work(
    merchant: Merchant,
) -> None:
    done = await merchant.install(
        "yotpo_loyalty", "api_key", {"guid": YOTPO_GUID, "api_key": YOTPO_KEY}
    )
    page = done["html"]
    # The modal stays open for it (it reports the success when closed).
    assert done["keepOpen"] is True and done["result"]["success"] is True
    assert "Add this webhook in Yotpo Loyalty &amp; Referrals" in page
    assert "Send points earned to Fulfillmently" in page
    assert "One step is left" in page
    url = field_value(page, "Webhook URL", "eui-hook-1")
    secret = field_value(page, "Signing secret", "eui-hook-1")
    # Yotpo Loyalty takes one URL per account.
    assert url == f"{PUBLIC_URL}/webhooks/{merchant.user_id}"
    assert secret.startswith("whsec_")
    assert page.count("data-copy=") == 2 and 'Copy<span class="eui-sr"> webhook URL' in page
    assert "readonly" in page and "data-close>Done</button>" in page

    # What the merchant pastes into Yotpo is what we verify with: a delivery signed with that
    # secret is queued, one signed with another is refused.
    body = json.dumps({"topic": "swell/points/earned", "customer": {"email": "a@b.example"}})
    signed = standard_webhook_headers(secret, "msg_manual_1", body.encode(), time.time())
    path = url.removeprefix(PUBLIC_URL)
    accepted = await merchant.client.post(path, content=body, headers=signed)
    assert accepted.status_code == 202, accepted.text
    forged = standard_webhook_headers(
        "whsec_" + "QUJD" * 11, "msg_manual_2", body.encode(), time.time()
    )
    refused = await merchant.client.post(path, content=body, headers=forged)
    assert refused.status_code == 401
    (run,) = await settled_runs(merchant, merchant.workflow_id("yotpo_loyalty"))
    assert run["triggerType"] == "app_event", run

    # The integrations page shows the same, under the installed workflow.
    content = await merchant.page()
    box = f"eup-hook-{merchant.workflow_id('yotpo_loyalty')}"
    assert field_value(content, "Webhook URL", box) == url
    assert field_value(content, "Signing secret", box) == secret
    assert f'<h4 id="{box}-h" class="eui-hook-title">Add this webhook in Yotpo' in content


async def test_an_app_that_signs_with_the_merchants_secret_gets_the_url_only(
    merchant: Merchant,
) -> None:
    done = await merchant.install(
        "aftership", "api_key", {"api_key": AFTERSHIP_KEY, "webhook_secret": AFTERSHIP_SECRET}
    )
    workflow_id = merchant.workflow_id("aftership")
    url = field_value(done["html"], "Webhook URL", "eui-hook-1")
    assert url == f"{PUBLIC_URL}/webhooks/{workflow_id}/{merchant.user_id}"
    assert "Signing secret" not in done["html"] and AFTERSHIP_SECRET not in done["html"]
    assert "AfterShip signs each delivery with the webhook secret you entered" in done["html"]
    content = await merchant.page()
    assert field_value(content, "Webhook URL", f"eup-hook-{workflow_id}") == url
    assert AFTERSHIP_SECRET not in content


async def test_nothing_is_shown_for_apps_we_subscribe_to_ourselves(
    merchant: Merchant, sandbox: SandboxProcess
) -> None:
    # The sandbox's order trigger registers itself (we subscribe at install).
    done = await merchant.install("sandbox", "api_key", {"access_token": sandbox.new_key()})
    assert done["keepOpen"] is False
    assert "eui-hook" not in done["html"] and "data-close" not in done["html"]
    assert "is connected and running." in done["html"]
    content = await merchant.page()
    assert "eui-hook" not in content and "/webhooks/" not in content
    # Not installed yet: no URL either.
    assert merchant.integrations["yotpo_loyalty"]["workflows"][0]["installed"] is False
