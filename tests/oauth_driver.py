"""A driver that plays the browser through the whole OAuth popup flow: the service's pages
with the test client, the sandbox's consent page with httpx over real HTTP."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from conftest import PUBLIC_URL, SANDBOX_CLIENT_ID, Sandbox


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
