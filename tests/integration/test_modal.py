"""The install modal through HTTP: its pages (framing policy), its step route (every step, with
a real sandbox process verifying keys and serving options), hosted install links, the
embedding settings and CORS on the user-token routes."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from conftest import SandboxProcess, every_row_as_text
from embedded_ui.paths import EXAMPLES_DIR
from embedded_ui.settings import Settings
from embedded_ui.store import InstallLink, utcnow

V = "/2024-03"
STATUS_OPTIONS = (
    "              options:\n"
    "                - {label: Shipped, value: shipped}\n"
    "                - {label: Delivered, value: delivered}\n"
)


def shop_files() -> list[dict[str, str]]:
    """The quickstart's sandbox integration, its status choices loaded from the app."""
    sandbox = (EXAMPLES_DIR / "fulfillmently" / "sandbox.yaml").read_text()
    assert STATUS_OPTIONS in sandbox
    sandbox = sandbox.replace(STATUS_OPTIONS, "              options_from: order_statuses\n")
    events = (EXAMPLES_DIR / "fulfillmently" / "events.yaml").read_text()
    return [
        {"name": "events.yaml", "content": events},
        {"name": "sandbox.yaml", "content": sandbox},
    ]


@dataclass
class Shop:
    client: Any
    tenant: Any
    sandbox: SandboxProcess
    user_id: str
    token: str
    integration_id: str
    workflows: dict[str, str]  # key → id

    @property
    def user_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def step(
        self,
        action: str = "start",
        state: dict[str, Any] | None = None,
        operation: str = "install",
        params: dict[str, Any] | None = None,
        given: dict[str, Any] | None = None,
        expect: int = 200,
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/modal/api/step",
            json={
                "operation": operation,
                "params": params if params is not None else {"integrationId": self.integration_id},
                "state": state,
                "action": action,
                "input": given or {},
            },
            headers=self.user_headers,
        )
        assert response.status_code == expect, response.text
        body: dict[str, Any] = response.json()
        return body

    async def credentials(self) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"{V}/users/{self.user_id}/credentials", headers=self.tenant.headers
        )
        data: list[dict[str, Any]] = response.json()["data"]
        return data


async def make_user(client: Any, tenant: Any, username: str) -> tuple[str, str]:
    created = await client.post(f"{V}/users", json={"username": username}, headers=tenant.headers)
    assert created.status_code == 201, created.text
    user_id = created.json()["userId"]
    token = await client.get(f"{V}/users/{user_id}/token", headers=tenant.headers)
    return user_id, token.json()["token"]


@pytest.fixture
async def shop(client: Any, tenant: Any, sandbox: SandboxProcess) -> Shop:
    applied = await client.post(
        f"{V}/manage/apply", json={"files": shop_files(), "release": True}, headers=tenant.headers
    )
    assert applied.status_code == 200, applied.text
    user_id, token = await make_user(client, tenant, "merchant")
    listed = await client.get(
        f"{V}/integrations", params={"userId": user_id}, headers=tenant.headers
    )
    (integration,) = listed.json()["data"]
    workflows = {w["name"]: w["workflowId"] for w in integration["workflows"]}
    return Shop(
        client,
        tenant,
        sandbox,
        user_id,
        token,
        integration["integrationId"],
        {
            "orders": workflows["Create an internal order for each new Sandbox order"],
            "status": workflows["Update the Sandbox order status when a fulfillment is updated"],
        },
    )


# --- the whole install, step by step ------------------------------------------------------------


async def test_install_goes_through_every_step_and_installs(shop: Shop) -> None:
    first = await shop.step()
    assert first["step"] == "workflows" and first["needsInput"] and not first["done"]
    assert first["title"] == "Sandbox Commerce"
    assert shop.workflows["orders"] in first["html"] and shop.workflows["status"] in first["html"]

    none_chosen = await shop.step("choose", first["state"], given={"workflowIds": []})
    assert none_chosen["step"] == "workflows" and "at least one" in none_chosen["html"]

    auth = await shop.step(
        "choose", first["state"], given={"workflowIds": list(shop.workflows.values())}
    )
    assert auth["step"] == "auth"
    assert 'data-action="oauth"' in auth["html"] and 'data-type="api_key"' in auth["html"]

    wrong_key = "sbx_" + "Wrong0Key0" * 2
    refused = await shop.step(
        "credential",
        auth["state"],
        given={"type": "api_key", "fields": {"access_token": wrong_key}},
    )
    assert refused["step"] == "auth" and "Invalid API key." in refused["html"]
    assert wrong_key not in str(refused)
    assert await shop.credentials() == []

    key = shop.sandbox.new_key()
    configure = await shop.step(
        "credential", auth["state"], given={"type": "api_key", "fields": {"access_token": key}}
    )
    assert configure["step"] == "configure", configure["html"]
    assert key not in str(configure)
    # The status choices come from the sandbox, with this credential: "Cancelled" is only there.
    assert "Cancelled" in configure["html"] and "Pending" in configure["html"]
    credential_id = configure["state"]["credentialId"]
    assert [c["credentialId"] for c in await shop.credentials()] == [credential_id]

    orders, status = shop.workflows["orders"], shop.workflows["status"]
    bad = await shop.step(
        "configure",
        configure["state"],
        given={
            "values": {
                orders: {"stream_orders.url": "not a url"},
                status: {"update_order_status.status": "lost-in-transit"},
            }
        },
    )
    assert bad["step"] == "configure"
    assert "expected an http(s) URL" in bad["html"] and "choose one of the options" in bad["html"]
    assert bad["html"].count('aria-invalid="true"') == 2

    review = await shop.step(
        "configure",
        bad["state"],
        given={
            "values": {
                orders: {"stream_orders.url": "https://fulfillmently.example/orders"},
                status: {"update_order_status.status": "cancelled"},
            }
        },
    )
    assert review["step"] == "review" and "https://fulfillmently.example/orders" in review["html"]

    done = await shop.step("install", review["state"])
    assert done["done"] and done["step"] == "done" and not done["needsInput"]
    assert done["result"] == {
        "success": True,
        "workflowIds": [orders, status],
        "credentialId": credential_id,
    }
    listed = await shop.client.get(
        f"{V}/integrations", params={"userId": shop.user_id}, headers=shop.tenant.headers
    )
    workflows = listed.json()["data"][0]["workflows"]
    assert all(w["installed"] and w["installedVersion"] == w["version"] for w in workflows)


async def test_hide_installs_at_once_when_nothing_needs_asking(shop: Shop) -> None:
    key = shop.sandbox.new_key()
    created = await shop.client.post(
        f"{V}/users/{shop.user_id}/credentials",
        json={"app": "sandbox", "type": "api_key", "data": {"access_token": key}},
        headers=shop.tenant.headers,
    )
    assert created.status_code == 201, created.text
    done = await shop.step(
        params={"integrationId": shop.integration_id, "hide": True, "title": "Quick"}
    )
    assert done["done"] and not done["needsInput"] and done["title"] == "Quick"
    assert sorted(done["result"]["workflowIds"]) == sorted(shop.workflows.values())
    assert done["result"]["credentialId"] == created.json()["credentialId"]


async def test_hide_still_asks_for_what_it_cannot_know(shop: Shop) -> None:
    asked = await shop.step(params={"integrationId": shop.integration_id, "hide": True})
    assert asked["step"] == "auth" and asked["needsInput"] and not asked["done"]


async def test_prefilled_values_and_always_show_authentication(shop: Shop) -> None:
    key = shop.sandbox.new_key()
    await shop.client.post(
        f"{V}/users/{shop.user_id}/credentials",
        json={"app": "sandbox", "type": "api_key", "data": {"access_token": key}},
        headers=shop.tenant.headers,
    )
    params = {
        "workflowIds": [shop.workflows["orders"]],
        "alwaysShowAuthentication": True,
        "preFilledValues": {"url": "https://prefilled.example/hook"},
    }
    auth = await shop.step(params=params)
    assert auth["step"] == "auth", "alwaysShowAuthentication asks even with a credential"
    assert "use_credential" not in auth["html"]
    configure = await shop.step(
        "credential",
        auth["state"],
        params=params,
        given={"type": "api_key", "fields": {"access_token": shop.sandbox.new_key()}},
    )
    assert configure["step"] == "configure"
    assert "https://prefilled.example/hook" in configure["html"]
    assert len(await shop.credentials()) == 2


async def test_edit_reopens_an_installation_with_its_saved_values(shop: Shop) -> None:
    await test_install_goes_through_every_step_and_installs(shop)
    edit = await shop.step(operation="edit")
    assert edit["step"] == "configure", "the saved credential is reused; values are shown"
    assert "https://fulfillmently.example/orders" in edit["html"]
    assert 'value="cancelled" selected' in edit["html"]

    _, stranger_token = await make_user(shop.client, shop.tenant, "stranger")
    shop.token = stranger_token
    nothing = await shop.step(operation="edit", expect=404)
    assert "not installed" in nothing["message"]


async def test_authenticate_connects_an_app_only(shop: Shop) -> None:
    params = {"app": "sandbox"}
    auth = await shop.step(operation="authenticate", params=params)
    assert auth["step"] == "auth" and auth["title"] == "Connect Sandbox Commerce"
    done = await shop.step(
        "credential",
        auth["state"],
        operation="authenticate",
        params=params,
        given={"type": "api_key", "fields": {"access_token": shop.sandbox.new_key()}},
    )
    assert done["done"] and done["result"]["success"] is True
    assert done["result"]["credentialId"] == (await shop.credentials())[0]["credentialId"]


@pytest.mark.parametrize(
    ("operation", "params", "needle"),
    [
        ("install", {}, "integrationId or workflowIds"),
        ("install", {"integrationId": "x", "hide": "yes"}, "params.hide"),
        ("install", {"workflowIds": []}, "params.workflowIds"),
        ("uninstall", {"integrationId": "x"}, "operation"),
        ("authenticate", {}, "params.app"),
        ("install", {"integrationId": "x", "title": "t" * 201}, "params.title"),
    ],
)
async def test_bad_options_are_400_naming_them(
    shop: Shop, operation: str, params: dict[str, Any], needle: str
) -> None:
    body = await shop.step(operation=operation, params=params, expect=400)
    assert needle in body["message"]


async def test_a_tampered_state_cannot_borrow_another_users_credential(shop: Shop) -> None:
    victim_id, _ = await make_user(shop.client, shop.tenant, "victim")
    created = await shop.client.post(
        f"{V}/users/{victim_id}/credentials",
        json={
            "app": "sandbox",
            "type": "api_key",
            "data": {"access_token": shop.sandbox.new_key()},
        },
        headers=shop.tenant.headers,
    )
    victims = created.json()["credentialId"]
    state = {"workflowIds": [shop.workflows["orders"]], "credentialId": victims}
    asked = await shop.step("install", state)
    assert asked["step"] == "auth" and asked["state"]["credentialId"] is None
    stolen = await shop.step("use_credential", state, given={"credentialId": victims}, expect=404)
    assert "No such connection" in stolen["message"]
    foreign = await shop.step("start", {"workflowIds": ["f" * 24]}, expect=400)
    assert "not offered" in foreign["message"]


async def test_the_step_route_takes_only_json_with_a_user_token(shop: Shop) -> None:
    body = '{"operation": "install", "params": {}, "action": "start"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        forged = await shop.client.post(
            "/modal/api/step",
            content=body,
            headers={**shop.user_headers, "Content-Type": content_type},
        )
        assert forged.status_code == 403, forged.text
        assert forged.json()["code"] == "forbidden"
    anonymous = await shop.client.post("/modal/api/step", json={})
    assert anonymous.status_code == 401
    with_api_key = await shop.client.post("/modal/api/step", json={}, headers=shop.tenant.headers)
    assert with_api_key.status_code == 401


# --- the pages and their framing -----------------------------------------------------------------


def frame_ancestors(response: Any) -> str:
    csp: str = response.headers["content-security-policy"]
    return next(p for p in csp.split(";") if "frame-ancestors" in p).split(None, 1)[1].strip()


async def test_the_modal_page_may_be_framed_only_by_the_environments_origins(
    client: Any, tenant: Any, make_tenant: Any
) -> None:
    page = await client.get(f"/modal/{tenant.workspace_id}/development")
    assert page.status_code == 200 and "modal.js" in page.text
    # 'self': the hosted integrations page opens the modal inside itself.
    assert frame_ancestors(page) == "'self' http://localhost:* http://127.0.0.1:* http://[::1]:*"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]

    saved = await client.put(
        f"{V}/environment",
        json={"allowedOrigins": ["https://App.Fulfillmently.example/", "https://b.example:8443"]},
        headers=tenant.headers,
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["allowedOrigins"] == [
        "https://app.fulfillmently.example",
        "https://b.example:8443",
    ]
    page = await client.get(
        f"/modal/{tenant.workspace_id}/development", headers={"Origin": "https://evil.example"}
    )
    assert (
        frame_ancestors(page) == "'self' https://app.fulfillmently.example https://b.example:8443"
    )

    production = await make_tenant(tenant.workspace_name, "production")
    unconfigured = await client.get(f"/modal/{production.workspace_id}/production")
    assert frame_ancestors(unconfigured) == "'self'"
    unknown = await client.get("/modal/ffffffffffffffffffffffff/development")
    assert frame_ancestors(unknown) == "'self' http://localhost:* http://127.0.0.1:* http://[::1]:*"
    bad_environment = await client.get(f"/modal/{tenant.workspace_id}/staging")
    assert bad_environment.status_code == 404 and frame_ancestors(bad_environment) == "'none'"
    api = await client.get(f"{V}/users", headers=tenant.headers)
    assert frame_ancestors(api) == "'none'"


@pytest.mark.parametrize(
    ("origins", "environment", "needle"),
    [
        (["https://app.example.com/path"], "development", "https://app.example.com/path"),
        (["*.example.com"], "development", "*.example.com"),
        (["https://*.example.com"], "development", "wildcard"),
        (["ftp://example.com"], "development", "ftp://example.com"),
        (["http://app.example.com"], "production", "must use https"),
        ([f"https://a{i}.example" for i in range(51)], "development", "at most 50"),
    ],
)
async def test_bad_origins_are_400_and_change_nothing(
    client: Any, make_tenant: Any, origins: list[str], environment: str, needle: str
) -> None:
    tenant = await make_tenant("origins", environment)
    response = await client.put(
        f"{V}/environment", json={"allowedOrigins": origins}, headers=tenant.headers
    )
    assert response.status_code == 400, response.text
    assert needle in response.json()["message"]
    current = await client.get(f"{V}/environment", headers=tenant.headers)
    assert current.json()["allowedOrigins"] == []


async def test_environment_settings_are_isolated(client: Any, make_tenant: Any) -> None:
    development = await make_tenant("isolated", "development")
    production = await make_tenant("isolated", "production")
    other = await make_tenant("neighbour", "development")
    await client.put(
        f"{V}/environment",
        json={"allowedOrigins": ["https://dev.example"]},
        headers=development.headers,
    )
    for tenant in (production, other):
        seen = await client.get(f"{V}/environment", headers=tenant.headers)
        assert seen.json()["allowedOrigins"] == []


# --- CORS on the user-token routes ----------------------------------------------------------------


async def test_cors_only_on_user_token_routes_for_allowed_origins(shop: Shop) -> None:
    client = shop.client
    preflight = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-alloy-user-token",
    }
    allowed = await client.options(
        f"{V}/integrations", headers={"Origin": "http://localhost:3000", **preflight}
    )
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "x-alloy-user-token" in allowed.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in allowed.headers
    denied = await client.options(
        f"{V}/integrations", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in denied.headers

    user = {"x-alloy-user-token": shop.token}
    for path in (f"{V}/integrations", f"{V}/workflows", "/2023-03/integrations"):
        ok = await client.get(path, headers={"Origin": "http://127.0.0.1:5173", **user})
        assert ok.status_code == 200, ok.text
        assert ok.headers["access-control-allow-origin"] == "http://127.0.0.1:5173"
        evil = await client.get(path, headers={"Origin": "https://evil.example", **user})
        assert evil.status_code == 200 and "access-control-allow-origin" not in evil.headers

    with_key = await client.get(
        f"{V}/integrations",
        params={"userId": shop.user_id},
        headers={"Origin": "http://localhost:3000", **shop.tenant.headers},
    )
    assert with_key.status_code == 200 and "access-control-allow-origin" not in with_key.headers
    users = await client.get(
        f"{V}/users", headers={"Origin": "http://localhost:3000", **shop.tenant.headers}
    )
    assert "access-control-allow-origin" not in users.headers
    users_preflight = await client.options(
        f"{V}/users", headers={"Origin": "http://localhost:3000", **preflight}
    )
    assert "access-control-allow-origin" not in users_preflight.headers

    # Once the ISV lists its origins, loopback is no longer accepted for this environment.
    await client.put(
        f"{V}/environment",
        json={"allowedOrigins": ["https://app.fulfillmently.example"]},
        headers=shop.tenant.headers,
    )
    listed = await client.get(
        f"{V}/integrations", headers={"Origin": "https://app.fulfillmently.example", **user}
    )
    assert listed.headers["access-control-allow-origin"] == "https://app.fulfillmently.example"
    loopback = await client.get(
        f"{V}/integrations", headers={"Origin": "http://localhost:3000", **user}
    )
    assert "access-control-allow-origin" not in loopback.headers


# --- hosted install links ------------------------------------------------------------------------


@pytest.fixture
async def db(settings: Settings) -> Any:
    engine = create_async_engine(settings.database_url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


async def test_a_hosted_install_link_works_once(
    shop: Shop, db: async_sessionmaker[AsyncSession]
) -> None:
    made = await shop.client.get(
        f"{V}/users/{shop.user_id}/integrations/{shop.integration_id}/install-url",
        headers=shop.tenant.headers,
    )
    assert made.status_code == 200, made.text
    url = made.json()["url"]
    assert url.startswith("http://embedded-ui.test/install/") and made.json()["expiresAt"]
    path = url.removeprefix("http://embedded-ui.test")

    page = await shop.client.get(path)
    assert page.status_code == 200, page.text
    assert 'id="eui-init"' in page.text and '"operation": "install"' in page.text
    assert shop.integration_id in page.text
    assert frame_ancestors(page) == "'none'"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"

    again = await shop.client.get(path)
    assert again.status_code == 404 and "expired" in again.text

    expiring = await shop.client.get(
        f"{V}/users/{shop.user_id}/integrations/{shop.integration_id}/install-url",
        headers=shop.tenant.headers,
    )
    async with db() as session:
        await session.execute(
            update(InstallLink).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    late = await shop.client.get(expiring.json()["url"].removeprefix("http://embedded-ui.test"))
    assert late.status_code == 404


async def test_install_links_are_only_for_your_own_users_and_integrations(
    shop: Shop, make_tenant: Any
) -> None:
    other = await make_tenant("someone-else")
    for user, integration, headers in [
        (shop.user_id, shop.integration_id, other.headers),
        (shop.user_id, "f" * 24, shop.tenant.headers),
        ("nobody", shop.integration_id, shop.tenant.headers),
    ]:
        response = await shop.client.get(
            f"{V}/users/{user}/integrations/{integration}/install-url", headers=headers
        )
        assert response.status_code == 404, response.text
    assert (await shop.client.get("/install/" + "x" * 43)).status_code == 404


async def test_a_key_typed_into_the_modal_is_nowhere_but_its_ciphertext(
    shop: Shop, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Plant a canary key through the modal, wrong once and right once, then search every
    response, every column of every table and the logs for it."""
    caplog.set_level(logging.DEBUG)
    wrong = "sbx_" + "Canary0Wrong0" + secrets.token_hex(6)
    right = shop.sandbox.new_key(api_key="sbx_Canary0Right0" + secrets.token_hex(6))
    first = await shop.step(params={"workflowIds": [shop.workflows["orders"]]})
    answers = [first]
    for key in (wrong, right):
        answers.append(
            await shop.step(
                "credential",
                first["state"],
                params={"workflowIds": [shop.workflows["orders"]]},
                given={"type": "api_key", "fields": {"access_token": key}},
            )
        )
    assert answers[-1]["step"] == "configure"
    listed = await shop.client.get(
        f"{V}/users/{shop.user_id}/credentials", headers=shop.tenant.headers
    )
    database = await every_row_as_text(settings.database_url)
    logs = "\n".join(record.getMessage() for record in caplog.records)
    for canary in (wrong, right):
        assert canary not in str(answers) and canary not in listed.text
        assert canary not in database
        assert canary not in logs
    assert "credential" in database  # the row is there, sealed


async def test_an_environment_theme_styles_its_page_and_a_mount_call_wins(
    client: Any, tenant: Any
) -> None:
    refused = await client.put(
        f"{V}/environment",
        json={"theme": {"accent": "url(https://evil.example/x)"}},
        headers=tenant.headers,
    )
    assert refused.status_code == 400 and "theme.accent" in refused.json()["message"]
    unknown = await client.put(
        f"{V}/environment", json={"theme": {"background-image": "red"}}, headers=tenant.headers
    )
    assert unknown.status_code == 400 and "unknown option" in unknown.json()["message"]
    assert (await client.get(f"{V}/environment", headers=tenant.headers)).json()["theme"] == {}

    saved = await client.put(
        f"{V}/environment",
        json={"theme": {"accent": "#0a7f5a", "radius": "4px"}},
        headers=tenant.headers,
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["theme"] == {"accent": "#0a7f5a", "radius": "4px"}
    origins_only = await client.put(
        f"{V}/environment",
        json={"allowedOrigins": ["https://app.example.com"]},
        headers=tenant.headers,
    )
    assert origins_only.json()["theme"] == {"accent": "#0a7f5a", "radius": "4px"}

    page = await client.get(f"/page/{tenant.workspace_id}/development")
    assert "/page/theme.css?accent=%230a7f5a&amp;radius=4px" in page.text
    mounted = await client.get(
        f"/page/{tenant.workspace_id}/development", params={"accent": "#123456"}
    )
    assert "/page/theme.css?accent=%23123456&amp;radius=4px" in mounted.text
    other = await client.get(f"/page/{tenant.workspace_id}/production")
    assert "theme.css" not in other.text


# --- versionIds ---------------------------------------------------------------------------------


async def released_version_ids(shop: Shop) -> dict[str, list[str]]:
    """Workflow id → its released version ids, oldest first."""
    found = {}
    for workflow_id in shop.workflows.values():
        response = await shop.client.get(
            f"{V}/workflows/{workflow_id}/versions", headers=shop.tenant.headers
        )
        assert response.status_code == 200, response.text
        found[workflow_id] = [
            v["versionId"] for v in response.json()["data"] if v["status"] == "released"
        ]
    return found


async def test_version_ids_must_name_the_latest_released_versions(shop: Shop) -> None:
    orders, status = shop.workflows["orders"], shop.workflows["status"]
    first = await released_version_ids(shop)
    v1 = {orders: first[orders][0], status: first[status][0]}
    params = {"integrationId": shop.integration_id, "versionIds": [v1[orders], v1[status]]}
    start = await shop.step(params=params)
    assert start["step"] == "workflows"

    # A new release of the status workflow makes its version 1 stale.
    files = shop_files()
    for file in files:
        file["content"] = file["content"].replace(
            "name: Update the Sandbox order status when a fulfillment is updated",
            "name: Sandbox status updates",
        )
    applied = await shop.client.post(
        f"{V}/manage/apply", json={"files": files, "release": True}, headers=shop.tenant.headers
    )
    assert applied.status_code == 200, applied.text
    now = await released_version_ids(shop)
    assert now[orders] == [v1[orders]] and len(now[status]) == 2
    v2 = now[status][1]

    for stale in ([v1[orders], v1[status]], [v1[status]], ["0" * 24]):
        refused = await shop.step(
            params={"integrationId": shop.integration_id, "versionIds": stale}, expect=422
        )
        assert refused["field"] == "versionIds"
        assert (
            f"versionIds: {stale[-1]!r} is not the latest released version" in (refused["message"])
        )
    # A modal opened before the release is refused at its next step too: nothing stale is
    # installed.
    continued = await shop.step(
        "choose",
        start["state"],
        params=params,
        given={"workflowIds": [orders, status]},
        expect=422,
    )
    assert continued["field"] == "versionIds"

    # The latest versions are accepted and installed.
    latest = {"integrationId": shop.integration_id, "versionIds": [v1[orders], v2]}
    first_step = await shop.step(params=latest)
    auth = await shop.step(
        "choose", first_step["state"], params=latest, given={"workflowIds": [orders, status]}
    )
    assert auth["step"] == "auth"
    configure = await shop.step(
        "credential",
        auth["state"],
        params=latest,
        given={"type": "api_key", "fields": {"access_token": shop.sandbox.new_key()}},
    )
    assert configure["step"] == "configure", configure["html"]
    review = await shop.step(
        "configure",
        configure["state"],
        params=latest,
        given={
            "values": {
                orders: {"stream_orders.url": "https://fulfillmently.example/orders"},
                status: {"update_order_status.status": "shipped"},
            }
        },
    )
    assert review["step"] == "review", review["html"]
    done = await shop.step("install", review["state"], params=latest)
    assert done["done"] and done["result"]["success"] is True
    listed = await shop.client.get(
        f"{V}/integrations", params={"userId": shop.user_id}, headers=shop.tenant.headers
    )
    installed = {
        w["workflowId"]: w["installedVersion"] for w in listed.json()["data"][0]["workflows"]
    }
    assert installed == {orders: 1, status: 2}
