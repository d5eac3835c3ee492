"""The OAuth popup flow through HTTP, against the sandbox running as a real process.

The test client plays the browser on the service's pages (and keeps the binding cookie); the
consent page is the sandbox's, reached with httpx over real HTTP; the service exchanges the
code with the sandbox over real HTTP too. The adversarial cases are security-anchors.md's
1 to 8 and 15; each "no token request" is read from the sandbox's own counters.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from conftest import PUBLIC_URL, Sandbox, every_row_as_text
from embedded_ui.catalog import load_catalog
from embedded_ui.credentials import Vault
from embedded_ui.oauth import fresh_secret, provider
from embedded_ui.oauth.checks import CallbackCheckFailed, check_callback, shopify_hmac
from embedded_ui.oauth.page import CSP
from embedded_ui.settings import Settings
from embedded_ui.store import Credential, OAuthFlow, Scope, create_engine, utcnow
from oauth_driver import OAuthDriver, make_driver, query_of, service_logs

Client = AsyncTestClient[Litestar]


@pytest.fixture
def settings(settings: Settings, sandbox: Sandbox) -> Settings:
    """The service's `{sandbox_url}` is the running sandbox."""
    return replace(settings, sandbox_url=sandbox.url)


@pytest.fixture
async def oauth(client: Client, sandbox: Sandbox, tenant: Any) -> OAuthDriver:
    driver = await make_driver(client, sandbox, tenant)
    configured = await driver.configure_client()
    assert configured.status_code == 200, configured.text
    return driver


async def flow_row(settings: Settings, flow_id: str) -> OAuthFlow:
    engine = create_engine(settings)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            row = await session.scalar(select(OAuthFlow).where(OAuthFlow.id == flow_id))
            assert row is not None
            return row
    finally:
        await engine.dispose()


async def change_flow(settings: Settings, flow_id: str, **values: Any) -> None:
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(OAuthFlow).where(OAuthFlow.id == flow_id).values(**values)
            )
    finally:
        await engine.dispose()


async def count_credentials(settings: Settings) -> int:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(text("SELECT count(*) FROM credential"))).scalar())
    finally:
        await engine.dispose()


async def secret_of(settings: Settings, oauth: OAuthDriver, credential_id: str) -> dict[str, Any]:
    engine = create_engine(settings)
    try:
        async with async_sessionmaker(engine)() as session:
            row = await session.scalar(select(Credential).where(Credential.id == credential_id))
            assert row is not None
            scope = Scope(row.workspace_id, row.environment)
        return await fresh_secret(
            engine,
            scope,
            credential_id,
            vault=Vault(settings.vault_keys),
            apps=load_catalog(),
            settings=settings,
        )
    finally:
        await engine.dispose()


def assert_rejected_page(response: httpx.Response, words: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert words in html.unescape(response.text), response.text
    assert "location" not in response.headers
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["referrer-policy"] == "no-referrer"


# the happy path ---------------------------------------------------------------------------


async def test_a_user_connects_the_sandbox_through_the_popup(
    oauth: OAuthDriver, sandbox: Sandbox, settings: Settings
) -> None:
    popup = await oauth.run()

    # start: a binding cookie, then a redirect to the catalog's authorize URL, nothing else
    start = popup.start
    location = start.headers["location"]
    assert location.startswith(f"{sandbox.url}/oauth/authorize?")
    query = query_of(location)
    assert query["response_type"] == "code"
    assert query["client_id"] == "embedded-ui-demo"
    assert query["redirect_uri"] == f"{PUBLIC_URL}/oauth/callback/sandbox"
    assert query["scope"] == "orders customers"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 43  # 256 bits, URL-safe base64
    cookie = start.headers["set-cookie"]
    assert cookie.startswith("eui_oauth=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain-http development; https gets __Host- and Secure

    row = await flow_row(settings, popup.flow_id)
    assert row.status == "succeeded"
    assert row.state_hash is None  # consumed
    assert query["state"] not in repr(row.__dict__)

    # the callback: a tiny page that tells the opener and closes
    page = popup.callback
    assert page is not None and page.status_code == 200, page and page.text
    assert page.headers["content-security-policy"] == CSP
    assert "script-src 'sha256-" in CSP and "unsafe-inline" not in CSP
    assert "default-src 'none'" in CSP and "frame-ancestors 'none'" in CSP
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    text_ = page.text
    assert f'data-flow="{popup.flow_id}"' in text_
    assert f'data-origin="{PUBLIC_URL}"' in text_
    assert 'type: "eui:oauth"' in text_ and "history.replaceState" in text_
    assert "window.close()" in text_ and "You can close this window" in text_
    assert "src=" not in text_ and "href=" not in text_  # nothing external
    assert "max-age=0" in page.headers["set-cookie"].lower()  # the binding cookie is spent

    status = await oauth.flow(popup.flow_id)
    assert status["status"] == "succeeded"
    credential_id = status["credentialId"]
    assert set(status) == {"status", "credentialId"}

    [listed] = await oauth.credentials()
    assert listed["credentialId"] == credential_id
    assert listed["app"] == "sandbox"
    assert listed["type"] == "oauth2"
    assert listed["status"] == "active"
    assert listed["details"] == {"scopes": ["orders", "customers"]}

    secret = await secret_of(settings, oauth, credential_id)
    assert secret["access_token"].startswith("sbxat_")
    assert secret["refresh_token"].startswith("sbxrt_")
    async with httpx.AsyncClient() as http:
        me = await http.get(
            f"{sandbox.url}/api/me", headers={"Authorization": f"Bearer {secret['access_token']}"}
        )
    assert me.status_code == 200 and me.json()["name"] == "Demo Store"

    engine = create_engine(settings)
    try:
        async with async_sessionmaker(engine)() as session:
            credential = await session.scalar(select(Credential))
            assert credential is not None
            assert credential.expires_at is not None
            left = credential.expires_at - utcnow()
            assert timedelta(minutes=59) < left <= timedelta(hours=1)
            assert secret["access_token"].encode() not in credential.ciphertext
    finally:
        await engine.dispose()
    counted = sandbox.stats()
    assert (counted["code_exchanges"], counted["token_requests"]) == (1, 1)


async def test_a_declined_consent_fails_the_flow_with_a_readable_message(
    oauth: OAuthDriver, sandbox: Sandbox, settings: Settings
) -> None:
    popup = await oauth.run(decision="deny")
    assert popup.callback is not None
    assert_rejected_page(popup.callback, "Access to Sandbox Commerce was declined.")
    assert f'data-flow="{popup.flow_id}"' in popup.callback.text  # the opener may look
    assert await oauth.flow(popup.flow_id) == {
        "status": "failed",
        "message": "Access to Sandbox Commerce was declined.",
    }
    assert sandbox.stats()["token_requests"] == 0
    assert await count_credentials(settings) == 0


# creating flows ---------------------------------------------------------------------------


async def test_a_flow_needs_an_oauth_client_for_the_environment(
    client: Client, sandbox: Sandbox, tenant: Any
) -> None:
    driver = await make_driver(client, sandbox, tenant)
    refused = await driver.create_flow()
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["code"] == "unprocessable"
    assert "PUT /2024-03/oauth-clients/sandbox" in body["message"]
    assert "embedded-ui oauth-clients set" in body["message"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"app": "nope"}, 400, "app: no app 'nope'"),
        ({"app": "aftership"}, 422, "does not use OAuth"),
        ({"purpose": "steal"}, 400, "purpose: expected one of install, authenticate, reconnect"),
        ({"connection": {"shop": "x"}}, 400, "connection.shop: not a field"),
        ({"flavour": "x"}, 400, "flavour"),
    ],
)
async def test_bad_flow_requests_are_refused(
    oauth: OAuthDriver, body: dict[str, Any], status: int, words: str
) -> None:
    refused = await oauth.create_flow(**body)
    assert refused.status_code == status, refused.text
    assert words in refused.json()["message"]


async def test_connection_fields_are_checked_without_echoing_them(oauth: OAuthDriver) -> None:
    put = await oauth.client.put(
        "/2024-03/oauth-clients/shopify",
        json={"clientId": "shp-id", "clientSecret": "shp-secret"},
        headers=oauth.api_headers,
    )
    assert put.status_code == 200, put.text
    for shop in ("evil.com", "x.myshopify.com.evil.com", "a/b"):
        refused = await oauth.create_flow(app="shopify", connection={"shop": shop})
        assert refused.status_code == 400, refused.text
        message = refused.json()["message"]
        assert message.startswith("connection.shop: Shop subdomain does not have")
        assert shop not in message
    missing = await oauth.create_flow(app="shopify", connection={})
    assert missing.json()["message"] == "connection.shop: Shop subdomain is required."
    created = await oauth.create_flow(app="shopify", connection={"shop": "my-store"})
    assert created.status_code == 201, created.text
    start = await oauth.open_popup(created.json()["startUrl"])
    location = start.headers["location"]
    assert location.startswith("https://my-store.myshopify.com/admin/oauth/authorize?")
    assert "code_challenge" not in query_of(location)  # the catalog turns PKCE off for Shopify
    assert query_of(location)["scope"] == (
        "read_orders,write_orders,read_customers,write_customers"
    )


# adversarial cases ------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "?code=abc", "?state=&code=abc", "?state=unknown&code=a"])
async def test_case_1_no_or_unknown_state_is_400_without_a_token_request(
    oauth: OAuthDriver, sandbox: Sandbox, settings: Settings, query: str
) -> None:
    popup = await oauth.run(come_back=False)
    response = await oauth.client.get(f"/oauth/callback/sandbox{query}")
    assert_rejected_page(response, "Start again")
    assert 'data-flow=""' in response.text  # an unknown flow: nothing to tell the opener
    assert sandbox.stats()["token_requests"] == 0
    assert await count_credentials(settings) == 0
    assert (await oauth.flow(popup.flow_id))["status"] == "started"


@pytest.mark.parametrize("cookie", [None, "forged-value"])
async def test_case_2_a_valid_state_from_another_browser_is_400(
    oauth: OAuthDriver, sandbox: Sandbox, settings: Settings, cookie: str | None
) -> None:
    popup = await oauth.run(come_back=False)
    assert popup.callback_url is not None
    oauth.client.cookies.clear()
    if cookie is not None:
        oauth.client.cookies.set("eui_oauth", cookie, domain="embedded-ui.test")
    response = await oauth.come_back(popup.callback_url)
    assert_rejected_page(response, "did not come back to the browser window that started it")
    assert sandbox.stats()["token_requests"] == 0
    assert await count_credentials(settings) == 0
    # the victim's flow is left alone: the attacker cannot spend it
    assert (await oauth.flow(popup.flow_id))["status"] == "started"


async def test_case_3_a_replayed_callback_is_400_and_one_credential_exists(
    oauth: OAuthDriver, sandbox: Sandbox, settings: Settings
) -> None:
    popup = await oauth.run()
    assert popup.callback is not None and popup.callback.status_code == 200
    assert popup.callback_url is not None
    oauth.client.cookies.set(
        "eui_oauth", "anything", domain="embedded-ui.test"
    )  # even with a cookie
    replay = await oauth.come_back(popup.callback_url)
    assert_rejected_page(replay, "already used or is unknown")
    assert await count_credentials(settings) == 1
    assert sandbox.stats()["code_exchanges"] == 1
    assert (await oauth.flow(popup.flow_id))["status"] == "succeeded"


async def test_case_3_concurrent_replays_have_one_winner(
    oauth: OAuthDriver, sandbox: Sandbox, settings: Settings
) -> None:
    import asyncio

    popup = await oauth.run(come_back=False)
    assert popup.callback_url is not None
    url = popup.callback_url
    results = await asyncio.gather(*(oauth.come_back(url) for _ in range(4)))
    assert sorted(r.status_code for r in results) == [200, 400, 400, 400]
    assert await count_credentials(settings) == 1
    assert sandbox.stats()["code_exchanges"] == 1


async def test_case_4_a_state_older_than_ten_minutes_is_400_without_a_token_request(
    oauth: OAuthDriver, sandbox: Sandbox, settings: Settings
) -> None:
    popup = await oauth.run(come_back=False)
    assert popup.callback_url is not None
    await change_flow(settings, popup.flow_id, expires_at=utcnow() - timedelta(seconds=1))
    response = await oauth.come_back(popup.callback_url)
    assert_rejected_page(response, "longer than 10 minutes")
    assert sandbox.stats()["token_requests"] == 0
    assert await count_credentials(settings) == 0
    assert (await oauth.flow(popup.flow_id))["status"] == "failed"


async def test_an_expired_flow_cannot_start_and_reads_as_failed(
    oauth: OAuthDriver, settings: Settings
) -> None:
    created = await oauth.new_flow()
    await change_flow(settings, created["flowId"], expires_at=utcnow() - timedelta(seconds=1))
    assert await oauth.flow(created["flowId"]) == {
        "status": "failed",
        "message": "The sign-in took longer than 10 minutes. Start again.",
    }
    response = await oauth.open_popup(created["startUrl"])
    assert_rejected_page(response, "expired")


async def test_a_flow_starts_once(oauth: OAuthDriver) -> None:
    created = await oauth.new_flow()
    assert (await oauth.open_popup(created["startUrl"])).status_code == 302
    again = await oauth.open_popup(created["startUrl"])
    assert_rejected_page(again, "already used")
    assert_rejected_page(await oauth.open_popup("/oauth/start/" + "0" * 24), "not valid")


async def test_case_5_a_state_at_another_apps_callback_is_400(
    oauth: OAuthDriver, sandbox: Sandbox, settings: Settings
) -> None:
    popup = await oauth.run(come_back=False)
    assert popup.callback_url is not None
    wrong = popup.callback_url.replace("/oauth/callback/sandbox", "/oauth/callback/hubspot")
    response = await oauth.come_back(wrong)
    assert_rejected_page(response, "another app's callback")
    assert sandbox.stats()["token_requests"] == 0
    assert await count_credentials(settings) == 0


@pytest.mark.parametrize("mode", ["wrong", "omit"])
async def test_case_5_an_issuer_mismatch_is_400_without_a_token_request(
    oauth: OAuthDriver, sandbox: Sandbox, settings: Settings, mode: str
) -> None:
    sandbox.behave(authorize_iss=mode)
    popup = await oauth.run()
    assert popup.callback is not None
    assert_rejected_page(popup.callback, "did not come from Sandbox Commerce's authorization")
    assert sandbox.stats()["token_requests"] == 0
    assert await count_credentials(settings) == 0
    assert (await oauth.flow(popup.flow_id))["status"] == "failed"


def test_case_6_shopify_callbacks_are_checked_before_any_token_request() -> None:
    secret = "shpss_canary"
    connection = {"shop": "my-store"}

    def signed(**params: str) -> dict[str, str]:
        return {**params, "hmac": shopify_hmac(params, secret)}

    good = signed(code="c", shop="my-store.myshopify.com", state="s", timestamp="1")
    check_callback("shopify", good, connection, secret)
    for params in (
        signed(code="c", shop="evil.com", state="s"),
        signed(code="c", shop="my-store.myshopify.com.evil.com", state="s"),
        signed(code="c", shop="other.myshopify.com", state="s"),
        {**good, "hmac": "0" * 64},
        {**good, "code": "changed"},
        {k: v for k, v in good.items() if k != "hmac"},
    ):
        with pytest.raises(CallbackCheckFailed):
            check_callback("shopify", params, connection, secret)
    check_callback("sandbox", {"shop": "evil.com"}, {}, secret)  # other apps: no such rule


async def test_case_6_a_bad_shopify_callback_fails_the_flow_and_calls_nobody(
    oauth: OAuthDriver, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    calls: list[str] = []

    async def exchange(self: provider.ProviderClient, *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(self.token_url)
        return {"access_token": "never"}

    monkeypatch.setattr(provider.ProviderClient, "exchange_code", exchange)
    await oauth.client.put(
        "/2024-03/oauth-clients/shopify",
        json={"clientId": "shp-id", "clientSecret": "shpss_canary"},
        headers=oauth.api_headers,
    )
    created = await oauth.create_flow(app="shopify", connection={"shop": "my-store"})
    start = await oauth.open_popup(created.json()["startUrl"])
    state = query_of(start.headers["location"])["state"]
    params = {"code": "c", "shop": "evil.com", "state": state, "timestamp": "1"}
    params["hmac"] = shopify_hmac(params, "shpss_canary")
    response = await oauth.client.get(f"/oauth/callback/shopify?{urlencode(params)}")
    assert_rejected_page(response, "names another shop")
    assert calls == []
    assert await count_credentials(settings) == 0


async def test_case_7_injected_redirect_targets_are_ignored(
    oauth: OAuthDriver, sandbox: Sandbox
) -> None:
    created = await oauth.new_flow()
    start = await oauth.open_popup(
        created["startUrl"],
        return_to="https://evil.example/",
        redirect_uri="https://evil.example/cb",
        next="https://evil.example/",
    )
    location = start.headers["location"]
    assert location.startswith(f"{sandbox.url}/oauth/authorize?")
    assert "evil" not in location
    assert query_of(location)["redirect_uri"] == f"{PUBLIC_URL}/oauth/callback/sandbox"
    consent = await oauth.consent(location)
    callback_url = consent.headers["location"] + "&return_to=https%3A%2F%2Fevil.example%2F"
    page = await oauth.come_back(callback_url)
    assert page.status_code == 200, page.text
    assert "evil" not in page.text
    for response in oauth.responses:
        target = response.headers.get("location")
        assert target is None or target.startswith(f"{sandbox.url}/oauth/authorize?"), target


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("error500", "answered HTTP 500"),
        ("html", "did not answer with a token"),
        ("huge", "larger than 256 KiB"),
        ("slow", "did not answer within"),
    ],
)
async def test_case_8_a_failing_token_endpoint_stores_nothing_and_leaks_nothing(
    oauth: OAuthDriver,
    sandbox: Sandbox,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    words: str,
) -> None:
    caplog.set_level(logging.INFO)  # DEBUG adds the test browser's own wire logs
    monkeypatch.setattr(provider, "TOKEN_TIMEOUT_SECONDS", 0.5)
    sandbox.behave(token_endpoint=mode, slow_seconds=3)
    popup = await oauth.run()
    assert popup.callback is not None and popup.callback_url is not None
    assert_rejected_page(popup.callback, words)
    status = await oauth.flow(popup.flow_id)
    assert status["status"] == "failed" and words in status["message"]
    assert sandbox.stats()["token_requests"] == 1
    assert await count_credentials(settings) == 0
    code = query_of(popup.callback_url)["code"]
    logged = service_logs(caplog.records) + capsys.readouterr().out
    for secret in (sandbox.client_secret, code, "sbxat_huge", "Please sign in"):
        assert secret not in logged
        assert secret not in popup.callback.text
        assert secret not in status["message"]
    assert "oauth_exchange_failed" in logged


# cancel -------------------------------------------------------------------------------------


async def test_cancel_is_idempotent_and_final(oauth: OAuthDriver, sandbox: Sandbox) -> None:
    created = await oauth.new_flow()
    start = await oauth.open_popup(created["startUrl"])
    url = f"/modal/api/oauth/flows/{created['flowId']}/cancel"
    for _ in range(2):
        cancelled = await oauth.client.post(url, json={}, headers=oauth.user_headers)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json() == {"status": "cancelled"}
    consent = await oauth.consent(start.headers["location"])
    page = await oauth.come_back(consent.headers["location"])
    assert_rejected_page(page, "already used or is unknown")
    assert sandbox.stats()["token_requests"] == 0
    assert_rejected_page(await oauth.open_popup(created["startUrl"]), "already used")

    done = await oauth.run()
    after = await oauth.client.post(
        f"/modal/api/oauth/flows/{done.flow_id}/cancel", json={}, headers=oauth.user_headers
    )
    assert after.json()["status"] == "succeeded"  # a finished flow stays as it ended


# isolation ----------------------------------------------------------------------------------


async def test_flows_are_visible_only_to_their_user(
    oauth: OAuthDriver, client: Client, sandbox: Sandbox, make_tenant: Any
) -> None:
    created = await oauth.new_flow()
    flow_id = created["flowId"]
    neighbour = await make_driver(client, sandbox, await make_tenant(), "neighbour")
    other_tenant = await make_driver(client, sandbox, await make_tenant("globex"), "merchant")
    production = await make_driver(
        client, sandbox, await make_tenant("acme", "production"), "merchant"
    )
    for stranger in (neighbour, other_tenant, production):
        read = await client.get(f"/modal/api/oauth/flows/{flow_id}", headers=stranger.user_headers)
        assert read.status_code == 404, read.text
        cancel = await client.post(
            f"/modal/api/oauth/flows/{flow_id}/cancel", json={}, headers=stranger.user_headers
        )
        assert cancel.status_code == 404, cancel.text
    assert (await oauth.flow(flow_id))["status"] == "created"
    assert (await client.get(f"/modal/api/oauth/flows/{flow_id}")).status_code == 401
    api_key = await client.get(f"/modal/api/oauth/flows/{flow_id}", headers=oauth.api_headers)
    assert api_key.status_code == 401  # the modal's routes take user tokens only


async def test_oauth_clients_api_is_scoped_and_never_returns_the_secret(
    oauth: OAuthDriver, client: Client, make_tenant: Any, sandbox: Sandbox
) -> None:
    listed = await client.get("/2024-03/oauth-clients", headers=oauth.api_headers)
    assert listed.status_code == 200, listed.text
    [row] = listed.json()["data"]
    assert set(row) == {"app", "clientId", "createdAt", "updatedAt"}
    assert row["app"] == "sandbox" and row["clientId"] == "embedded-ui-demo"
    assert sandbox.client_secret not in listed.text

    for other in (await make_tenant("globex"), await make_tenant("acme", "production")):
        assert (await client.get("/2024-03/oauth-clients", headers=other.headers)).json() == {
            "data": []
        }
        deleted = await client.delete("/2024-03/oauth-clients/sandbox", headers=other.headers)
        assert deleted.status_code == 404, deleted.text
        replaced = await client.put(
            "/2024-03/oauth-clients/sandbox",
            json={"clientId": "theirs", "clientSecret": "theirs"},
            headers=other.headers,
        )
        assert replaced.status_code == 200
    mine = (await client.get("/2024-03/oauth-clients", headers=oauth.api_headers)).json()
    assert [r["clientId"] for r in mine["data"]] == ["embedded-ui-demo"]

    assert (await client.get("/2023-06/oauth-clients", headers=oauth.api_headers)).is_success
    for app, body, status in (
        ("nope", {"clientId": "a", "clientSecret": "b"}, 404),
        ("aftership", {"clientId": "a", "clientSecret": "b"}, 422),
        ("sandbox", {"clientId": " ", "clientSecret": "b"}, 400),
        ("sandbox", {"clientId": "a"}, 400),
    ):
        refused = await client.put(
            f"/2024-03/oauth-clients/{app}", json=body, headers=oauth.api_headers
        )
        assert refused.status_code == status, (app, body, refused.text)
    assert (await client.get("/2024-03/oauth-clients")).status_code == 401

    gone = await client.delete("/2024-03/oauth-clients/sandbox", headers=oauth.api_headers)
    assert gone.status_code == 200, gone.text
    again = await client.delete("/2024-03/oauth-clients/sandbox", headers=oauth.api_headers)
    assert again.status_code == 404


# canaries (case 15) --------------------------------------------------------------------------


async def test_case_15_no_secret_lands_in_a_response_a_column_the_audit_or_a_log(
    oauth: OAuthDriver,
    sandbox: Sandbox,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)  # DEBUG adds the test browser's own wire logs
    popup = await oauth.run()
    assert popup.callback is not None and popup.callback.status_code == 200
    assert popup.callback_url is not None
    status = await oauth.flow(popup.flow_id)
    await oauth.credentials()
    await oauth.client.get("/2024-03/oauth-clients", headers=oauth.api_headers)
    secret = await secret_of(settings, oauth, status["credentialId"])
    callback = query_of(popup.callback_url)
    canaries = {
        "client secret": sandbox.client_secret,
        "access token": secret["access_token"],
        "refresh token": secret["refresh_token"],
        "authorization code": callback["code"],
        "state": callback["state"],
    }

    bodies = "\n".join(r.text for r in oauth.responses if r.request.url.path != "/oauth/start")
    database = await every_row_as_text(settings.database_url)
    audit = database  # the audit rows are in it too
    logs = service_logs(caplog.records) + capsys.readouterr().out
    assert "oauth.connect" in audit and "credential.create" in audit
    for name, canary in canaries.items():
        assert canary not in bodies, name
        assert canary not in database, name
        assert canary not in audit, name
        assert canary not in logs, name


def test_the_callback_page_script_and_style_match_their_hashes() -> None:
    import base64
    import re

    from embedded_ui.oauth import page

    rendered = page.render_page(ok=True, message="x", origin=PUBLIC_URL, flow_id="f")
    script = re.search(r"<script>(.*)</script>", rendered, re.S)
    style = re.search(r"<style>(.*)</style>", rendered, re.S)
    assert script and style
    for kind, body in (("script-src", script.group(1)), ("style-src", style.group(1))):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{kind} 'sha256-{digest}'" in CSP
    assert hmac.compare_digest(page.CSP, CSP)
