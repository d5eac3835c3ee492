"""The quickstart's story, end to end, on the real demo: `embedded-ui demo` as a process (it
starts the sandbox app as its own child and the demo ISV page), driven in Chromium.

Install the sandbox integration through the modal (OAuth in the popup) → create an order in
the sandbox → it arrives in the ISV inbox with a verified Standard Webhooks signature → "Mark
fulfilled" runs the custom event "Fulfillment Updated" → the sandbox order's status changes →
the Logs panel shows both runs succeeded. Nothing is faked; the demo's environment is the one
a newcomer gets (the test sets no outbound allow-list: the demo sets its own).

Screenshots land in artifacts/e2e/story-*.png.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from e2e.axe import assert_accessible
from e2e.conftest import _free_port, _running

pytestmark = pytest.mark.e2e

STEP_TIMEOUT = 20_000  # ms for one step of the story (a busy CI machine is slow)
DELIVERY_TIMEOUT = 30.0  # s for an order to reach the inbox, or a status to change


@dataclass(frozen=True)
class Demo:
    service: str
    page: str
    sandbox: str
    log: Path

    @property
    def inbox(self) -> str:
        return f"{self.page}/inbox"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    workdir = tmp_path_factory.mktemp("demo")
    port, sandbox_port, page_port = _free_port(), _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_UI_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env |= {
        "PYTHONPYCACHEPREFIX": str(workdir / "pycache"),
        "PYTHONUNBUFFERED": "1",
        "EMBEDDED_UI_HOST": "127.0.0.1",
        "EMBEDDED_UI_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'embedded-ui.sqlite3'}",
        "EMBEDDED_UI_SANDBOX_PUBLIC_URL": f"http://127.0.0.1:{sandbox_port}",
        "EMBEDDED_UI_LOG_LEVEL": "WARNING",
    }
    service = f"http://127.0.0.1:{port}"
    arguments = ["demo", "--port", str(port), "--page-port", str(page_port)]
    running = Demo(
        service,
        f"http://127.0.0.1:{page_port}",
        env["EMBEDDED_UI_SANDBOX_PUBLIC_URL"],
        workdir / "demo.log",
    )
    with _running(arguments, env, workdir, service):
        yield running
    # The demo stops its sandbox child when it stops.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{running.sandbox}/health", timeout=1)
        except httpx.TransportError:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the demo left its sandbox running at {running.sandbox}")


def reload_until(page: Page, url: str, ready: str, timeout: float = DELIVERY_TIMEOUT) -> None:
    """Open ``url`` again until ``ready`` (a selector) is on it: the inbox is a plain
    server-rendered page, refreshed by hand."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url)
        if page.locator(ready).count():
            return
        assert time.monotonic() < deadline, f"{ready} never appeared on {url}"
        page.wait_for_timeout(300)


def test_the_quickstart_story_runs_end_to_end(page: Page, demo: Demo, artifacts_dir: Path) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(demo.page)
    page.fill("#username", "gregg")
    page.click("#sign-in")
    expect(page.locator("#who")).to_have_text("Signed in as gregg.")

    # 1. Install the sandbox integration through the modal, OAuth in the popup.
    page.get_by_role("button", name="Install sandbox").click()
    frame = page.frame_locator("iframe[src*='/modal/']")
    expect(frame.locator("[data-step=workflows]")).to_be_visible(timeout=STEP_TIMEOUT)
    frame.locator("button[type=submit]").click()
    expect(frame.locator("[data-step=auth]")).to_be_visible(timeout=STEP_TIMEOUT)
    with page.expect_popup() as popup_info:
        frame.get_by_role("button", name="Connect with Sandbox Commerce").click()
    popup = popup_info.value
    expect(popup.get_by_role("button", name="Approve")).to_be_visible(timeout=STEP_TIMEOUT)
    popup.get_by_role("button", name="Approve").click()
    expect(frame.locator("[data-step=configure]")).to_be_visible(timeout=STEP_TIMEOUT)
    # The demo points new orders at its own inbox.
    expect(frame.locator("input[type=url]")).to_have_value(f"{demo.page}/inbox/deliveries")
    frame.locator("button[type=submit]").click()
    expect(frame.locator("[data-step=review]")).to_be_visible(timeout=STEP_TIMEOUT)
    frame.get_by_role("button", name="Install").click()
    expect(page.locator("iframe[src*='/modal/']")).to_have_count(0, timeout=STEP_TIMEOUT)
    expect(page.get_by_role("button", name="Edit sandbox")).to_be_visible(timeout=STEP_TIMEOUT)
    # Automatic registration: the sandbox was subscribed at install, nothing to paste.

    # 2. A shopper buys: an order in the merchant's sandbox store.
    page.get_by_role("button", name="Create an order in the sandbox").click()
    expect(page.locator("#order")).to_contain_text("created in the sandbox", timeout=STEP_TIMEOUT)
    found = re.search(r"\((ord_[A-Za-z0-9]+)\)", page.locator("#order").inner_text())
    assert found, page.locator("#order").inner_text()
    order_id = found.group(1)
    page.screenshot(path=str(artifacts_dir / "story-1-order-created.png"))

    # 3. It reaches the ISV inbox, signature verified, status pending in the sandbox.
    inbox = page.context.new_page()
    reload_until(inbox, demo.inbox, f"[data-order='{order_id}']")
    delivery = inbox.locator(f"[data-order='{order_id}']")
    expect(delivery.locator("[data-verification]")).to_have_text("Signature verified")
    expect(delivery.locator("[data-sandbox-status]")).to_have_text("pending")
    assert_accessible(inbox, "the demo inbox")
    inbox.screenshot(path=str(artifacts_dir / "story-2-inbox.png"), full_page=True)

    # 4. "Mark fulfilled" runs the custom event; the sandbox order's status changes.
    delivery.get_by_role("button", name=re.compile("Mark fulfilled")).click()
    expect(inbox.locator("#notice")).to_contain_text(
        f"Fulfillment Updated queued for order {order_id}: 1 run", timeout=STEP_TIMEOUT
    )
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    status = inbox.locator(f"[data-order='{order_id}'] [data-sandbox-status]")
    while status.inner_text() != "shipped":
        assert time.monotonic() < deadline, f"the status stayed {status.inner_text()!r}"
        inbox.wait_for_timeout(300)
        inbox.goto(demo.inbox)
    inbox.screenshot(path=str(artifacts_dir / "story-3-fulfilled.png"), full_page=True)

    # 5. Both runs, succeeded, in the demo page's Logs panel.
    runs = page.locator("#logs tbody tr[data-run]")
    expect(runs).to_have_count(2, timeout=STEP_TIMEOUT)
    expect(page.locator("#logs tbody td.succeeded")).to_have_count(2, timeout=STEP_TIMEOUT)
    expect(runs.filter(has_text="custom event")).to_contain_text("Update the Sandbox order status")
    expect(runs.filter(has_text="app event")).to_contain_text("new Sandbox order")
    page.screenshot(path=str(artifacts_dir / "story-4-logs.png"), full_page=True)
