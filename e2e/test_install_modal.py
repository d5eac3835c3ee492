"""The whole install, in Chromium, with nothing faked: an ISV page on its own origin with its
own small backend (API key on the server, user token to the browser), the real SDK, the real
modal, the real sandbox app as OAuth provider in a popup, and the real service.

Screenshots of every modal step land in artifacts/e2e/modal-*.png.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    BrowserContext,
    Frame,
    FrameLocator,
    Page,
    Request,
    Response,
    Route,
    expect,
)

from e2e.conftest import E2ESandbox, run_cli
from embedded_ui.credentials import Vault, credential_aad
from embedded_ui.demo_host import DemoHost
from embedded_ui.paths import EXAMPLES_DIR
from embedded_ui.settings import Settings

pytestmark = pytest.mark.e2e

STEP_TIMEOUT = 20_000  # ms for a modal step (a loaded CI machine is slow)
STATUS_OPTIONS = (
    "              options:\n"
    "                - {label: Shipped, value: shipped}\n"
    "                - {label: Delivered, value: delivered}\n"
)


@dataclass(frozen=True)
class Isv:
    """The ISV: its workspace, API key, page, and what the service knows of it."""

    host: DemoHost
    key: str
    integration_id: str
    workflow_ids: tuple[str, ...]
    service: str
    sandbox: E2ESandbox

    @property
    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.service}/2024-03",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=10,
        )

    def listing(self, username: str) -> list[dict[str, Any]]:
        with self.api as api:
            response = api.get("/integrations", params={"userId": username})
            assert response.status_code == 200, response.text
            data: list[dict[str, Any]] = response.json()["data"]
            return data

    def credentials(self, username: str) -> list[dict[str, Any]]:
        with self.api as api:
            response = api.get(f"/users/{username}/credentials")
            assert response.status_code == 200, response.text
            data: list[dict[str, Any]] = response.json()["data"]
            return data


@pytest.fixture(scope="session")
def isv(
    live_server: str,
    live_server_env: dict[str, str],
    sandbox_server: E2ESandbox,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Isv]:
    common = ["--workspace", "modal-e2e", "--environment", "development"]
    run_cli(live_server_env, "workspace", "create", "modal-e2e")
    key = run_cli(live_server_env, "keys", "create", *common)["key"]
    # The quickstart's sandbox integration, its status choices loaded from the app.
    files = tmp_path_factory.mktemp("integration")
    sandbox_yaml = (EXAMPLES_DIR / "fulfillmently" / "sandbox.yaml").read_text()
    (files / "sandbox.yaml").write_text(
        sandbox_yaml.replace(STATUS_OPTIONS, "              options_from: order_statuses\n")
    )
    (files / "events.yaml").write_text((EXAMPLES_DIR / "fulfillmently" / "events.yaml").read_text())
    run_cli(live_server_env, "apply", str(files), *common, "--release")
    with httpx.Client(
        base_url=f"{live_server}/2024-03", headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as api:
        configured = api.put(
            "/oauth-clients/sandbox",
            json={
                "clientId": sandbox_server.client_id,
                "clientSecret": sandbox_server.client_secret,
            },
        )
        assert configured.status_code == 200, configured.text
        api.post("/users", json={"username": "probe"})
        (integration,) = api.get("/integrations", params={"userId": "probe"}).json()["data"]
    host = DemoHost(live_server, key).start()
    try:
        yield Isv(
            host,
            key,
            integration["integrationId"],
            tuple(w["workflowId"] for w in integration["workflows"]),
            live_server,
            sandbox_server,
        )
    finally:
        host.stop()


@pytest.fixture
def seen(context: BrowserContext) -> list[str]:
    """Every URL any page of the test's browser asked for (popups and iframes included)."""
    urls: list[str] = []

    def record(request: Request) -> None:
        urls.append(request.url)

    context.on("request", record)
    return urls


@dataclass
class GivenTokens:
    """The ISV backend's answers to this page's ``/token`` requests: the user tokens the
    page passed to ``Alloy.setToken``."""

    answers: list[Response]

    def read(self) -> list[str]:
        return [str(answer.json()["token"]) for answer in self.answers]


@pytest.fixture
def given_tokens(page: Page, isv: Isv) -> GivenTokens:
    tokens = GivenTokens([])
    prefix = f"{isv.host.url.rstrip('/')}/token?"
    page.on("response", lambda r: tokens.answers.append(r) if r.url.startswith(prefix) else None)
    return tokens


def stored_secret(env: dict[str, str], credential_id: str) -> dict[str, Any]:
    """What the service sealed for a credential (the tokens the sandbox issued), opened with
    the live server's own vault keys from its own database."""
    settings = Settings.from_env(env)
    path = settings.database_url.split(":///", 1)[1]
    with sqlite3.connect(path) as db:
        workspace_id, environment, key_id, blob = db.execute(
            "SELECT workspace_id, environment, key_id, ciphertext FROM credential WHERE id = ?",
            (credential_id,),
        ).fetchone()
    aad = credential_aad(workspace_id, environment, credential_id)
    return Vault(settings.vault_keys).open(key_id, bytes(blob), aad)


def sign_in(page: Page, isv: Isv, username: str) -> None:
    page.goto(isv.host.url)
    page.fill("#username", username)
    page.click("#sign-in")
    expect(page.locator("#who")).to_have_text(f"Signed in as {username}.")
    expect(page.locator("button[data-integration]")).to_have_count(1)


def modal(page: Page) -> FrameLocator:
    return page.frame_locator("iframe[src*='/modal/']")


def shot(page: Page, artifacts_dir: Path, name: str) -> None:
    page.screenshot(path=str(artifacts_dir / f"modal-{name}.png"))


def callbacks(page: Page) -> list[dict[str, Any]]:
    lines = page.locator("#log").inner_text().splitlines()
    return [json.loads(line.split("callback ", 1)[1]) for line in lines if " callback " in line]


def assert_no_secret_in_urls(urls: list[str], *secrets: str) -> None:
    for url in urls:
        for secret in secrets:
            assert secret not in url, f"{url} carries a secret"


ASK_FOR_A_TOKEN = """() => {
  const username = document.getElementById('username').value;
  return fetch('/token?username=' + encodeURIComponent(username)).then(r => r.json())
    .then(b => b.token);
}"""


def user_token_of(page: Page) -> str:
    """The token the ISV's backend handed out (asked again: the backend makes a new one)."""
    token: str = page.evaluate(ASK_FOR_A_TOKEN)
    return token


# --- the whole install with OAuth ---------------------------------------------------------------


def test_install_with_oauth_in_a_popup_calls_back_once_and_installs(
    page: Page,
    isv: Isv,
    artifacts_dir: Path,
    seen: list[str],
    given_tokens: GivenTokens,
    live_server_env: dict[str, str],
) -> None:
    page.set_viewport_size({"width": 1280, "height": 860})
    sign_in(page, isv, "oauth-merchant")
    page.click("button[data-integration]")
    frame = modal(page)

    expect(frame.locator("[data-step=workflows]")).to_be_visible(timeout=STEP_TIMEOUT)
    expect(frame.locator("#eui-title")).to_have_text("Connect sandbox")
    expect(frame.locator("input[name=workflowIds]")).to_have_count(2)
    shot(page, artifacts_dir, "1-workflows")
    frame.locator("button[type=submit]").click()

    expect(frame.locator("[data-step=auth]")).to_be_visible(timeout=STEP_TIMEOUT)
    shot(page, artifacts_dir, "2-authenticate")
    with page.expect_popup() as popup_info:
        frame.get_by_role("button", name="Connect with Sandbox Commerce").click()
    popup = popup_info.value
    expect(popup.get_by_role("button", name="Approve")).to_be_visible(timeout=STEP_TIMEOUT)
    popup.screenshot(path=str(artifacts_dir / "modal-3-consent-popup.png"))
    popup.get_by_role("button", name="Approve").click()

    expect(frame.locator("[data-step=configure]")).to_be_visible(timeout=STEP_TIMEOUT)
    # The choices came from the sandbox with the new credential ("Cancelled" is only there).
    status = frame.locator("select")
    expect(status.locator("option", has_text="Cancelled")).to_have_count(1)
    shot(page, artifacts_dir, "4-configure")
    url_input = frame.locator("input[type=url]")
    url_input.fill("not a url")
    frame.locator("button[type=submit]").click()
    expect(frame.locator("[aria-invalid=true]")).to_have_count(1, timeout=STEP_TIMEOUT)
    expect(frame.locator(".eui-field-error")).to_contain_text("http(s) URL")
    shot(page, artifacts_dir, "5-configure-error")
    frame.locator("input[type=url]").fill("https://fulfillmently.example/orders")
    frame.locator("select").select_option("cancelled")
    frame.locator("button[type=submit]").click()

    expect(frame.locator("[data-step=review]")).to_be_visible(timeout=STEP_TIMEOUT)
    expect(frame.locator(".eui-review")).to_contain_text("https://fulfillmently.example/orders")
    shot(page, artifacts_dir, "6-review")
    frame.get_by_role("button", name="Install").click()

    expect(page.locator("iframe[src*='/modal/']")).to_have_count(0, timeout=STEP_TIMEOUT)
    page.wait_for_timeout(300)  # a second callback, if the SDK were to fire one, lands here
    (result,) = callbacks(page)
    assert result["success"] is True
    assert sorted(result["workflowIds"]) == sorted(isv.workflow_ids)
    (credential,) = isv.credentials("oauth-merchant")
    assert result["credentialId"] == credential["credentialId"]
    assert credential["type"] == "oauth2" and credential["status"] == "active"
    shot(page, artifacts_dir, "7-installed")

    (integration,) = isv.listing("oauth-merchant")
    assert all(w["installed"] and w["active"] for w in integration["workflows"])
    # The exact tokens the SDK was given, and the tokens the sandbox issued (opened from the
    # service's vault), are in no URL any page, popup or frame of this browser asked for.
    tokens = given_tokens.read()
    assert tokens and all(token.startswith("eyJ") for token in tokens)
    issued = stored_secret(live_server_env, credential["credentialId"])
    assert issued["access_token"] and issued["refresh_token"]
    assert_no_secret_in_urls(
        seen,
        *tokens,
        issued["access_token"],
        issued["refresh_token"],
        isv.key,
        isv.sandbox.client_secret,
    )
    assert not any("token=" in url for url in seen)


def test_the_outcome_reaches_the_modal_when_the_opener_link_is_cut(
    page: Page, isv: Isv, seen: list[str]
) -> None:
    """Providers' COOP headers can cut `window.opener`; the modal then learns the outcome from
    the server alone (it polls the flow)."""
    sign_in(page, isv, "cut-opener")
    page.click("button[data-integration]")
    frame = modal(page)
    frame.locator("button[type=submit]").click()
    expect(frame.locator("[data-step=auth]")).to_be_visible(timeout=STEP_TIMEOUT)
    with page.expect_popup() as popup_info:
        frame.get_by_role("button", name="Connect with Sandbox Commerce").click()
    popup = popup_info.value
    expect(popup.get_by_role("button", name="Approve")).to_be_visible(timeout=STEP_TIMEOUT)
    popup.evaluate("window.opener = null")
    assert popup.evaluate("window.opener === null")
    popup.get_by_role("button", name="Approve").click()
    expect(frame.locator("[data-step=configure]")).to_be_visible(timeout=STEP_TIMEOUT)
    (credential,) = isv.credentials("cut-opener")
    assert credential["type"] == "oauth2"
    # No user token (a JWT: its header starts "eyJ") in any URL the browser asked for.
    assert not [url for url in seen if "eyJ" in url]


# --- API keys: wrong, then right ------------------------------------------------------------------


def test_an_api_key_the_app_refuses_shows_its_reason_then_the_right_one_installs(
    page: Page, isv: Isv, artifacts_dir: Path, seen: list[str], given_tokens: GivenTokens
) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    sign_in(page, isv, "key-merchant")
    page.click("button[data-integration]")
    frame = modal(page)
    frame.locator("button[type=submit]").click()  # both workflows
    expect(frame.locator("[data-step=auth]")).to_be_visible(timeout=STEP_TIMEOUT)

    key_input = frame.get_by_label("Sandbox API key")
    key_input.fill("not-a-key")
    frame.get_by_role("button", name="Save API key").click()
    expect(frame.locator("#eui-error")).to_contain_text("does not have the expected format")
    wrong = "sbx_" + "Wrong0Key0Value0" * 2
    key_input.fill(wrong)
    frame.get_by_role("button", name="Save API key").click()
    expect(frame.locator("#eui-error")).to_contain_text("Invalid API key.", timeout=STEP_TIMEOUT)
    shot(page, artifacts_dir, "api-key-refused-360px")
    assert isv.credentials("key-merchant") == []

    right = isv.sandbox.new_key()
    frame.get_by_label("Sandbox API key").fill(right)
    frame.get_by_role("button", name="Save API key").click()
    expect(frame.locator("[data-step=configure]")).to_be_visible(timeout=STEP_TIMEOUT)
    frame.locator("button[type=submit]").click()
    expect(frame.locator("[data-step=review]")).to_be_visible(timeout=STEP_TIMEOUT)
    frame.get_by_role("button", name="Install").click()
    expect(page.locator("iframe[src*='/modal/']")).to_have_count(0, timeout=STEP_TIMEOUT)
    (result,) = callbacks(page)
    assert result["success"] is True and len(result["workflowIds"]) == 2
    assert_no_secret_in_urls(seen, wrong, right, *given_tokens.read())


def test_try_again_repeats_the_failed_step_and_then_succeeds(
    page: Page, isv: Isv, artifacts_dir: Path
) -> None:
    """The error view's "Try again" sends the failed step again. The install step's first
    request is lost on the way (the network drops it); Try again installs, and the page hears
    of it exactly once."""
    attempts: list[str] = []

    def drop_the_first_install(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        if body.get("action") == "install":
            attempts.append(route.request.url)
            if len(attempts) == 1:
                route.abort("connectionreset")
                return
        route.continue_()

    page.context.route("**/modal/api/step", drop_the_first_install)
    sign_in(page, isv, "retrier")
    page.click("button[data-integration]")
    frame = modal(page)
    frame.locator("button[type=submit]").click()
    expect(frame.locator("[data-step=auth]")).to_be_visible(timeout=STEP_TIMEOUT)
    frame.get_by_label("Sandbox API key").fill(isv.sandbox.new_key())
    frame.get_by_role("button", name="Save API key").click()
    expect(frame.locator("[data-step=configure]")).to_be_visible(timeout=STEP_TIMEOUT)
    frame.locator("button[type=submit]").click()
    expect(frame.locator("[data-step=review]")).to_be_visible(timeout=STEP_TIMEOUT)
    frame.get_by_role("button", name="Install").click()

    error = frame.locator("#eui-error")
    expect(error).to_be_visible(timeout=STEP_TIMEOUT)
    retry = error.get_by_role("button", name="Try again")
    expect(retry).to_be_focused()
    shot(page, artifacts_dir, "error-try-again")
    assert len(attempts) == 1
    assert callbacks(page) == []
    assert not any(w["installed"] for w in isv.listing("retrier")[0]["workflows"])

    retry.click()
    expect(page.locator("iframe[src*='/modal/']")).to_have_count(0, timeout=STEP_TIMEOUT)
    page.wait_for_timeout(300)  # a second callback, if the SDK were to fire one, lands here
    assert len(attempts) == 2
    (result,) = callbacks(page)
    assert result["success"] is True and len(result["workflowIds"]) == 2
    (integration,) = isv.listing("retrier")
    assert all(w["installed"] for w in integration["workflows"])


def test_a_click_on_the_backdrop_closes_the_modal_and_calls_back_once(page: Page, isv: Isv) -> None:
    sign_in(page, isv, "backdrop")
    page.click("button[data-integration]")
    frame = modal(page)
    expect(frame.locator("[data-step=workflows]")).to_be_visible(timeout=STEP_TIMEOUT)
    # A click inside the dialog does not close it.
    frame.locator("#eui-title").click()
    expect(page.locator("iframe[src*='/modal/']")).to_have_count(1)
    frame.locator(".eui-backdrop").click(position={"x": 5, "y": 5})
    expect(page.locator("iframe[src*='/modal/']")).to_have_count(0, timeout=STEP_TIMEOUT)
    page.wait_for_timeout(300)  # a second callback, if the SDK were to fire one, lands here
    assert callbacks(page) == [{"success": False}]


def test_the_modal_is_usable_with_the_keyboard_alone(page: Page, isv: Isv) -> None:
    sign_in(page, isv, "keyboard")
    page.focus("button[data-integration]")
    page.keyboard.press("Enter")
    frame = modal(page)
    expect(frame.locator("[data-step=workflows]")).to_be_visible(timeout=STEP_TIMEOUT)
    inside = page.frames[-1]
    # Focus starts on the first control and Tab never leaves the dialog, both ways.
    assert inside.evaluate("document.activeElement.name") == "workflowIds"
    for key in ["Tab"] * 6 + ["Shift+Tab"] * 6:
        page.keyboard.press(key)
        assert inside.evaluate(
            "document.querySelector('.eui-dialog').contains(document.activeElement)"
        ), key
    page.keyboard.press("Space")  # toggles whichever checkbox or button has focus, harmless
    frame.locator("button[type=submit]").focus()
    page.keyboard.press("Enter")
    expect(frame.locator("[data-step=auth]")).to_be_visible(timeout=STEP_TIMEOUT)
    page.keyboard.press("Escape")
    expect(page.locator("iframe[src*='/modal/']")).to_have_count(0, timeout=STEP_TIMEOUT)
    assert callbacks(page) == [{"success": False}]


# --- the popup closed by the user -----------------------------------------------------------------


def test_closing_the_popup_is_reported_and_can_be_retried(
    page: Page, isv: Isv, artifacts_dir: Path
) -> None:
    sign_in(page, isv, "closer")
    page.click("button[data-integration]")
    frame = modal(page)
    frame.locator("button[type=submit]").click()
    expect(frame.locator("[data-step=auth]")).to_be_visible(timeout=STEP_TIMEOUT)
    with page.expect_popup() as popup_info:
        frame.get_by_role("button", name="Connect with Sandbox Commerce").click()
    popup = popup_info.value
    expect(popup.get_by_role("button", name="Approve")).to_be_visible(timeout=STEP_TIMEOUT)
    popup.close()
    expect(frame.locator("#eui-error")).to_contain_text(
        "closed before it finished", timeout=STEP_TIMEOUT
    )
    shot(page, artifacts_dir, "popup-closed")
    assert isv.credentials("closer") == []
    # Escape closes the modal; the callback says it did not succeed.
    frame.locator("#eui-error button").press("Escape")
    expect(page.locator("iframe[src*='/modal/']")).to_have_count(0, timeout=STEP_TIMEOUT)
    assert callbacks(page) == [{"success": False}]


# --- replayed and tampered callbacks --------------------------------------------------------------


def test_a_replayed_or_tampered_callback_is_refused(page: Page, isv: Isv) -> None:
    sign_in(page, isv, "replay")
    page.click("button[data-integration]")
    frame = modal(page)
    frame.locator("button[type=submit]").click()
    expect(frame.locator("[data-step=auth]")).to_be_visible(timeout=STEP_TIMEOUT)
    callback_urls: list[str] = []
    with page.expect_popup() as popup_info:
        frame.get_by_role("button", name="Connect with Sandbox Commerce").click()
    popup = popup_info.value
    popup.on(
        "request",
        lambda request: (
            callback_urls.append(request.url) if "/oauth/callback/" in request.url else None
        ),
    )
    popup.get_by_role("button", name="Approve").click()
    expect(frame.locator("[data-step=configure]")).to_be_visible(timeout=STEP_TIMEOUT)
    (callback_url,) = callback_urls

    other = page.context.new_page()
    replayed = other.goto(callback_url)
    assert replayed is not None and replayed.status == 400
    expect(other.locator("body")).to_contain_text("not")
    tampered = other.goto(re.sub(r"state=[^&]+", "state=forged-state-value", callback_url))
    assert tampered is not None and tampered.status == 400
    other.close()
    assert len(isv.credentials("replay")) == 1


# --- edit, hide ---------------------------------------------------------------------------------


def test_edit_reopens_with_saved_values_and_hide_installs_silently(
    page: Page, isv: Isv, artifacts_dir: Path
) -> None:
    username = "editor"
    key = isv.sandbox.new_key()
    with isv.api as api:
        api.post("/users", json={"username": username})
        created = api.post(
            f"/users/{username}/credentials",
            json={"app": "sandbox", "type": "api_key", "data": {"access_token": key}},
        )
        assert created.status_code == 201, created.text
    sign_in(page, isv, username)
    # hide: everything is known (a credential exists, every field has a default).
    page.evaluate(
        """id => new Promise(resolve => Alloy.install({integrationId: id, hide: true,
            callback: r => { window.hidden = r; resolve(); }}))""",
        isv.integration_id,
    )
    hidden = page.evaluate("window.hidden")
    assert hidden["success"] is True and len(hidden["workflowIds"]) == 2
    assert page.evaluate("document.querySelectorAll('iframe').length") == 0

    page.click("#sign-in")  # refresh the list: now installed, so the button says Edit
    expect(page.locator("button[data-integration]")).to_have_text("Edit sandbox")
    page.click("button[data-integration]")
    frame = modal(page)
    expect(frame.locator("[data-step=configure]")).to_be_visible(timeout=STEP_TIMEOUT)
    expect(frame.locator("input[type=url]")).to_have_value("http://127.0.0.1:8000/demo/receiver")
    shot(page, artifacts_dir, "edit")
    frame.locator("input[type=url]").fill("https://edited.example/orders")
    frame.locator("button[type=submit]").click()
    frame.get_by_role("button", name="Install").click()
    expect(page.locator("iframe[src*='/modal/']")).to_have_count(0, timeout=STEP_TIMEOUT)
    with isv.api as api:
        workflows = api.get("/workflows", params={"userId": username}).json()["data"]
    assert any(w["installed"] for w in workflows)


# --- framing refused for an origin the environment does not list -------------------------------


def test_the_modal_refuses_to_render_when_framed_by_an_origin_not_allowed(
    page: Page, isv: Isv
) -> None:
    with isv.api as api:
        listed = api.put("/environment", json={"allowedOrigins": ["https://only.example"]})
        assert listed.status_code == 200, listed.text
    try:
        refused: list[str] = []
        page.on("console", lambda message: refused.append(message.text))
        page.goto(isv.host.url)
        page.fill("#username", "framed")
        # The API refuses this origin now too (CORS), so ask for the token from the page itself.
        token = user_token_of(page)
        page.evaluate(
            "([t, id]) => { Alloy.setToken(t); Alloy.install({integrationId: id}); }",
            [token, isv.integration_id],
        )
        page.wait_for_timeout(1500)
        frames: list[Frame] = [f for f in page.frames if f != page.main_frame]
        assert frames, "the SDK added its iframe"
        assert all("eui-body" not in _content(f) for f in frames)
        assert any("frame-ancestors" in text for text in refused), refused
    finally:
        with isv.api as api:
            api.put("/environment", json={"allowedOrigins": []})


def _content(frame: Frame) -> str:
    try:
        return frame.content()
    except Exception:  # a refused frame may have no document to read
        return ""


# --- the hosted install link ---------------------------------------------------------------------


def test_a_hosted_install_link_runs_the_same_flow_as_a_full_page_once(
    page: Page, isv: Isv, artifacts_dir: Path, seen: list[str]
) -> None:
    with isv.api as api:
        api.post("/users", json={"username": "linked"})
        made = api.get(f"/users/linked/integrations/{isv.integration_id}/install-url")
        assert made.status_code == 200, made.text
    url = made.json()["url"]
    page.set_viewport_size({"width": 768, "height": 900})
    page.goto(url)
    expect(page.locator("[data-step=workflows]")).to_be_visible(timeout=STEP_TIMEOUT)
    expect(page.locator(".eui-close")).to_have_count(0)  # a page, not a dialog over one
    page.locator("button[type=submit]").click()
    page.get_by_label("Sandbox API key").fill(isv.sandbox.new_key())
    page.get_by_role("button", name="Save API key").click()
    expect(page.locator("[data-step=configure]")).to_be_visible(timeout=STEP_TIMEOUT)
    page.locator("button[type=submit]").click()
    page.get_by_role("button", name="Install").click()
    expect(page.locator("[data-step=done]")).to_contain_text("connected and running")
    expect(page.get_by_text("You can close this page.")).to_be_visible()
    shot(page, artifacts_dir, "hosted-link-done")
    (integration,) = isv.listing("linked")
    assert all(w["installed"] for w in integration["workflows"])
    again = page.goto(url)
    assert again is not None and again.status == 404
    expect(page.locator("h1")).to_have_text("This link has expired")
    # The page's user token never travelled in a URL.
    assert not [u for u in seen if "eyJ" in u]
