"""The integrations page in Chromium, with nothing faked: an ISV page on its own origin mounts it
with the real SDK; installs go through the real modal (which the SDK opens over the whole ISV
page); releases are applied with the CLI. axe-core checks the page and the modal. The hosted
page (a single-use link) is opened as a full page, with and without JavaScript, and in a plain
iframe; it opens the modal inside itself.

Screenshots land in artifacts/e2e/page-*.png (360, 768 and 1280 px wide, light and dark).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Frame, FrameLocator, Page, expect

from e2e.axe import assert_accessible
from e2e.conftest import E2ESandbox, run_cli
from embedded_ui.demo_host import DemoHost
from embedded_ui.paths import EXAMPLES_DIR

pytestmark = pytest.mark.e2e

STEP_TIMEOUT = 20_000  # ms
COMMON = ["--workspace", "page-e2e", "--environment", "development"]
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


@dataclass(frozen=True)
class Isv:
    host: DemoHost
    key: str
    service: str
    sandbox: E2ESandbox
    env: dict[str, str]
    files: Path

    def release(self, *edits: tuple[str, str]) -> None:
        """Apply edited copies of the quickstart's sandbox files and release them."""
        sandbox = (EXAMPLES_DIR / "fulfillmently" / "sandbox.yaml").read_text()
        for old, new in edits:
            assert old in sandbox
            sandbox = sandbox.replace(old, new)
        (self.files / "sandbox.yaml").write_text(sandbox)
        events = (EXAMPLES_DIR / "fulfillmently" / "events.yaml").read_text()
        (self.files / "events.yaml").write_text(events)
        run_cli(self.env, "apply", str(self.files), *COMMON, "--release")

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.service}/2024-03",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=10,
        )

    def workflows(self, username: str) -> dict[str, dict[str, Any]]:
        with self.api() as api:
            response = api.get("/integrations", params={"userId": username})
            assert response.status_code == 200, response.text
            return {w["name"][:6]: w for i in response.json()["data"] for w in i["workflows"]}

    def page_link(self, username: str) -> str:
        """What the ISV's backend does for a hosted page: the user, then a fresh link."""
        with self.api() as api:
            created = api.post("/users", json={"username": username})
            assert created.status_code in (201, 409), created.text
            made = api.get(f"/users/{username}/integrations-page-url")
            assert made.status_code == 200, made.text
            url: str = made.json()["url"]
            assert url.startswith(f"{self.service}/integrations-page/")
            return url


@pytest.fixture(scope="session")
def isv(
    live_server: str,
    live_server_env: dict[str, str],
    sandbox_server: E2ESandbox,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Isv]:
    run_cli(live_server_env, "workspace", "create", "page-e2e")
    key = run_cli(live_server_env, "keys", "create", *COMMON)["key"]
    host = DemoHost(live_server, key).start()
    isv = Isv(
        host, key, live_server, sandbox_server, live_server_env, tmp_path_factory.mktemp("page")
    )
    isv.release()
    try:
        yield isv
    finally:
        host.stop()


def mount(page: Page, isv: Isv, username: str, scheme: str = "") -> FrameLocator:
    page.goto(f"{isv.host.url}/page" + (f"?scheme={scheme}" if scheme else ""))
    page.fill("#username", username)
    page.click("#sign-in")
    expect(page.locator("#who")).to_have_text(f"Signed in as {username}.")
    frame = page.frame_locator("iframe[src*='/page/']")
    expect(frame.locator("[data-card]")).to_have_count(1, timeout=STEP_TIMEOUT)
    return frame


def page_frame(page: Page) -> Frame:
    found = [f for f in page.frames if "/page/" in f.url]
    assert found, [f.url for f in page.frames]
    return found[0]


def modal(page: Page) -> FrameLocator:
    return page.frame_locator("iframe[src*='/modal/']")


def modal_frame(page: Page) -> Frame:
    (found,) = [f for f in page.frames if "/modal/" in f.url]
    return found


def events(page: Page) -> list[dict[str, Any]]:
    lines = page.locator("#log").inner_text().splitlines()
    return [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("event ")]


def finish_modal(page: Page, isv: Isv, artifacts_dir: Path, name: str) -> None:
    """Walk the modal to the end: an API key when it asks for one, defaults elsewhere."""
    frame = modal(page)
    for _ in range(6):
        frame.locator("[data-step]").first.wait_for(timeout=STEP_TIMEOUT)
        step = frame.locator("[data-step]").first.get_attribute("data-step")
        if step == "workflows":
            frame.locator("button[type=submit]").click()
        elif step == "auth":
            assert_accessible(modal_frame(page), "the modal's authentication step")
            frame.get_by_label("Sandbox API key").fill(isv.sandbox.new_key())
            frame.get_by_role("button", name="Save API key").click()
        elif step == "configure":
            assert_accessible(modal_frame(page), "the modal's configuration step")
            page.screenshot(path=str(artifacts_dir / f"page-modal-{name}.png"))
            frame.locator("button[type=submit]").click()
        elif step == "review":
            frame.get_by_role("button", name="Install").click()
            break
        expect(frame.locator(f"[data-step={step}]")).to_have_count(0, timeout=STEP_TIMEOUT)
    expect(page.locator("iframe[src*='/modal/']")).to_have_count(0, timeout=STEP_TIMEOUT)


def test_install_upgrade_reinstall_and_toggle_through_the_mounted_page(
    page: Page, isv: Isv, artifacts_dir: Path
) -> None:
    username = "page-merchant"
    page.set_viewport_size({"width": 1280, "height": 900})
    frame = mount(page, isv, username)
    expect(frame.locator(".eup-card h2")).to_have_text("Sandbox Commerce")
    expect(frame.get_by_text("Not installed")).to_have_count(2)
    assert_accessible(page_frame(page), "the integrations page (nothing installed)")
    # The iframe grew to its content (eui:resize).
    height = page.evaluate("document.querySelector('iframe[src*=\"/page/\"]').offsetHeight")
    assert height > 240

    # Install: the page asks the SDK, whose modal covers the whole ISV page.
    frame.get_by_role("button", name="Install Sandbox Commerce").click()
    expect(modal(page).locator("[data-step=workflows]")).to_be_visible(timeout=STEP_TIMEOUT)
    assert_accessible(modal_frame(page), "the modal's first step")
    finish_modal(page, isv, artifacts_dir, "install")
    expect(frame.get_by_text("No runs yet", exact=False)).to_have_count(2, timeout=STEP_TIMEOUT)
    expect(frame.locator("[role=switch][aria-checked=true]")).to_have_count(2)
    assert [e["type"] for e in events(page)] == ["install"]
    assert all(w["installed"] for w in isv.workflows(username).values())
    assert_accessible(page_frame(page), "the integrations page (installed)")

    # A release with the same fields: one click upgrades.
    isv.release(RENAME)
    frame = mount(page, isv, username)
    update = frame.locator("button[data-action=upgrade]")
    expect(update).to_have_accessible_name(re.compile(r"Update to version 2\s*: Sandbox status"))
    page.screenshot(path=str(artifacts_dir / "page-update-available.png"), full_page=True)
    update.click()
    expect(frame.locator("#eup-notice")).to_contain_text("updated to version 2")
    status = isv.workflows(username)["Sandbo"]
    assert status["version"] == status["installedVersion"] == 2
    assert events(page)[-1]["type"] == "upgrade"

    # A release with a new configurable field: reinstall through the modal.
    isv.release(RENAME, NEW_FIELD)
    frame = mount(page, isv, username)
    expect(frame.locator(".eup-update")).to_contain_text("Where to send a copy")
    frame.get_by_role("button", name="Reinstall to update", exact=False).click()
    finish_modal(page, isv, artifacts_dir, "reinstall")
    expect(frame.locator(".eup-update")).to_have_count(0, timeout=STEP_TIMEOUT)
    orders = isv.workflows(username)["Create"]
    assert orders["version"] == orders["installedVersion"] == 2

    # Deactivate and activate, with the keyboard.
    switch = frame.locator(f"[role=switch][data-workflow='{orders['workflowId']}']")
    switch.focus()
    page.keyboard.press("Enter")
    expect(frame.locator("#eup-notice")).to_contain_text("deactivated")
    assert isv.workflows(username)["Create"]["active"] is False
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(switch).to_be_focused()  # the re-render keeps the keyboard on the same switch
    page.keyboard.press("Space")
    expect(frame.locator("#eup-notice")).to_contain_text("activated")
    assert isv.workflows(username)["Create"]["active"] is True
    assert [e["type"] for e in events(page)][-2:] == ["deactivate", "activate"]

    # Uninstall asks first; Cancel gives focus back.
    frame.get_by_role("button", name="Uninstall Create", exact=False).click()
    confirm = frame.get_by_role("button", name="Yes, uninstall").first
    expect(confirm).to_be_focused()
    assert_accessible(page_frame(page), "the integrations page (confirming)")
    page.keyboard.press("Enter")
    expect(frame.locator("#eup-notice")).to_contain_text("uninstalled")
    expect(frame.locator("#eup-notice")).to_be_focused()
    assert isv.workflows(username)["Create"]["installed"] is False


def test_search_filters_and_screenshots_at_three_widths(
    page: Page, isv: Isv, artifacts_dir: Path
) -> None:
    for width in (360, 768, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        frame = mount(page, isv, "screens")
        page.screenshot(path=str(artifacts_dir / f"page-{width}px.png"), full_page=True)
        # Nothing overflows sideways.
        overflow = page_frame(page).evaluate(
            "document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )
        assert not overflow, f"horizontal overflow at {width}px"
    frame.get_by_label("Search integrations").fill("no such thing")
    expect(frame.get_by_text("No integrations match your search.")).to_be_visible()
    expect(frame.locator("[data-card]")).to_be_hidden()
    frame.get_by_label("Search integrations").fill("sandbox")
    expect(frame.locator("[data-card]")).to_be_visible()

    frame = mount(page, isv, "screens-dark", scheme="dark")
    page.screenshot(path=str(artifacts_dir / "page-1280px-dark.png"), full_page=True)
    assert_accessible(page_frame(page), "the integrations page (dark)")


# --- the hosted page (a single-use link) ---------------------------------------------------------


def test_the_hosted_page_link_with_javascript_off_then_refused_the_second_time(
    browser: Browser, isv: Isv, artifacts_dir: Path
) -> None:
    link = isv.page_link("hosted-reader")
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        response = page.goto(link)
        assert response is not None and response.status == 200
        # The first response is the page: the user's integrations, no loading state.
        expect(page.locator(".eup-card h2")).to_have_text("Sandbox Commerce")
        expect(page.get_by_text("Not installed")).to_have_count(2)
        # (Playwright's text selectors skip <noscript>, so the message is found by its class.)
        expect(page.locator(".eup-nojs")).to_be_visible()
        expect(page.locator(".eup-nojs")).to_contain_text("need JavaScript")
        # What needs the script is hidden rather than dead.
        expect(page.get_by_role("button", name="Install Sandbox Commerce")).to_be_hidden()
        expect(page.get_by_label("Search integrations")).to_be_hidden()
        page.screenshot(path=str(artifacts_dir / "page-hosted-no-js.png"), full_page=True)

        again = page.goto(link)
        assert again is not None and again.status == 404
        expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
    finally:
        context.close()


def test_install_from_the_hosted_page_and_a_failed_action_gives_the_controls_back(
    page: Page, isv: Isv, artifacts_dir: Path
) -> None:
    username = "hosted-merchant"
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(isv.page_link(username))
    expect(page.locator(".eup-card h2")).to_have_text("Sandbox Commerce")
    expect(page.get_by_text("Not installed")).to_have_count(2)
    expect(page.locator(".eup-nojs")).to_have_count(0)  # <noscript> is only text with script on
    assert_accessible(page, "the hosted integrations page (nothing installed)")

    # No SDK here: the page opens the modal inside itself and reloads when it ends.
    page.get_by_role("button", name="Install Sandbox Commerce").click()
    expect(modal(page).locator("[data-step=workflows]")).to_be_visible(timeout=STEP_TIMEOUT)
    finish_modal(page, isv, artifacts_dir, "hosted-install")
    expect(page.get_by_text("No runs yet", exact=False)).to_have_count(2, timeout=STEP_TIMEOUT)
    expect(page.locator("[role=switch][aria-checked=true]")).to_have_count(2)
    assert all(w["installed"] for w in isv.workflows(username).values())
    assert_accessible(page, "the hosted integrations page (installed)")
    page.screenshot(path=str(artifacts_dir / "page-hosted.png"), full_page=True)

    # The installation goes away behind the page's back: the switch's action fails.
    orders = isv.workflows(username)["Create"]["workflowId"]
    with isv.api() as api:
        gone = api.delete(f"/workflows/{orders}", params={"userId": username})
        assert gone.status_code in (200, 204), gone.text
    switch = page.locator(f"[role=switch][data-workflow='{orders}']")
    switch.click()
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible(timeout=STEP_TIMEOUT)
    expect(switch).to_be_enabled()
    expect(switch).to_have_attribute("aria-checked", "true")  # nothing pretended
    retry = alert.get_by_role("button", name="Reload the list")
    expect(retry).to_be_focused()
    assert_accessible(page, "the hosted integrations page (an action failed)")
    retry.click()
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(page.get_by_text("Not installed")).to_have_count(1)
    expect(page.get_by_role("button", name="Install Sandbox Commerce")).to_be_enabled()

    # No answer at all (the network dropped): the retry runs the same action again.
    status = page.locator("[role=switch]")
    page.route("**/modal/api/page", lambda route: route.abort())
    status.click()
    expect(page.get_by_role("alert")).to_be_visible(timeout=STEP_TIMEOUT)
    expect(status).to_be_enabled()
    page.unroute("**/modal/api/page")
    page.get_by_role("alert").get_by_role("button", name="Try again").click()
    expect(page.locator("#eup-notice")).to_contain_text("deactivated")
    expect(status).to_have_attribute("aria-checked", "false")
    expect(status).to_be_focused()

    # The page's user token is refused (it lasts an hour): say so, and give the switch back.
    refused = {"message": "The user token has expired.", "code": "unauthorized"}
    page.route("**/modal/api/page", lambda route: route.fulfill(status=401, json=refused))
    status.click()
    expect(page.get_by_role("alert")).to_contain_text("session has ended")
    expect(status).to_be_enabled()
    page.unroute("**/modal/api/page")


@contextmanager
def isv_pages(pages: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A real loopback server serving ``pages`` (path → HTML), reachable as two origins:
    ``http://localhost:PORT`` and ``http://127.0.0.1:PORT``. (A page faked with
    ``page.route`` may not frame a loopback URL: Chromium's local-network checks refuse it.)"""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield f"http://localhost:{port}", f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_plain_iframe_of_the_hosted_link_on_an_allowed_origin_only(page: Page, isv: Isv) -> None:
    """The environment lists one origin: a plain iframe of the hosted link on it shows the
    page; the same iframe on another origin is refused by frame-ancestors."""
    frame = '<!doctype html><title>ISV</title><iframe src="{}" title="Integrations"></iframe>'
    pages = {
        "/allowed": frame.format(isv.page_link("hosted-framed")),
        "/other": frame.format(isv.page_link("hosted-framed")),
    }
    with isv_pages(pages) as (allowed, other), isv.api() as api:
        listed = api.put("/environment", json={"allowedOrigins": [allowed]})
        assert listed.status_code == 200, listed.text
        try:
            page.goto(f"{allowed}/allowed")
            framed = page.frame_locator("iframe[title=Integrations]")
            expect(framed.locator(".eup-card h2")).to_have_text(
                "Sandbox Commerce", timeout=STEP_TIMEOUT
            )
            expect(framed.get_by_role("button", name="Install Sandbox Commerce")).to_be_visible()

            blocked: list[str] = []
            page.on("console", lambda message: blocked.append(message.text))
            page.goto(f"{other}/other")
            page.wait_for_timeout(1500)
            frames = [f for f in page.frames if f != page.main_frame]
            assert frames and all(f.locator("[data-card]").count() == 0 for f in frames)
            assert any("frame-ancestors" in text for text in blocked), blocked
        finally:
            api.put("/environment", json={"allowedOrigins": []})
