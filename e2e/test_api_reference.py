"""The API reference at /schema, rendered by Swagger UI in headless Chromium, offline."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, Request, expect

pytestmark = pytest.mark.e2e

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
UI_TIMEOUT = 30_000  # milliseconds for Swagger UI to render
ASSET_URL = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def test_swagger_ui_renders_offline(page: Page, live_server: str, artifacts_dir: Path) -> None:
    requests: list[str] = []
    console_errors: list[str] = []
    page_errors: list[str] = []

    def on_request(request: Request) -> None:
        requests.append(request.url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(f"{message.text} @ {message.location}")

    def on_page_error(error: Any) -> None:
        page_errors.append(str(error))

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", on_page_error)

    response = page.goto("/schema", wait_until="load")
    assert response is not None
    assert response.status == 200
    assert response.headers["content-security-policy"].startswith("default-src 'self'")

    expect(page).to_have_title("embedded-ui API")
    expect(page.locator(".information-container .title")).to_contain_text(
        "embedded-ui API", timeout=UI_TIMEOUT
    )
    users = page.locator("#operations-tag-Users")
    expect(users).to_be_visible(timeout=UI_TIMEOUT)
    expect(page.get_by_text("Create a user", exact=True)).to_be_visible(timeout=UI_TIMEOUT)
    expect(page.locator(".opblock-summary-path", has_text="/2024-03/users").first).to_be_visible()
    page.wait_for_load_state("networkidle")

    page.screenshot(path=artifacts_dir / "api-reference.png", full_page=True)

    assert requests, "the page made no requests at all"
    assert any(url.startswith(f"{live_server}/schema/assets/") for url in requests), requests
    offsite = [url for url in requests if not is_loopback(url)]
    assert offsite == [], f"the page reached beyond loopback: {offsite}"
    assert console_errors == [], console_errors
    assert page_errors == [], page_errors


def test_reference_page_links_only_local_assets(live_server: str) -> None:
    """Whatever the browser chooses to fetch (favicons included), the HTML names no other host."""
    html = httpx.get(f"{live_server}/schema", timeout=10.0).text
    urls = ASSET_URL.findall(html)
    assert any("/schema/assets/swagger-ui-bundle.js" in url for url in urls), urls
    offsite = [url for url in urls if urlsplit(url).netloc and not is_loopback(url)]
    assert offsite == [], f"/schema links to other hosts: {offsite}"


def test_openapi_document_summarises_every_operation(page: Page) -> None:
    response = page.goto("/schema/openapi.json")
    assert response is not None
    assert response.status == 200
    document: dict[str, Any] = response.json()

    assert document["info"]["title"] == "embedded-ui API"
    assert "/2024-03/users" in document["paths"]
    assert "post" in document["paths"]["/2024-03/users"]

    operations = [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    assert len(operations) > 5
    unsummarised = [f"{m} {p}" for m, p, op in operations if not op.get("summary", "").strip()]
    assert unsummarised == [], f"operations without a summary: {unsummarised}"
