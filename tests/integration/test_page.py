"""The integrations page through HTTP: its shell (framing policy), its theme stylesheet, and its
content route (rendered from GET /integrations' data, with the page's actions)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from conftest import SandboxProcess
from embedded_ui.settings import Settings
from embedded_ui.store import AuditEntry, Credential, InstallLink, utcnow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "fulfillmently"
V = "/2024-03"
RENAME = (
    "name: Update the Sandbox order status when a fulfillment is updated",
    "name: Sandbox status updates",
)
NEW_FIELD = (
    "            default: http://127.0.0.1:8000/demo/receiver\n",
    "            default: http://127.0.0.1:8000/demo/receiver\n"
    "      - id: stream_copy\n"
    "        type: stream_data\n"
    "        name: Send a copy\n"
    "        url:\n"
    "          configurable:\n"
    "            label: Where to send a copy\n"
    "            type: url\n"
    "            default: http://127.0.0.1:8000/demo/copy\n",
)


def files(*edits: tuple[str, str]) -> list[dict[str, str]]:
    sandbox = (EXAMPLES / "sandbox.yaml").read_text()
    for old, new in edits:
        assert old in sandbox, old
        sandbox = sandbox.replace(old, new)
    events = (EXAMPLES / "events.yaml").read_text()
    return [
        {"name": "events.yaml", "content": events},
        {"name": "sandbox.yaml", "content": sandbox},
    ]


@dataclass
class Merchant:
    client: Any
    tenant: Any
    user_id: str
    token: str
    credential_id: str
    integration_id: str
    workflows: dict[str, str]
    db: async_sessionmaker[AsyncSession]

    async def page(self, expect: int = 200, **body: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/modal/api/page", json=body, headers={"Authorization": f"Bearer {self.token}"}
        )
        assert response.status_code == expect, response.text
        result: dict[str, Any] = response.json()
        return result

    async def act(self, kind: str, workflow: str, expect: int = 200) -> dict[str, Any]:
        return await self.page(expect, action={"type": kind, "workflowId": workflow})

    async def apply(self, *edits: tuple[str, str]) -> None:
        applied = await self.client.post(
            f"{V}/manage/apply",
            json={"files": files(*edits), "release": True},
            headers=self.tenant.headers,
        )
        assert applied.status_code == 200, applied.text

    async def install(self) -> None:
        started = await self.client.post(
            f"{V}/headless/startInstallation",
            json={
                "userId": self.user_id,
                "integrationId": self.integration_id,
                "credentialIds": [self.credential_id],
            },
            headers=self.tenant.headers,
        )
        assert started.status_code == 200, started.text
        done = await self.client.post(
            f"{V}/headless/completeInstallation",
            json={"installationId": started.json()["installationId"], "data": []},
            headers=self.tenant.headers,
        )
        assert done.status_code == 200, done.text

    async def listing(self) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"{V}/integrations", params={"userId": self.user_id}, headers=self.tenant.headers
        )
        workflows: list[dict[str, Any]] = response.json()["data"][0]["workflows"]
        return workflows


@pytest.fixture
async def merchant(
    client: Any, tenant: Any, sandbox: SandboxProcess, settings: Settings
) -> AsyncIterator[Merchant]:
    applied = await client.post(
        f"{V}/manage/apply", json={"files": files(), "release": True}, headers=tenant.headers
    )
    assert applied.status_code == 200, applied.text
    created = await client.post(f"{V}/users", json={"username": "shopper"}, headers=tenant.headers)
    user_id = created.json()["userId"]
    token = (await client.get(f"{V}/users/{user_id}/token", headers=tenant.headers)).json()
    credential = await client.post(
        f"{V}/users/{user_id}/credentials",
        json={"app": "sandbox", "type": "api_key", "data": {"access_token": sandbox.new_key()}},
        headers=tenant.headers,
    )
    assert credential.status_code == 201, credential.text
    listed = await client.get(
        f"{V}/integrations", params={"userId": user_id}, headers=tenant.headers
    )
    (integration,) = listed.json()["data"]
    engine = create_async_engine(settings.database_url)
    try:
        yield Merchant(
            client,
            tenant,
            user_id,
            token["token"],
            credential.json()["credentialId"],
            integration["integrationId"],
            {w["name"][:6]: w["workflowId"] for w in integration["workflows"]},
            async_sessionmaker(engine, expire_on_commit=False),
        )
    finally:
        await engine.dispose()


# --- the shell and the theme --------------------------------------------------------------------


async def test_the_shell_is_framed_only_by_the_environments_origins(
    client: Any, tenant: Any
) -> None:
    page = await client.get(f"/page/{tenant.workspace_id}/{tenant.environment}")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors http://localhost:* http://127.0.0.1:*" in csp
    assert "style-src 'self'" in csp and "unsafe-inline" not in csp
    assert "Loading integrations" in page.text and "<style" not in page.text
    assert re.search(r'src="/static/page\.js\?v=[0-9a-f]{12}"', page.text)

    listed = await client.put(
        f"{V}/environment",
        json={"allowedOrigins": ["https://shop.example"]},
        headers=tenant.headers,
    )
    assert listed.status_code == 200, listed.text
    page = await client.get(f"/page/{tenant.workspace_id}/{tenant.environment}")
    assert page.headers["content-security-policy"].endswith("frame-ancestors https://shop.example")

    unknown = await client.get(f"/page/{tenant.workspace_id}/staging")
    assert unknown.status_code == 404
    assert unknown.headers["content-security-policy"].endswith("frame-ancestors 'none'")


async def test_the_theme_is_a_stylesheet_of_checked_values(client: Any, tenant: Any) -> None:
    good = await client.get(
        "/page/theme.css",
        params={
            "accent": "#0f3d3e",
            "radius": "4px",
            "font": "Inter, sans-serif",
            "density": "compact",
            "dark.accent": "rgb(120, 200, 180)",
            "scheme": "dark",
        },
    )
    assert good.status_code == 200
    assert good.headers["content-type"].startswith("text/css")
    assert ":root{--eui-accent:#0f3d3e;--eui-radius:4px;--eui-font:Inter, sans-serif;" in good.text
    assert "--eui-space:8px;" in good.text
    assert ":root[data-scheme=dark]{--eui-accent:rgb(120, 200, 180);}" in good.text
    for bad in (
        {"accent": "url(https://evil.example/x)"},
        {"accent": "red;} body{display:none"},
        {"background": "expression(alert(1))"},
        {"radius": "calc(1px + 1px)"},
        {"font": "x; } *{"},
        {"density": "huge"},
        {"scheme": "sepia"},
        {"position": "fixed"},
    ):
        refused = await client.get("/page/theme.css", params=bad)
        assert refused.status_code == 400, bad
        assert "{" not in refused.text, bad

    themed = await client.get(
        f"/page/{tenant.workspace_id}/{tenant.environment}",
        params={"accent": "#0f3d3e", "integrations": "abc"},
    )
    assert 'href="/page/theme.css?accent=%230f3d3e"' in themed.text
    assert 'data-integrations="abc"' in themed.text
    refused_shell = await client.get(
        f"/page/{tenant.workspace_id}/{tenant.environment}", params={"accent": "url(x)"}
    )
    assert "theme.accent: expected a colour" in refused_shell.text
    assert refused_shell.headers["content-security-policy"].endswith("frame-ancestors 'none'")


# --- the content --------------------------------------------------------------------------------


async def test_the_content_needs_a_user_token_and_json(merchant: Merchant) -> None:
    client = merchant.client
    assert (await client.post("/modal/api/page", json={})).status_code == 401
    with_key = await client.post("/modal/api/page", json={}, headers=merchant.tenant.headers)
    assert with_key.status_code == 401
    form = await client.post(
        "/modal/api/page",
        content="q=x",
        headers={
            "Authorization": f"Bearer {merchant.token}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert form.status_code == 403
    bad = await merchant.page(400, integrations="not a list")
    assert "integrations: expected a list of strings" in bad["message"]
    bad_action = await merchant.page(400, action={"type": "explode", "workflowId": "x"})
    assert "action: expected" in bad_action["message"]


async def test_the_content_shows_each_integration_and_installs_through_the_modal(
    merchant: Merchant,
) -> None:
    before = await merchant.page()
    html = before["html"]
    assert before["shown"] == 1 and before["event"] is None
    assert "Sandbox Commerce" in html and 'class="eup-logo"' in html
    assert f'data-open="install" data-integration="{merchant.integration_id}"' in html
    assert html.count("Not installed") == 2 and "No runs yet" not in html

    await merchant.install()
    after = (await merchant.page())["html"]
    assert 'data-open="install"' not in after
    assert after.count("No runs yet") == 2
    assert after.count('aria-checked="true"') == 2
    assert after.count("Update available") == 0


async def test_the_last_run_and_recent_errors_show_once_workflows_run(
    merchant: Merchant,
) -> None:
    await merchant.install()
    # The sandbox has no order "missing": the status update fails for good (404, no retry).
    ran = await merchant.client.post(
        f"{V}/run/event",
        json={
            "event": "Fulfillment Updated",
            "userId": merchant.user_id,
            "data": {"orderId": "missing", "status": "FULFILLED"},
        },
        headers=merchant.tenant.headers,
    )
    assert ran.status_code == 202, ran.text
    deadline = time.monotonic() + 15
    while "Last run failed" not in (html := (await merchant.page())["html"]):
        assert time.monotonic() < deadline, html
        await asyncio.sleep(0.05)
    assert "1 error in the last 7 days" in html
    assert html.count("No runs yet") == 1  # the other workflow has not run


async def test_deactivate_and_activate_change_what_the_api_reports(merchant: Merchant) -> None:
    await merchant.install()
    status = merchant.workflows["Update"]
    off = await merchant.act("deactivate", status)
    assert off["event"] == {
        "type": "deactivate",
        "workflowId": status,
        "integrationId": merchant.integration_id,
    }
    assert "deactivated" in off["html"]
    assert {w["workflowId"]: w["active"] for w in await merchant.listing()}[status] is False
    assert f'aria-checked="false" data-action="activate" data-workflow="{status}"' in off["html"]
    await merchant.act("activate", status)
    assert {w["workflowId"]: w["active"] for w in await merchant.listing()}[status] is True


async def test_an_update_is_one_click_when_the_fields_are_unchanged(merchant: Merchant) -> None:
    await merchant.install()
    status = merchant.workflows["Update"]
    await merchant.apply(RENAME)
    html = (await merchant.page())["html"]
    assert "Update available: version 2." in html
    assert f'data-action="upgrade" data-workflow="{status}"' in html
    upgraded = await merchant.act("upgrade", status)
    assert upgraded["event"]["installedVersion"] == 2
    assert "updated to version 2" in upgraded["html"]
    assert "Update available" not in upgraded["html"]
    versions = {
        w["workflowId"]: (w["version"], w["installedVersion"]) for w in await merchant.listing()
    }
    assert versions[status] == (2, 2)


async def test_a_new_field_asks_for_a_reinstall_naming_it(merchant: Merchant) -> None:
    await merchant.install()
    orders = merchant.workflows["Create"]
    await merchant.apply(NEW_FIELD)
    html = (await merchant.page())["html"]
    assert "asks for new settings (Where to send a copy)" in html
    assert f'data-open="update" data-integration="{merchant.integration_id}"' in html
    assert f'data-action="upgrade" data-workflow="{orders}"' not in html
    refused = await merchant.act("upgrade", orders, expect=409)
    assert refused["fields"] == ["stream_copy.url"]


async def test_uninstall_and_a_broken_credential(merchant: Merchant) -> None:
    await merchant.install()
    orders = merchant.workflows["Create"]
    html = (await merchant.page())["html"]
    assert f'data-confirm="eup-c-{orders}"' in html and "Yes, uninstall" in html
    async with merchant.db() as session:
        await session.execute(
            update(Credential)
            .where(Credential.id == merchant.credential_id)
            .values(status="broken")
        )
        await session.commit()
    broken = (await merchant.page())["html"]
    assert 'data-open="reconnect"' in broken and "stopped working" in broken
    gone = await merchant.act("uninstall", orders)
    assert "uninstalled" in gone["html"]
    installed = {w["workflowId"]: w["installed"] for w in await merchant.listing()}
    assert installed[orders] is False
    assert 'data-open="install"' in gone["html"]


async def test_search_category_and_the_mount_options_filter(merchant: Merchant) -> None:
    none = await merchant.page(q="nothing-like-this")
    assert none["shown"] == 0
    assert "No integrations match your search." in none["html"]
    assert "data-empty hidden" not in none["html"]
    found = await merchant.page(q="sandbox orders")
    assert found["shown"] == 1 and "data-empty hidden" in found["html"]
    assert (await merchant.page(integrations=["sandbox"]))["shown"] == 1
    assert (await merchant.page(integrations=[merchant.integration_id]))["shown"] == 1
    hidden = await merchant.page(integrations=["shopify"])
    assert hidden["shown"] == 0 and "No integrations are available yet." in hidden["html"]
    assert (await merchant.page(category="no-such-category"))["shown"] == 0


# --- the hosted page (a single-use link) -------------------------------------------------------

PUBLIC = "http://embedded-ui.test"
LOOPBACK = "http://localhost:* http://127.0.0.1:* http://[::1]:*"


def frame_ancestors(response: Any) -> str:
    csp: str = response.headers["content-security-policy"]
    return next(p for p in csp.split(";") if "frame-ancestors" in p).split(None, 1)[1].strip()


async def page_link(merchant: Merchant, user: str | None = None, prefix: str = V) -> str:
    made = await merchant.client.get(
        f"{prefix}/users/{user or merchant.user_id}/integrations-page-url",
        headers=merchant.tenant.headers,
    )
    assert made.status_code == 200, made.text
    body = made.json()
    assert set(body) == {"url", "expiresAt"}
    url: str = body["url"]
    assert url.startswith(f"{PUBLIC}/integrations-page/"), url
    return url.removeprefix(PUBLIC)


async def test_a_hosted_page_link_renders_the_users_page_once(merchant: Merchant) -> None:
    await merchant.install()
    path = await page_link(merchant)
    assert "?" not in path and merchant.user_id not in path
    page = await merchant.client.get(path)
    assert page.status_code == 200, page.text
    # The content is in the first response: useful before (or without) the script.
    assert "Sandbox Commerce" in page.text and page.text.count("No runs yet") == 2
    assert 'aria-busy="false"' in page.text and "Loading integrations" not in page.text
    assert "<noscript>" in page.text and "need JavaScript" in page.text
    assert re.search(
        r'<noscript><link rel="stylesheet" href="/static/page-noscript\.css', page.text
    )
    # The user token is inline (never in a URL), and it works for the page's own route.
    found = re.search(r'<script type="application/json" id="eup-init">(.*?)</script>', page.text)
    assert found is not None
    init = json.loads(found.group(1))
    assert init["workspace"] == merchant.tenant.workspace_id
    assert init["environment"] == merchant.tenant.environment
    merchant.token = init["token"]
    assert (await merchant.page())["shown"] == 1
    # Framed only by the environment's origins; never cached; no referrer.
    assert frame_ancestors(page) == LOOPBACK
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-src 'self'" in page.headers["content-security-policy"]  # its own modal
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"

    again = await merchant.client.get(path)
    assert again.status_code == 404 and "This link has expired" in again.text
    assert "eup-init" not in again.text
    assert frame_ancestors(again) == LOOPBACK  # a plain iframe shows why

    async with merchant.db() as session:
        actions = (await session.scalars(select(AuditEntry.action))).all()
    assert "page_link.create" in actions


async def test_a_hosted_page_link_expires_and_is_not_an_install_link(merchant: Merchant) -> None:
    client = merchant.client
    path = await page_link(merchant, user="shopper", prefix="/2023-03")  # a username, old date
    token = path.rsplit("/", 1)[1]
    assert (await client.get(f"/install/{token}")).status_code == 404
    made = await client.get(
        f"{V}/users/{merchant.user_id}/integrations/{merchant.integration_id}/install-url",
        headers=merchant.tenant.headers,
    )
    install_token = made.json()["url"].rsplit("/", 1)[1]
    assert (await client.get(f"/integrations-page/{install_token}")).status_code == 404
    # Neither refusal spent the other kind's link.
    assert (await client.get(f"/install/{install_token}")).status_code == 200
    async with merchant.db() as session:
        await session.execute(
            update(InstallLink)
            .where(InstallLink.integration_id.is_(None))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    late = await client.get(path)
    assert late.status_code == 404 and "This link has expired" in late.text
    assert (await client.get("/integrations-page/" + "x" * 43)).status_code == 404
    unknown = await client.get("/integrations-page/" + "x" * 43)
    assert frame_ancestors(unknown) == "'none'"


async def test_a_hosted_page_takes_the_shells_options_and_the_environments_origins(
    merchant: Merchant,
) -> None:
    client = merchant.client
    listed = await client.put(
        f"{V}/environment",
        json={"allowedOrigins": ["https://shop.example"]},
        headers=merchant.tenant.headers,
    )
    assert listed.status_code == 200, listed.text
    path = await page_link(merchant)
    # A refused option answers 400 before the link is spent.
    refused = await client.get(path, params={"accent": "url(x)"})
    assert refused.status_code == 400 and "theme.accent: expected a colour" in refused.text
    assert frame_ancestors(refused) == "'none'"
    page = await client.get(path, params={"accent": "#0f3d3e", "integrations": "shopify"})
    assert page.status_code == 200, page.text
    assert frame_ancestors(page) == "https://shop.example"
    assert 'href="/page/theme.css?accent=%230f3d3e"' in page.text
    assert "No integrations are available yet." in page.text
    assert 'data-integrations="shopify"' in page.text


async def test_page_links_are_only_for_your_own_users(merchant: Merchant, make_tenant: Any) -> None:
    other = await make_tenant("someone-else")
    client = merchant.client
    for user, headers in [
        (merchant.user_id, other.headers),  # another workspace's key
        ("shopper", other.headers),
        ("nobody", merchant.tenant.headers),
    ]:
        response = await client.get(f"{V}/users/{user}/integrations-page-url", headers=headers)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "not_found"
    path = f"{V}/users/{merchant.user_id}/integrations-page-url"
    assert (await client.get(path)).status_code == 401
    user_token = {"Authorization": f"Bearer {merchant.token}"}
    assert (await client.get(path, headers=user_token)).status_code == 401
    async with merchant.db() as session:
        assert not (await session.scalars(select(InstallLink))).all()
