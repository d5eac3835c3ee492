"""Helpers and fixtures for the OAuth tests, which import them (a conftest here would shadow
the module name other tests import from): the sandbox as a real process, and a driver that
plays the browser through the whole popup flow (the service's pages with the test client, the
sandbox's consent page with httpx over real HTTP).

The sandbox runs once per test process (``embedded-ui sandbox`` on a free loopback port) and is
reset before each test that asks for it; the service talks to it over real HTTP.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

PUBLIC_URL = "http://embedded-ui.test"
SANDBOX_CLIENT_ID = "embedded-ui-demo"


@dataclass
class Sandbox:
    """A running sandbox process and its secrets (generated per test run: canaries)."""

    url: str
    client_secret: str
    admin_secret: str
    api_key: str

    @property
    def admin(self) -> dict[str, str]:
        return {"X-Sandbox-Admin": self.admin_secret}

    def reset(self) -> None:
        response = httpx.post(f"{self.url}/_sandbox/reset", headers=self.admin, timeout=10)
        assert response.status_code == 200, response.text

    def behave(self, **settings: Any) -> None:
        response = httpx.post(
            f"{self.url}/_sandbox/behaviour", json=settings, headers=self.admin, timeout=10
        )
        assert response.status_code == 200, response.text

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/_sandbox/stats", headers=self.admin, timeout=10)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session", name="sandbox_process")
def sandbox_process_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    port = _free_port()
    sandbox = Sandbox(
        url=f"http://127.0.0.1:{port}",
        client_secret="canary-client-secret-" + secrets.token_hex(12),
        admin_secret="sbxadm_" + secrets.token_hex(12),
        api_key="sbx_" + secrets.token_hex(12),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_UI_")}
    env.update(
        PYTHONUNBUFFERED="1",
        EMBEDDED_UI_SANDBOX_CLIENT_SECRET=sandbox.client_secret,
        EMBEDDED_UI_SANDBOX_ADMIN_SECRET=sandbox.admin_secret,
        EMBEDDED_UI_SANDBOX_API_KEY=sandbox.api_key,
        EMBEDDED_UI_SANDBOX_REDIRECT_URIS=f"{PUBLIC_URL}/oauth/callback/sandbox",
    )
    logs: Path = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    with logs.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "embedded_ui", "sandbox", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 45
        while True:
            assert process.poll() is None, logs.read_text()
            with suppress(httpx.TransportError):
                if httpx.get(f"{sandbox.url}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, logs.read_text()
            time.sleep(0.1)
        yield sandbox
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


@pytest.fixture(name="sandbox")
def sandbox_fixture(sandbox_process: Sandbox) -> Sandbox:
    """The sandbox, reset: no grants, zero counters, every switch normal."""
    sandbox_process.reset()
    return sandbox_process


@dataclass
class Popup:
    """What one run of the popup saw."""

    flow_id: str
    start: httpx.Response
    consent: httpx.Response | None = None
    callback_url: str | None = None
    callback: httpx.Response | None = None


@dataclass
class OAuthDriver:
    """Plays the modal (user token) and the popup (the browser) against the service."""

    client: AsyncTestClient[Litestar]
    sandbox: Sandbox
    api_headers: dict[str, str]
    user_id: str
    user_headers: dict[str, str]
    responses: list[httpx.Response]

    def keep(self, response: httpx.Response) -> httpx.Response:
        self.responses.append(response)
        return response

    async def configure_client(self, secret: str | None = None) -> httpx.Response:
        return self.keep(
            await self.client.put(
                "/2024-03/oauth-clients/sandbox",
                json={
                    "clientId": SANDBOX_CLIENT_ID,
                    "clientSecret": secret or self.sandbox.client_secret,
                },
                headers=self.api_headers,
            )
        )

    async def create_flow(self, **body: Any) -> httpx.Response:
        payload = {"app": "sandbox", "purpose": "install", "connection": {}, **body}
        return self.keep(
            await self.client.post(
                "/modal/api/oauth/flows", json=payload, headers=self.user_headers
            )
        )

    async def new_flow(self) -> dict[str, Any]:
        created = await self.create_flow()
        assert created.status_code == 201, created.text
        body: dict[str, Any] = created.json()
        return body

    async def flow(self, flow_id: str) -> dict[str, Any]:
        response = self.keep(
            await self.client.get(f"/modal/api/oauth/flows/{flow_id}", headers=self.user_headers)
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def open_popup(self, start_url: str, **query: str) -> httpx.Response:
        return self.keep(await self.client.get(start_url, params=query, follow_redirects=False))

    async def consent(self, authorize_url: str, decision: str = "approve") -> httpx.Response:
        """The person on the provider's consent page: real HTTP to the sandbox."""
        async with httpx.AsyncClient(timeout=10) as browser:
            page = await browser.get(authorize_url)
            assert page.status_code == 200, page.text
            match = re.search(r'name="consent" value="([^"]+)"', page.text)
            assert match, page.text
            return await browser.post(
                f"{self.sandbox.url}/oauth/authorize",
                data={"consent": match.group(1), "decision": decision, "account": "acct_demo"},
            )

    async def come_back(self, callback_url: str) -> httpx.Response:
        parts = urlsplit(callback_url)
        assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL, callback_url
        return self.keep(
            await self.client.get(f"{parts.path}?{parts.query}", follow_redirects=False)
        )

    async def run(self, decision: str = "approve", come_back: bool = True) -> Popup:
        """One whole popup: create the flow, open start, consent, follow the redirect back."""
        created = await self.new_flow()
        start = await self.open_popup(created["startUrl"])
        assert start.status_code == 302, start.text
        popup = Popup(created["flowId"], start)
        popup.consent = await self.consent(start.headers["location"], decision)
        assert popup.consent.status_code == 302, popup.consent.text
        popup.callback_url = popup.consent.headers["location"]
        if come_back:
            popup.callback = await self.come_back(popup.callback_url)
        return popup

    async def credentials(self) -> list[dict[str, Any]]:
        response = self.keep(
            await self.client.get(
                f"/2024-03/users/{self.user_id}/credentials", headers=self.api_headers
            )
        )
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data


def service_logs(records: list[logging.LogRecord]) -> str:
    """What the service logged: every record but httpx's lines about the test's own browser
    requests (their URLs carry the code and the state, as a browser's history would)."""
    lines = []
    for record in records:
        message = record.getMessage()
        if record.name == "httpx" and (PUBLIC_URL in message or "/oauth/authorize" in message):
            continue
        lines.append(message)
    return "\n".join(lines)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def make_driver(
    client: AsyncTestClient[Litestar], sandbox: Sandbox, tenant: Any, username: str = "merchant"
) -> OAuthDriver:
    created = await client.post(
        "/2024-03/users", json={"username": username}, headers=tenant.headers
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["userId"]
    token = await client.get(f"/2024-03/users/{user_id}/token", headers=tenant.headers)
    assert token.status_code == 200, token.text
    return OAuthDriver(
        client=client,
        sandbox=sandbox,
        api_headers=tenant.headers,
        user_id=user_id,
        user_headers={"x-alloy-user-token": token.json()["token"]},
        responses=[created, token],
    )
