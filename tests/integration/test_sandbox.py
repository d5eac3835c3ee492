"""The sandbox app (`embedded-ui sandbox`), through HTTP only.

Most tests drive ``create_sandbox_app`` with Litestar's AsyncTestClient; webhook tests run a tiny
loopback HTTP receiver in a thread; the last test starts the real command as a process and talks
to it with httpx. The OAuth tests play the client by hand with httpx so that every parameter the
server sees is visible here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar.testing import AsyncTestClient

from embedded_ui.sandbox import SandboxConfig, create_sandbox_app
from embedded_ui.sandbox import oauth as sandbox_oauth
from embedded_ui.settings import Settings, SettingsError

CLIENT_ID = "embedded-ui-demo"
CLIENT_SECRET = "test-client-secret"
REDIRECT_URI = "http://127.0.0.1:8000/oauth/callback/sandbox"
OTHER_REDIRECT_URI = "http://127.0.0.1:9000/oauth/callback/sandbox"
API_KEY = "sbx_" + "A1b2C3d4" * 3
ADMIN = {"X-Sandbox-Admin": "test-admin-secret"}
BASE_URL = "http://127.0.0.1:8001"

Client = AsyncTestClient[Any]


# fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def config() -> SandboxConfig:
    return SandboxConfig(
        public_url=BASE_URL,
        client_secret=CLIENT_SECRET,
        client_name="Fulfillmently",
        redirect_uris=(REDIRECT_URI, OTHER_REDIRECT_URI),
        api_key=API_KEY,
        admin_secret=ADMIN["X-Sandbox-Admin"],
    )


@pytest.fixture
async def client(config: SandboxConfig) -> AsyncIterator[Client]:
    async with AsyncTestClient(create_sandbox_app(config), base_url=BASE_URL) as test_client:
        yield test_client


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_params(challenge: str | None, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "orders customers",
        "state": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {k: v for k, v in params.items() if v is not None}


def consent_id(page: httpx.Response) -> str:
    assert page.status_code == 200, page.text
    match = re.search(r'name="consent" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def redirect_query(response: httpx.Response, expected_uri: str = REDIRECT_URI) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.split("?", 1)[0] == expected_uri
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def decide(
    client: Client, page: httpx.Response, decision: str = "approve", account: str = "acct_demo"
) -> httpx.Response:
    return await client.post(
        "/oauth/authorize",
        data={"consent": consent_id(page), "decision": decision, "account": account},
        follow_redirects=False,
    )


async def authorize(
    client: Client, verifier_challenge: tuple[str, str] | None = None, **overrides: str | None
) -> tuple[str, str]:
    """Run the browser half: consent page, Approve. Returns (code, verifier)."""
    verifier, challenge = verifier_challenge or pkce()
    params = authorize_params(challenge, **overrides)
    page = await client.get("/oauth/authorize", params=params)
    query = redirect_query(await decide(client, page), params["redirect_uri"])
    assert query["state"] == params["state"]
    return query["code"], verifier


async def exchange(
    client: Client,
    code: str,
    verifier: str | None,
    redirect_uri: str = REDIRECT_URI,
    method: str = "basic",
) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        form["code_verifier"] = verifier
    return await token_request(client, form, method)


async def token_request(
    client: Client, form: dict[str, str], method: str = "basic"
) -> httpx.Response:
    if method == "basic":
        return await client.post("/oauth/token", data=form, auth=(CLIENT_ID, CLIENT_SECRET))
    return await client.post(
        "/oauth/token", data={**form, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    )


async def connect(client: Client, **overrides: str | None) -> dict[str, Any]:
    code, verifier = await authorize(client, **overrides)
    response = await exchange(client, code, verifier)
    assert response.status_code == 200, response.text
    token: dict[str, Any] = response.json()
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def stats(client: Client) -> dict[str, Any]:
    response = await client.get("/_sandbox/stats", headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# OAuth: the happy path -------------------------------------------------------------------


async def test_consent_page_is_accessible_self_contained_and_unframeable(client: Client) -> None:
    _, challenge = pkce()
    page = await client.get("/oauth/authorize", params=authorize_params(challenge))

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="en">' in html
    assert "<title>Authorize Fulfillmently" in html
    assert "<strong>Fulfillmently</strong> wants to access your store" in html
    assert "<strong>orders</strong>" in html and "<strong>customers</strong>" in html
    assert '<form method="post" action="/oauth/authorize">' in html
    assert re.search(r'<button type="submit" name="decision" value="approve"[^>]*>Approve<', html)
    assert re.search(r'<button type="submit" name="decision" value="deny"[^>]*>Deny<', html)
    assert "Demo Store" in html
    assert not re.search(r"(src|href)=", html), "no external (or any) linked assets"

    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "form-action 'self' http://127.0.0.1:8000" in csp  # the redirect after the POST
    style = re.search(r"<style>(.*?)</style>", html, re.DOTALL)
    assert style
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"


async def test_consent_page_escapes_what_it_shows(config: SandboxConfig) -> None:
    app = create_sandbox_app(replace(config, client_name="<script>alert(1)</script>"))
    async with AsyncTestClient(app, base_url=BASE_URL) as client:
        _, challenge = pkce()
        page = await client.get("/oauth/authorize", params=authorize_params(challenge))
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


@pytest.mark.parametrize("method", ["basic", "post"])
async def test_authorization_code_flow_with_pkce(client: Client, method: str) -> None:
    verifier, challenge = pkce()
    params = authorize_params(challenge)
    page = await client.get("/oauth/authorize", params=params)
    approved = await decide(client, page)
    query = redirect_query(approved)
    assert query["state"] == params["state"]
    assert query["iss"] == BASE_URL  # RFC 9207
    assert set(query) == {"code", "state", "iss"}

    response = await exchange(client, query["code"], verifier, method=method)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "orders customers"
    assert token["expires_in"] == 3600
    assert token["access_token"] and token["refresh_token"]

    me = await client.get("/api/me", headers=bearer(token["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json() == {"id": "acct_demo", "name": "Demo Store", "email": "owner@demo-store.test"}

    counted = await stats(client)
    assert counted["authorize_requests"] == 1
    assert counted["consents_approved"] == 1
    assert counted["token_requests"] == counted["code_exchanges"] == 1
    assert counted["refresh_requests"] == 0
    assert counted["api_calls"] == 1


async def test_a_narrower_scope_is_granted_and_enforced(client: Client) -> None:
    token = await connect(client, scope="customers")
    assert token["scope"] == "customers"
    headers = bearer(token["access_token"])
    assert (await client.get("/api/customers", headers=headers)).status_code == 200
    refused = await client.get("/api/orders", headers=headers)
    assert refused.status_code == 403
    assert refused.json() == {"message": "This access token lacks the orders scope."}


async def test_the_token_carries_the_account_chosen_on_the_consent_page(client: Client) -> None:
    created = await client.post("/_sandbox/accounts", json={"name": "Second Shop"}, headers=ADMIN)
    assert created.status_code == 201, created.text
    second = created.json()

    _, challenge = pkce()
    page = await client.get("/oauth/authorize", params=authorize_params(challenge))
    assert '<select id="account" name="account">' in page.text
    assert "Second Shop" in page.text

    code, verifier = await _approve_as(client, second["id"])
    token = (await exchange(client, code, verifier)).json()
    me = await client.get("/api/me", headers=bearer(token["access_token"]))
    assert me.json()["name"] == "Second Shop"


async def _approve_as(client: Client, account_id: str) -> tuple[str, str]:
    verifier, challenge = pkce()
    page = await client.get("/oauth/authorize", params=authorize_params(challenge))
    query = redirect_query(await decide(client, page, account=account_id))
    return query["code"], verifier


# OAuth: refusals -------------------------------------------------------------------------


async def test_deny_redirects_with_access_denied_and_the_state(client: Client) -> None:
    _, challenge = pkce()
    params = authorize_params(challenge)
    page = await client.get("/oauth/authorize", params=params)
    query = redirect_query(await decide(client, page, decision="deny"))
    assert query["error"] == "access_denied"
    assert query["state"] == params["state"]
    assert query["iss"] == BASE_URL
    assert "code" not in query
    assert (await stats(client))["consents_denied"] == 1


@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "PKCE is required"),
        ({"code_challenge_method": "plain"}, "Only code_challenge_method=S256"),
        ({"code_challenge_method": None}, "Only code_challenge_method=S256"),
        ({"code_challenge": "too-short"}, "Invalid 'code_challenge'"),
    ],
    ids=["missing", "plain", "method-omitted", "malformed"],
)
async def test_authorization_without_s256_pkce_is_refused(
    client: Client, overrides: dict[str, str | None], description: str
) -> None:
    _, challenge = pkce()
    params = authorize_params(challenge, **overrides)
    response = await client.get("/oauth/authorize", params=params, follow_redirects=False)
    query = redirect_query(response)
    assert query["error"] == "invalid_request"
    assert query["state"] == params["state"]
    assert query["error_description"].startswith(description)


async def test_token_exchange_requires_the_matching_code_verifier(client: Client) -> None:
    code, verifier = await authorize(client)
    missing = await exchange(client, code, None)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"

    wrong = await exchange(client, code, pkce()[0])
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "invalid_grant", "error_description": "Code challenge failed."}

    assert (await exchange(client, code, verifier)).status_code == 200


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:8000/oauth/callback/sandbox/",
        "http://127.0.0.1:8000/oauth/callback/sandbox?next=/evil",
        "http://127.0.0.1:8000/oauth/callback/sandboxx",
        "http://127.0.0.1:8001/oauth/callback/sandbox",
        "https://evil.example/oauth/callback/sandbox",
    ],
)
async def test_an_unregistered_redirect_uri_is_refused_without_redirecting(
    client: Client, redirect_uri: str
) -> None:
    _, challenge = pkce()
    params = authorize_params(challenge, redirect_uri=redirect_uri)
    response = await client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "cannot continue" in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_a_missing_redirect_uri_or_unknown_client_is_refused(client: Client) -> None:
    _, challenge = pkce()
    for overrides in (
        {"redirect_uri": None},
        {"client_id": "someone-else"},
        {"client_id": "caf\u00e9"},
        {"client_id": None},
    ):
        params = authorize_params(challenge, **overrides)
        response = await client.get("/oauth/authorize", params=params, follow_redirects=False)
        assert response.status_code == 400, overrides
        assert "location" not in response.headers


async def test_an_unknown_scope_is_refused_back_to_the_client(client: Client) -> None:
    _, challenge = pkce()
    params = authorize_params(challenge, scope="orders admin")
    response = await client.get("/oauth/authorize", params=params, follow_redirects=False)
    query = redirect_query(response)
    assert query["error"] == "invalid_scope"


async def test_the_token_request_must_repeat_the_exact_redirect_uri(client: Client) -> None:
    code, verifier = await authorize(client, redirect_uri=OTHER_REDIRECT_URI)
    wrong = await exchange(client, code, verifier, redirect_uri=REDIRECT_URI)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    right = await exchange(client, code, verifier, redirect_uri=OTHER_REDIRECT_URI)
    assert right.status_code == 200, right.text


async def test_a_code_is_single_use_and_a_replay_revokes_its_tokens(client: Client) -> None:
    code, verifier = await authorize(client)
    first = await exchange(client, code, verifier)
    assert first.status_code == 200
    token = first.json()

    replay = await exchange(client, code, verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"

    revoked = await client.get("/api/me", headers=bearer(token["access_token"]))
    assert revoked.status_code == 401
    refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    assert (await token_request(client, refresh)).json()["error"] == "invalid_grant"


async def test_a_code_expires(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_oauth, "CODE_TTL", 0)
    code, verifier = await authorize(client)
    expired = await exchange(client, code, verifier)
    assert expired.status_code == 400
    assert expired.json()["error"] == "invalid_grant"


async def test_a_consent_page_answers_once(client: Client) -> None:
    _, challenge = pkce()
    page = await client.get("/oauth/authorize", params=authorize_params(challenge))
    assert (await decide(client, page)).status_code == 302
    again = await decide(client, page)
    assert again.status_code == 400
    assert "expired or was already used" in again.text
    forged = await client.post("/oauth/authorize", data={"consent": "x", "decision": "approve"})
    assert forged.status_code == 400


async def test_the_token_endpoint_authenticates_the_client(client: Client) -> None:
    code, verifier = await authorize(client)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    form["code_verifier"] = verifier
    wrong = await client.post("/oauth/token", data=form, auth=(CLIENT_ID, "not-the-secret"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    anonymous = await client.post("/oauth/token", data={**form, "client_id": CLIENT_ID})
    assert anonymous.status_code in (400, 401)
    assert anonymous.json()["error"] == "invalid_client"
    unsupported = await token_request(client, {"grant_type": "password"})
    assert unsupported.json()["error"] == "unsupported_grant_type"
    assert (await exchange(client, code, verifier)).status_code == 200


# OAuth: refresh and expiry ---------------------------------------------------------------


async def test_refresh_rotates_and_the_old_refresh_token_stops_working(client: Client) -> None:
    token = await connect(client)
    refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    rotated_response = await token_request(client, refresh, method="post")
    assert rotated_response.status_code == 200, rotated_response.text
    rotated = rotated_response.json()
    assert rotated["refresh_token"] != token["refresh_token"]
    assert rotated["access_token"] != token["access_token"]
    assert rotated["scope"] == "orders customers"

    reused = await token_request(client, refresh)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"

    me = await client.get("/api/me", headers=bearer(rotated["access_token"]))
    assert me.status_code == 200
    again = {"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]}
    assert (await token_request(client, again)).status_code == 200

    counted = await stats(client)
    assert counted["refresh_requests"] == 3
    assert counted["token_requests"] == 4


async def test_access_tokens_expire_after_the_configured_ttl(config: SandboxConfig) -> None:
    app = create_sandbox_app(replace(config, token_ttl=1))
    async with AsyncTestClient(app, base_url=BASE_URL) as client:
        token = await connect(client)
        assert token["expires_in"] == 1
        headers = bearer(token["access_token"])
        assert (await client.get("/api/me", headers=headers)).status_code == 200
        await asyncio.sleep(1.1)
        expired = await client.get("/api/me", headers=headers)
        assert expired.status_code == 401
        assert expired.json() == {"message": "The access token expired."}
        assert 'error="invalid_token"' in expired.headers["www-authenticate"]

        refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
        fresh = (await token_request(client, refresh)).json()
        assert (await client.get("/api/me", headers=bearer(fresh["access_token"]))).is_success


async def test_admin_can_expire_and_revoke_tokens(client: Client) -> None:
    token = await connect(client)
    headers = bearer(token["access_token"])
    expired = await client.post("/_sandbox/tokens/expire", headers=ADMIN)
    assert expired.json() == {"expired": 1}
    assert (await client.get("/api/me", headers=headers)).status_code == 401

    refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    fresh = (await token_request(client, refresh)).json()
    revoked = await client.post(
        "/_sandbox/tokens/revoke", json={"account_id": "acct_demo"}, headers=ADMIN
    )
    assert revoked.json()["revoked"] >= 1
    assert (await client.get("/api/me", headers=bearer(fresh["access_token"]))).status_code == 401
    again = {"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]}
    assert (await token_request(client, again)).json()["error"] == "invalid_grant"


# misbehaviour switches -------------------------------------------------------------------


async def set_behaviour(client: Client, **settings: Any) -> dict[str, Any]:
    response = await client.post("/_sandbox/behaviour", json=settings, headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_token_endpoint_can_answer_500(client: Client) -> None:
    code, verifier = await authorize(client)
    await set_behaviour(client, token_endpoint="error500")
    response = await exchange(client, code, verifier)
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/plain")
    # The code was not consumed: the misbehaving answer came before Authlib.
    await set_behaviour(client, token_endpoint="normal")
    assert (await exchange(client, code, verifier)).status_code == 200


async def test_token_endpoint_can_answer_html_with_200(client: Client) -> None:
    await set_behaviour(client, token_endpoint="html")
    code, verifier = await authorize(client)
    response = await exchange(client, code, verifier)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Please sign in</h1>" in response.text


async def test_token_endpoint_can_answer_ten_megabytes(client: Client) -> None:
    await set_behaviour(client, token_endpoint="huge")
    code, verifier = await authorize(client)
    response = await exchange(client, code, verifier)
    assert response.status_code == 200
    assert len(response.content) == 10 * 1024 * 1024
    assert "content-length" not in response.headers  # streamed: a client cannot trust a length
    assert response.content.startswith(b'{"access_token":')
    assert json.loads(response.content)["access_token"] == "sbxat_huge"


async def test_token_endpoint_can_be_slow(client: Client) -> None:
    behaviour = await set_behaviour(client, token_endpoint="slow", slow_seconds=0.4)
    assert behaviour["slow_seconds"] == 0.4
    code, verifier = await authorize(client)
    started = time.monotonic()
    response = await exchange(client, code, verifier)
    assert time.monotonic() - started >= 0.4
    assert response.status_code == 200  # slow, then a real answer


async def test_slow_defaults_to_twenty_seconds(client: Client) -> None:
    assert (await set_behaviour(client, token_endpoint="slow"))["slow_seconds"] == 20.0


async def test_misbehaviour_can_be_limited_to_some_requests_and_reset(client: Client) -> None:
    await set_behaviour(client, token_endpoint="error500", times=2)
    refresh = {"grant_type": "refresh_token", "refresh_token": "nope"}
    assert (await token_request(client, refresh)).status_code == 500
    assert (await token_request(client, refresh)).status_code == 500
    assert (await token_request(client, refresh)).status_code == 400  # back to normal
    counted = await stats(client)
    assert counted["token_requests"] == counted["refresh_requests"] == 3
    assert counted["behaviour"]["token_endpoint"] == "normal"

    await set_behaviour(client, token_endpoint="html")
    reset = await client.post("/_sandbox/reset", headers=ADMIN)
    assert reset.status_code == 200
    assert (await stats(client))["token_requests"] == 0
    assert (await stats(client))["behaviour"]["token_endpoint"] == "normal"


@pytest.mark.parametrize(
    "settings",
    [
        {"token_endpoint": "teapot"},
        {"token_endpoint": "slow", "times": 0},
        {"times": 2},
        {"slow_seconds": 500},
        {"authorize_iss": "sometimes"},
        {"colour": "blue"},
    ],
)
async def test_bad_behaviour_settings_are_refused(client: Client, settings: dict[str, Any]) -> None:
    response = await client.post("/_sandbox/behaviour", json=settings, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["message"]


@pytest.mark.parametrize(
    ("mode", "expected"), [("omit", None), ("wrong", "https://issuer.invalid")]
)
async def test_the_authorization_response_issuer_can_be_omitted_or_wrong(
    client: Client, mode: str, expected: str | None
) -> None:
    await set_behaviour(client, authorize_iss=mode)
    _, challenge = pkce()
    page = await client.get("/oauth/authorize", params=authorize_params(challenge))
    assert redirect_query(await decide(client, page)).get("iss") == expected


async def test_metadata_and_health(client: Client) -> None:
    metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["issuer"] == BASE_URL
    assert metadata["token_endpoint"] == f"{BASE_URL}/oauth/token"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert (await client.get("/health")).json() == {"status": "ok"}


# admin routes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_sandbox/stats"),
        ("GET", "/_sandbox/behaviour"),
        ("POST", "/_sandbox/behaviour"),
        ("POST", "/_sandbox/reset"),
        ("GET", "/_sandbox/accounts"),
        ("POST", "/_sandbox/accounts"),
        ("GET", "/_sandbox/deliveries"),
        ("POST", "/_sandbox/deliveries/dlv_x/redeliver"),
        ("POST", "/_sandbox/tokens/expire"),
        ("POST", "/_sandbox/tokens/revoke"),
    ],
)
async def test_admin_routes_refuse_without_the_admin_header(
    client: Client, method: str, path: str
) -> None:
    body = {"token_endpoint": "error500"} if path.endswith("behaviour") else None
    for headers in ({}, {"X-Sandbox-Admin": "wrong"}, {"X-Sandbox-Admin": ""}, bearer(API_KEY)):
        response = await client.request(method, path, headers=headers, json=body)
        assert response.status_code == 401, (headers, response.text)
        assert "X-Sandbox-Admin" in response.json()["message"]
    assert (await stats(client))["behaviour"]["token_endpoint"] == "normal"


# the commerce API ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": "Bearer sbx_notTheKeyAtAll12345"},
        {"Authorization": "Bearer sbxat_made_up"},
        {"Authorization": b"Bearer sbx_\xe9t\xe9"},
    ],
)
async def test_the_api_refuses_missing_or_bad_credentials(
    client: Client, headers: dict[str, str | bytes]
) -> None:
    response = await client.get("/api/me", headers=headers)
    assert response.status_code == 401
    assert set(response.json()) == {"message"}
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_the_api_key_works_and_the_scheme_is_case_insensitive(client: Client) -> None:
    response = await client.get("/api/me", headers={"Authorization": f"bearer {API_KEY}"})
    assert response.status_code == 200
    assert response.json()["name"] == "Demo Store"


async def test_order_statuses_are_the_option_source(client: Client) -> None:
    response = await client.get("/api/order-statuses", headers=bearer(API_KEY))
    assert response.json() == {
        "data": [
            {"key": "pending", "name": "Pending"},
            {"key": "shipped", "name": "Shipped"},
            {"key": "delivered", "name": "Delivered"},
            {"key": "cancelled", "name": "Cancelled"},
        ]
    }


async def test_customers_can_be_created_listed_and_read(client: Client) -> None:
    headers = bearer(API_KEY)
    created = await client.post(
        "/api/customers", json={"email": "ada@example.com", "name": "Ada"}, headers=headers
    )
    assert created.status_code == 201, created.text
    customer = created.json()
    assert customer["email"] == "ada@example.com" and customer["name"] == "Ada"
    assert customer["id"].startswith("cus_")

    listed = (await client.get("/api/customers", headers=headers)).json()
    assert listed == {"data": [customer]}
    found = await client.get("/api/customers", params={"email": "ADA@example.com"}, headers=headers)
    assert found.json()["data"] == [customer]
    read = await client.get(f"/api/customers/{customer['id']}", headers=headers)
    assert read.json() == customer

    duplicate = await client.post(
        "/api/customers", json={"email": "ada@example.com"}, headers=headers
    )
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.json()["message"]
    for bad in ({}, {"email": "not-an-email"}, {"email": 5}):
        invalid = await client.post("/api/customers", json=bad, headers=headers)
        assert invalid.status_code == 422, bad
        assert "email" in invalid.json()["message"]


async def test_orders_crud_and_status_updates(client: Client) -> None:
    headers = bearer(API_KEY)
    customer = (
        await client.post("/api/customers", json={"email": "bo@example.com"}, headers=headers)
    ).json()
    created = await client.post(
        "/api/orders",
        json={
            "customer_id": customer["id"],
            "total": 19.9,
            "currency": "eur",
            "items": [{"sku": "TEE-1", "quantity": 2}],
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "pending"
    assert order["total"] == "19.90" and order["currency"] == "EUR"
    assert order["customer_id"] == customer["id"]
    assert order["number"] == 1001
    assert order["id"].startswith("ord_")

    second = (await client.post("/api/orders", json={}, headers=headers)).json()
    assert second["number"] == 1002 and second["customer_id"] is None

    listed = (await client.get("/api/orders", headers=headers)).json()["data"]
    assert [o["id"] for o in listed] == [order["id"], second["id"]]
    assert (await client.get(f"/api/orders/{order['id']}", headers=headers)).json() == order

    updated = await client.put(
        f"/api/orders/{order['id']}/status", json={"status": "shipped"}, headers=headers
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["status"] == "shipped"
    shipped = await client.get("/api/orders", params={"status": "shipped"}, headers=headers)
    assert [o["id"] for o in shipped.json()["data"]] == [order["id"]]

    missing = await client.get("/api/orders/ord_missing", headers=headers)
    assert missing.status_code == 404
    assert missing.json() == {"message": "No order ord_missing."}
    put_missing = await client.put(
        "/api/orders/ord_missing/status", json={"status": "shipped"}, headers=headers
    )
    assert put_missing.status_code == 404


@pytest.mark.parametrize("body", [{"status": "lost"}, {"status": ""}, {"status": None}, {}])
async def test_a_bad_order_status_is_422_with_a_message(
    client: Client, body: dict[str, Any]
) -> None:
    headers = bearer(API_KEY)
    order = (await client.post("/api/orders", json={}, headers=headers)).json()
    response = await client.put(f"/api/orders/{order['id']}/status", json=body, headers=headers)
    assert response.status_code == 422
    message = response.json()["message"]
    assert message.startswith("status must be one of pending, shipped, delivered, cancelled")
    unchanged = await client.get(f"/api/orders/{order['id']}", headers=headers)
    assert unchanged.json()["status"] == "pending"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"total": "abc"}, 422),
        ({"total": -1}, 422),
        ({"total": True}, 422),
        ({"currency": "euro"}, 422),
        ({"status": "lost"}, 422),
        ({"customer_id": "cus_nobody"}, 422),
        ({"items": "many"}, 422),
    ],
)
async def test_bad_orders_are_refused_with_a_message(
    client: Client, body: dict[str, Any], status: int
) -> None:
    response = await client.post("/api/orders", json=body, headers=bearer(API_KEY))
    assert response.status_code == status
    assert response.json()["message"]


async def test_bad_json_is_a_400_with_a_message(client: Client) -> None:
    headers = {**bearer(API_KEY), "Content-Type": "application/json"}
    for content in (b"{nope", b"[1, 2]"):
        response = await client.post("/api/orders", content=content, headers=headers)
        assert response.status_code == 400
        assert response.json()["message"].startswith("The body")


async def test_accounts_do_not_see_each_other(client: Client) -> None:
    other = (
        await client.post(
            "/_sandbox/accounts", json={"name": "Other", "email": "o@o.test"}, headers=ADMIN
        )
    ).json()
    assert re.fullmatch(r"sbx_[A-Za-z0-9]{24}", other["api_key"])
    mine = (await client.post("/api/orders", json={}, headers=bearer(API_KEY))).json()

    theirs = bearer(other["api_key"])
    assert (await client.get("/api/me", headers=theirs)).json()["email"] == "o@o.test"
    assert (await client.get(f"/api/orders/{mine['id']}", headers=theirs)).status_code == 404
    assert (await client.get("/api/orders", headers=theirs)).json() == {"data": []}
    update = await client.put(
        f"/api/orders/{mine['id']}/status", json={"status": "cancelled"}, headers=theirs
    )
    assert update.status_code == 404
    accounts = (await client.get("/_sandbox/accounts", headers=ADMIN)).json()["data"]
    assert [a["name"] for a in accounts] == ["Demo Store", "Other"]


async def test_webhook_subscriptions_can_be_created_listed_and_deleted(client: Client) -> None:
    headers = bearer(API_KEY)
    created = await client.post(
        "/api/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "event": "order.created"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    subscription = created.json()
    assert subscription["id"].startswith("wh_")
    assert subscription["secret"].startswith("sbxwh_")

    listed = (await client.get("/api/webhooks", headers=headers)).json()["data"]
    assert listed == [{k: v for k, v in subscription.items() if k != "secret"}]

    deleted = await client.delete(f"/api/webhooks/{subscription['id']}", headers=headers)
    assert deleted.status_code == 204
    assert (await client.get("/api/webhooks", headers=headers)).json() == {"data": []}
    again = await client.delete(f"/api/webhooks/{subscription['id']}", headers=headers)
    assert again.status_code == 404

    for bad in (
        {"url": "ftp://x/y", "event": "order.created"},
        {"url": "http://127.0.0.1/x", "event": "order.exploded"},
        {"event": "order.created"},
    ):
        refused = await client.post("/api/webhooks", json=bad, headers=headers)
        assert refused.status_code == 422, bad
        assert refused.json()["message"]


# webhook deliveries ----------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 204

    async def wait(self, count: int) -> list[Received]:
        """The requests so far, once at least `count` arrived (10 s at most)."""
        for _ in range(500):
            if len(self.received) >= count:
                break
            await asyncio.sleep(0.02)
        assert len(self.received) >= count, self.received
        return self.received


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A loopback HTTP server recording every POST, in a thread, closed afterwards."""
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            target = box[0]
            target.received.append(Received(self.path, dict(self.headers.items()), body))
            self.send_response(target.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def subscribe(client: Client, url: str, event: str, token: str = API_KEY) -> dict[str, Any]:
    created = await client.post(
        "/api/webhooks", json={"url": url, "event": event}, headers=bearer(token)
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def test_order_created_is_delivered_signed(client: Client, receiver: Receiver) -> None:
    token = (await connect(client))["access_token"]
    hook = await subscribe(client, f"{receiver.url}/hooks/orders", "order.created", token)
    await subscribe(client, f"{receiver.url}/hooks/customers", "customer.created", token)

    order = (await client.post("/api/orders", json={"total": 5}, headers=bearer(token))).json()
    [delivery] = await receiver.wait(1)

    assert delivery.path == "/hooks/orders"
    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.headers["X-Sandbox-Event"] == "order.created"
    assert delivery.headers["X-Sandbox-Delivery"].startswith("dlv_")
    expected = signature(hook["secret"], delivery.body)
    assert hmac.compare_digest(delivery.headers["X-Sandbox-Signature"], expected)
    assert delivery.headers["X-Sandbox-Signature"] != signature("other", delivery.body)

    payload = json.loads(delivery.body)
    assert set(payload) == {"id", "event", "created_at", "data"}
    assert payload["event"] == "order.created"
    assert payload["id"].startswith("evt_")
    assert payload["data"] == order

    counted = await stats(client)
    assert counted["webhook_deliveries"] == 1
    assert counted["webhook_failures"] == 0
    [recorded] = (await client.get("/_sandbox/deliveries", headers=ADMIN)).json()["data"]
    assert recorded["id"] == delivery.headers["X-Sandbox-Delivery"]
    assert recorded["attempts"][0]["status_code"] == 204
    assert recorded["attempts"][0]["ok"] is True


async def test_status_updates_and_new_customers_are_delivered(
    client: Client, receiver: Receiver
) -> None:
    headers = bearer(API_KEY)
    await subscribe(client, receiver.url, "order.updated")
    await subscribe(client, receiver.url, "customer.created")
    order = (await client.post("/api/orders", json={}, headers=headers)).json()
    await client.put(
        f"/api/orders/{order['id']}/status", json={"status": "delivered"}, headers=headers
    )
    await client.post("/api/customers", json={"email": "cy@example.com"}, headers=headers)

    updated, customer = await receiver.wait(2)
    update_payload = json.loads(updated.body)
    assert update_payload["event"] == "order.updated"
    assert update_payload["data"]["status"] == "delivered"
    assert update_payload["data"]["previous_status"] == "pending"
    assert json.loads(customer.body)["data"]["email"] == "cy@example.com"
    assert updated.headers["X-Sandbox-Delivery"] != customer.headers["X-Sandbox-Delivery"]


async def test_a_redelivery_repeats_the_delivery_id(client: Client, receiver: Receiver) -> None:
    await subscribe(client, receiver.url, "order.created")
    await client.post("/api/orders", json={}, headers=bearer(API_KEY))
    [first] = await receiver.wait(1)
    delivery_id = first.headers["X-Sandbox-Delivery"]

    again = await client.post(f"/_sandbox/deliveries/{delivery_id}/redeliver", headers=ADMIN)
    assert again.status_code == 200, again.text
    assert len(again.json()["attempts"]) == 2
    _, second = await receiver.wait(2)
    assert second.headers["X-Sandbox-Delivery"] == delivery_id
    assert second.body == first.body
    assert second.headers["X-Sandbox-Signature"] == first.headers["X-Sandbox-Signature"]


async def test_failed_deliveries_are_recorded(client: Client, receiver: Receiver) -> None:
    receiver.status = 500
    await subscribe(client, receiver.url, "order.created")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    await subscribe(client, dead, "order.created")

    await client.post("/api/orders", json={}, headers=bearer(API_KEY))
    await receiver.wait(1)
    for _ in range(200):
        if (await stats(client))["webhook_deliveries"] >= 2:
            break
        await asyncio.sleep(0.05)
    counted = await stats(client)
    assert counted["webhook_deliveries"] == counted["webhook_failures"] == 2
    attempts = [
        d["attempts"][0]
        for d in (await client.get("/_sandbox/deliveries", headers=ADMIN)).json()["data"]
    ]
    assert {a["status_code"] for a in attempts} == {500, None}
    assert any(a["error"] for a in attempts)


async def test_reset_forgets_data_and_grants(client: Client) -> None:
    token = await connect(client)
    await client.post("/api/orders", json={}, headers=bearer(API_KEY))
    await client.post("/_sandbox/accounts", json={"name": "Gone"}, headers=ADMIN)
    assert (await client.post("/_sandbox/reset", headers=ADMIN)).status_code == 200

    assert (await client.get("/api/orders", headers=bearer(API_KEY))).json() == {"data": []}
    assert (await client.get("/api/me", headers=bearer(token["access_token"]))).status_code == 401
    accounts = (await client.get("/_sandbox/accounts", headers=ADMIN)).json()["data"]
    assert [(a["id"], a["api_key"]) for a in accounts] == [("acct_demo", API_KEY)]


async def test_every_response_carries_security_headers(client: Client) -> None:
    for response in (
        await client.get("/api/me"),
        await client.get("/health"),
        await client.get("/nowhere"),
    ):
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert (await client.get("/nowhere")).json() == {"message": "Not Found"}


# configuration -----------------------------------------------------------------------------


def test_configuration_defaults_and_generated_secrets() -> None:
    config = SandboxConfig.from_env({})
    assert (config.host, config.port, config.public_url) == ("127.0.0.1", 8001, BASE_URL)
    assert config.client_id == "embedded-ui-demo"
    assert config.redirect_uris == ("http://127.0.0.1:8000/oauth/callback/sandbox",)
    assert re.fullmatch(r"sbx_[A-Za-z0-9]{24}", config.api_key)
    assert config.admin_secret and config.token_ttl == 3600
    assert SandboxConfig.from_env({}).api_key != config.api_key
    assert SandboxConfig.from_env(config.to_env()) == config
    assert API_KEY not in repr(replace(config, api_key=API_KEY))


def test_configuration_reads_its_variables() -> None:
    config = SandboxConfig.from_env(
        {
            "EMBEDDED_UI_SANDBOX_PORT": "9100",
            "EMBEDDED_UI_SANDBOX_HOST": "0.0.0.0",
            "EMBEDDED_UI_SANDBOX_REDIRECT_URIS": f"{REDIRECT_URI}, {OTHER_REDIRECT_URI}",
            "EMBEDDED_UI_SANDBOX_API_KEY": API_KEY,
            "EMBEDDED_UI_SANDBOX_TOKEN_TTL": "2",
        }
    )
    assert config.public_url == "http://127.0.0.1:9100"
    assert config.redirect_uris == (REDIRECT_URI, OTHER_REDIRECT_URI)
    assert config.api_key == API_KEY
    assert config.token_ttl == 2


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EMBEDDED_UI_SANDBOX_PORTT", "1"),
        ("EMBEDDED_UI_SANDBOX_PORT", "zero"),
        ("EMBEDDED_UI_SANDBOX_API_KEY", "sk_live_nope"),
        ("EMBEDDED_UI_SANDBOX_REDIRECT_URIS", "/relative"),
        ("EMBEDDED_UI_SANDBOX_TOKEN_TTL", "0"),
        ("EMBEDDED_UI_SANDBOX_DATABASE", "postgresql://x"),
    ],
)
def test_bad_configuration_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        SandboxConfig.from_env({variable: value})


def test_the_service_settings_leave_sandbox_variables_alone() -> None:
    Settings.from_env({"EMBEDDED_UI_SANDBOX_PORT": "8001", "EMBEDDED_UI_SANDBOX_API_KEY": API_KEY})


# the real command --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> int:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)
        raise


def test_the_sandbox_command_serves_what_it_prints(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_UI_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["EMBEDDED_UI_SANDBOX_CLIENT_SECRET"] = CLIENT_SECRET
    stdout_path, stderr_path = tmp_path / "sandbox.out", tmp_path / "sandbox.err"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "embedded_ui", "sandbox", "--port", str(port), "--json"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"

    def output() -> str:
        return f"{stdout_path.read_text()}\n--- stderr\n{stderr_path.read_text()}"

    try:
        deadline = time.monotonic() + 45
        while True:
            assert process.poll() is None, output()
            with suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, output()
            time.sleep(0.2)

        printed = json.loads(stdout_path.read_text().splitlines()[0])
        assert printed["url"] == base_url
        assert printed["clientId"] == CLIENT_ID
        assert printed["clientSecret"] == CLIENT_SECRET
        assert re.fullmatch(r"sbx_[A-Za-z0-9]{24}", printed["apiKey"])

        with httpx.Client(base_url=base_url, timeout=10) as http:
            me = http.get("/api/me", headers=bearer(printed["apiKey"]))
            assert me.status_code == 200, me.text
            assert me.json()["name"] == "Demo Store"

            verifier, challenge = pkce()
            page = http.get("/oauth/authorize", params=authorize_params(challenge))
            approved = http.post(
                "/oauth/authorize",
                data={"consent": consent_id(page), "decision": "approve", "account": "acct_demo"},
            )
            code = redirect_query(approved)["code"]
            token = http.post(
                "/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": verifier,
                },
                auth=(CLIENT_ID, CLIENT_SECRET),
            )
            assert token.status_code == 200, token.text
            assert http.get("/api/me", headers=bearer(token.json()["access_token"])).is_success

            admin = {"X-Sandbox-Admin": printed["adminSecret"]}
            counted = http.get("/_sandbox/stats", headers=admin).json()
            assert counted["token_requests"] == 1 and counted["api_calls"] == 2
            assert http.get("/_sandbox/stats").status_code == 401
    finally:
        returncode = _stop(process)
    assert returncode == 0, output()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base_url}/health", timeout=2)


def test_the_sandbox_command_refuses_a_misspelt_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_UI_")}
    env["EMBEDDED_UI_SANDBOX_TOKENTTL"] = "2"
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "embedded_ui", "sandbox", "--port", str(_free_port())],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result
    assert "EMBEDDED_UI_SANDBOX_TOKENTTL: unknown setting (see docs/sandbox.md)" in result.stderr
    assert result.stdout == ""
