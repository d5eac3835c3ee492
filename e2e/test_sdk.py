"""The browser SDK in real Chromium, loaded cross-origin by an ISV page (docs/sdk.md).

Three origins take part, all on loopback:

- the service: the real `embedded-ui serve` of e2e/conftest.py (``http://127.0.0.1:P``), which
  serves ``/embedded.js`` and the API;
- the ISV: a small HTTP server started here (``http://127.0.0.1:Q``) whose page loads
  ``<script src="{service}/embedded.js">``;
- a foreign origin: the same small server reached as ``http://localhost:Q``.

The real modal page is not part of this branch, so ``{service}/modal/**`` is answered by a
*test modal* (``page.route``) that speaks the protocol: it posts ``eui:ready``, records every
message its parent sends, and posts whatever the test tells it to.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Frame, Page, Request, Route, expect

from e2e.conftest import run_cli

pytestmark = pytest.mark.e2e

REPO = Path(__file__).parents[1]
UI_TIMEOUT = 10_000  # milliseconds


def fake_token(workspace: str = "ws_test", environment: str = "development") -> str:
    """A JWT-shaped token: the SDK reads its payload but never verifies it (the server does)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    payload = {"sub": "u1", "workspace": workspace, "environment": environment, "exp": 2**31}
    return f"{part({'alg': 'EdDSA', 'typ': 'eui-user+jwt'})}.{part(payload)}.c2lnbmF0dXJl"


TOKEN = fake_token()

# The test modal: what the real /modal/{workspace}/{environment} page must at least do.
TEST_MODAL = """<!doctype html><meta charset=utf-8><title>test modal</title>
<style>html,body{background:transparent}</style>
<button id=first>First control</button>
<script>
  window.received = [];
  addEventListener("message", (e) => {
    if (e.source !== parent) return;
    received.push({origin: e.origin, data: e.data});
  });
  window.send = (message) => parent.postMessage(message, "*");
  send({type: "eui:ready"});
</script>"""

# An ISV page. {sdk} is the script tag(s); the page records what the SDK tells it.
HOST_PAGE = """<!doctype html><meta charset=utf-8><title>ISV</title>
<button id=launch>Connect an app</button>
{sdk}
<script>
  window.calls = [];
  window.events = [];
  window.seen = [];
  addEventListener("message", (e) => seen.push(e.origin + " " + (e.data && e.data.type)));
  window.listen = () => ["open", "close", "success", "error"].forEach((name) =>
    Alloy.on(name, (detail) => events.push(detail === undefined ? [name] : [name, detail])));
  window.record = (options) => Object.assign({callback: (r) => calls.push(r)}, options);
  window.attempt = (fn) => { try { fn(); return null; } catch (e) { return e.message; } };
</script>"""

# A page on another origin that tries to drive the SDK from its own iframe.
FOREIGN_FRAME = """<!doctype html><title>foreign</title><script>
  window.received = [];
  addEventListener("message", (e) => received.push(e.data));
  for (const type of ["eui:ready", "eui:open", "eui:success", "eui:close"])
    parent.postMessage({type, result: {success: true}}, "*");
</script>"""


class _IsvHandler(BaseHTTPRequestHandler):
    service = ""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/foreign":
            body = FOREIGN_FRAME
        else:
            copies = int(parse_qs(url.query).get("copies", ["1"])[0])
            tag = f'<script src="{self.service}/embedded.js"></script>'
            between = "<script>window.firstAlloy = window.Alloy;</script>"
            body = HOST_PAGE.replace("{sdk}", between.join([tag] * copies))
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def isv(live_server: str) -> Iterator[str]:
    """The ISV's origin: a loopback HTTP server on its own port, serving the host page."""
    handler = type("IsvHandler", (_IsvHandler,), {"service": live_server})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def tokens_used() -> list[str]:
    return [TOKEN]


@pytest.fixture
def sdk_page(page: Page, live_server: str, tokens_used: list[str]) -> Iterator[Page]:
    """A page whose service modal is the test modal, and that proves no URL carries a token."""
    requests: list[str] = []
    errors: list[str] = []

    def on_request(request: Request) -> None:
        requests.append(request.url)

    page.on("request", on_request)
    page.on("pageerror", lambda error: errors.append(str(error)))

    def modal(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html; charset=utf-8", body=TEST_MODAL)

    page.route(f"{live_server}/modal/**", modal)
    yield page
    assert requests, "no request was recorded"
    for token in tokens_used:
        leaked = [url for url in requests if token in url or token.split(".")[2] in url]
        assert leaked == [], f"a request URL carried the user token: {leaked}"
    assert errors == [], errors


def open_host(page: Page, isv: str, copies: int = 1) -> None:
    page.goto(f"{isv}/?copies={copies}")
    page.wait_for_function("typeof window.Alloy === 'object'")


def wait_for_frame(page: Page, address: str | re.Pattern[str]) -> Frame:
    """The frame showing `address`, once it has navigated there.

    An iframe element is attached before its frame has navigated; on a busy machine the
    frame shows up a moment later.
    """
    deadline = time.monotonic() + UI_TIMEOUT / 1000
    while (frame := page.frame(url=address)) is None:
        assert time.monotonic() < deadline, f"no frame ever showed {address}"
        page.wait_for_timeout(50)
    return frame


def modal_frame(page: Page, live_server: str) -> Frame:
    page.wait_for_selector("iframe[src*='/modal/']", state="attached", timeout=UI_TIMEOUT)
    frame = wait_for_frame(page, re.compile(re.escape(live_server) + "/modal/"))
    frame.wait_for_function("window.received && window.received.length > 0", timeout=UI_TIMEOUT)
    return frame


def install(page: Page, options: str, token: str = TOKEN) -> None:
    """Set the token, record every event, and install with ``options`` (a JS object literal)."""
    page.evaluate(
        f"(t) => {{ Alloy.setToken(t); listen(); Alloy.install(record({options})); }}", token
    )


def settle(page: Page) -> None:
    """Let every message already posted be delivered (a round trip through the task queue)."""
    page.evaluate("new Promise((resolve) => setTimeout(resolve, 100))")


def test_install_delivers_the_token_by_message_and_calls_back_exactly_once(
    sdk_page: Page, live_server: str, isv: str
) -> None:
    page = sdk_page
    open_host(page, isv)
    page.evaluate(
        """(token) => {
            Alloy.setToken(token);
            listen();
            Alloy.install(record({integrationId: "int-1", versionIds: ["v1"], title: "Connect",
                                  preFilledValues: {"stream.url": "https://example.com"}}));
        }""",
        TOKEN,
    )
    iframe = page.locator("iframe")
    expect(iframe).to_have_count(1)
    expect(iframe).to_have_attribute("src", f"{live_server}/modal/ws_test/development")
    expect(iframe).to_have_attribute("title", "Connect")
    frame = modal_frame(page, live_server)
    received = frame.evaluate("received")
    assert received == [
        {
            "origin": isv,
            "data": {
                "type": "eui:init",
                "token": TOKEN,
                "operation": "install",
                "params": {
                    "integrationId": "int-1",
                    "versionIds": ["v1"],
                    "title": "Connect",
                    "preFilledValues": {"stream.url": "https://example.com"},
                },
            },
        }
    ]
    assert TOKEN not in (iframe.get_attribute("src") or "")

    frame.evaluate("send({type: 'eui:open'})")
    page.wait_for_function("events.length === 1")
    # A success, a stray second success and a close, all posted before the SDK reacts.
    frame.evaluate(
        """() => {
            send({type: "eui:success", result: {success: true, workflowIds: ["w1"],
                                                credentialId: "c1", extra: "<b>x</b>"}});
            send({type: "eui:success", result: {success: true, workflowIds: ["w2"]}});
            send({type: "eui:close"});
        }"""
    )
    expect(iframe).to_have_count(0)
    settle(page)
    result = {"success": True, "workflowIds": ["w1"], "credentialId": "c1"}
    assert page.evaluate("calls") == [result]
    assert page.evaluate("events") == [["open"], ["success", result], ["close"]]


def test_messages_from_other_origins_and_other_windows_are_ignored(
    sdk_page: Page, live_server: str, isv: str
) -> None:
    page = sdk_page
    open_host(page, isv)
    install(page, "{integrationId: 'i'}")
    sdk_frame = modal_frame(page, live_server)
    foreign = isv.replace("127.0.0.1", "localhost")
    # A foreign-origin iframe, a second iframe on the service's own origin, the page itself.
    page.evaluate(
        """([foreign, service]) => {
            for (const src of [foreign + "/foreign", service + "/modal/other/development"]) {
                const f = document.createElement("iframe");
                f.src = src;
                f.className = "intruder";
                document.body.appendChild(f);
            }
            window.postMessage({type: "eui:close"}, "*");
            window.postMessage({type: "eui:success", result: {}}, "*");
        }""",
        [foreign, live_server],
    )
    page.wait_for_function(f"seen.filter((s) => s.startsWith({json.dumps(foreign)})).length === 4")
    other = wait_for_frame(page, f"{live_server}/modal/other/development")
    other.wait_for_function("typeof window.send === 'function'")
    other.evaluate(
        """() => { send({type: "eui:success", result: {success: true}});
                  send({type: "eui:open"}); send({type: "eui:close"}); }"""
    )
    from_service = f"seen.filter((s) => s.startsWith({json.dumps(live_server)})).length"
    page.wait_for_function(f"{from_service} >= 5")
    settle(page)

    assert page.evaluate("calls") == []
    expect(page.locator("iframe:not(.intruder)")).to_have_count(1)
    assert other.evaluate("received") == [], "the token went to a window that is not the SDK's"
    assert len(sdk_frame.evaluate("received")) == 1  # the foreign eui:ready got no init

    # The SDK was listening all along: its own modal still closes it.
    sdk_frame.evaluate("send({type: 'eui:close'})")
    page.wait_for_function("calls.length === 1")
    assert page.evaluate("calls") == [{"success": False}]


def test_the_modal_window_is_not_trusted_once_it_shows_another_origin(
    sdk_page: Page, live_server: str, isv: str
) -> None:
    """Same window, other origin: only the origin check can refuse these messages."""
    page = sdk_page
    open_host(page, isv)
    install(page, "{integrationId: 'i'}")
    foreign = isv.replace("127.0.0.1", "localhost")
    modal_frame(page, live_server)
    # The host page points the SDK's own iframe elsewhere: the window stays the same.
    # (Chromium's local-network checks forbid the routed modal from navigating to loopback.)
    page.evaluate("(src) => { document.querySelector('iframe').src = src; }", f"{foreign}/foreign")
    page.wait_for_function(f"seen.filter((s) => s.startsWith({json.dumps(foreign)})).length === 4")
    settle(page)
    assert page.evaluate("calls") == []
    assert page.evaluate("events") == []
    expect(page.locator("iframe")).to_have_count(1)
    navigated = page.frame(url=f"{foreign}/foreign")
    assert navigated is not None
    assert navigated.evaluate("received") == [], "the foreign page's eui:ready got an answer"
    page.evaluate("Alloy.close()")
    assert page.evaluate("calls") == [{"success": False}]


def test_calls_before_set_token_and_bad_options_throw_naming_the_expectation(
    sdk_page: Page, isv: str
) -> None:
    page = sdk_page
    open_host(page, isv)

    def attempt(expression: str) -> str | None:
        message: str | None = page.evaluate(f"attempt(() => {expression})")
        return message

    assert attempt("Alloy.install({integrationId: 'i'})") == (
        "Alloy.install: expected a user token first: call Alloy.setToken(token)"
    )
    assert attempt("Alloy.getIntegrations()") == (
        "Alloy.getIntegrations: expected a user token first: call Alloy.setToken(token)"
    )
    expected_token = (
        "Alloy.setToken: expected a user token (the JWT from GET /2024-03/users/{userId}/token)"
    )
    for bad in ("undefined", "'abc'", "'a.b.c'", "'a.' + btoa('{}') + '.c'", "42"):
        assert attempt(f"Alloy.setToken({bad})") == expected_token, bad

    page.evaluate("(t) => Alloy.setToken(t)", TOKEN)
    expected = {
        "Alloy.install()": "Alloy.install: expected an options object",
        "Alloy.install({})": (
            "Alloy.install: expected integrationId (string) or workflowIds (array of strings)"
        ),
        "Alloy.edit({workflowIds: 'w'})": "Alloy.edit: expected workflowIds (array of strings)",
        "Alloy.update({workflowIds: [1]})": "Alloy.update: expected workflowIds (array of strings)",
        "Alloy.install({integrationId: 1})": "Alloy.install: expected integrationId (string)",
        "Alloy.install({integrationId: 'i', callback: 'f'})": (
            "Alloy.install: expected callback (function)"
        ),
        "Alloy.install({integrationId: 'i', hide: 'yes'})": (
            "Alloy.install: expected hide (boolean)"
        ),
        "Alloy.install({integrationId: 'i', preFilledValues: []})": (
            "Alloy.install: expected preFilledValues (object)"
        ),
        "Alloy.authenticate({})": "Alloy.authenticate: expected app (string)",
        "Alloy.deactivate({})": "Alloy.deactivate: expected {workflowId} (string)",
        "Alloy.reactivate()": "Alloy.reactivate: expected {workflowId} (string)",
        "Alloy.on('opened', () => 1)": (
            "Alloy.on: expected an event (open, close, success, error) and a function"
        ),
        "Alloy.on('open')": (
            "Alloy.on: expected an event (open, close, success, error) and a function"
        ),
    }
    for expression, message in expected.items():
        assert attempt(expression) == message, expression
    assert page.locator("iframe").count() == 0
    assert page.evaluate("calls") == []


def test_loading_the_script_twice_keeps_one_alloy_and_one_listener(
    sdk_page: Page, live_server: str, isv: str
) -> None:
    page = sdk_page
    open_host(page, isv, copies=2)
    assert page.evaluate("window.Alloy === window.firstAlloy")
    assert page.evaluate("document.querySelectorAll('script[src$=\"/embedded.js\"]').length") == 2
    install(page, "{integrationId: 'i'}")
    frame = modal_frame(page, live_server)
    frame.evaluate("new Promise((resolve) => setTimeout(resolve, 100))")
    # One listener: one init for one ready (two listeners would each have posted one).
    assert len(frame.evaluate("received")) == 1
    frame.evaluate("send({type: 'eui:success', result: {workflowIds: ['w']}})")
    page.wait_for_function("calls.length > 0")
    settle(page)
    assert page.evaluate("calls") == [{"success": True, "workflowIds": ["w"]}]


def test_hide_keeps_the_iframe_invisible_until_the_modal_opens(
    sdk_page: Page, live_server: str, isv: str
) -> None:
    page = sdk_page
    open_host(page, isv)
    install(page, "{integrationId: 'i', hide: true}")
    iframe = page.locator("iframe")
    frame = modal_frame(page, live_server)  # present, loaded and initialised while hidden
    assert frame.evaluate("received")[0]["data"]["params"] == {"integrationId": "i", "hide": True}
    expect(iframe).to_be_hidden()
    # Hidden means out of the way: the page under it still gets the clicks.
    page.locator("#launch").click(timeout=UI_TIMEOUT)
    assert page.evaluate("events") == []

    frame.evaluate("send({type: 'eui:open'})")
    expect(iframe).to_be_visible()
    page.wait_for_function("document.activeElement === document.querySelector('iframe')")
    assert page.evaluate("events") == [["open"]]


def test_focus_goes_to_the_modal_and_comes_back_on_close(
    sdk_page: Page, live_server: str, isv: str
) -> None:
    page = sdk_page
    open_host(page, isv)
    page.evaluate(
        """(t) => {
            Alloy.setToken(t);
            listen();
            document.querySelector("#launch").addEventListener("click",
                () => Alloy.install(record({integrationId: "i"})));
        }""",
        TOKEN,
    )
    page.locator("#launch").focus()
    page.keyboard.press("Enter")
    iframe = page.locator("iframe")
    expect(iframe).to_be_visible()
    page.wait_for_function("document.activeElement === document.querySelector('iframe')")
    style = page.evaluate("getComputedStyle(document.querySelector('iframe'))['zIndex']")
    assert style == "2147483647"
    frame = modal_frame(page, live_server)
    frame.evaluate("send({type: 'eui:open'}); document.querySelector('#first').focus()")
    frame.evaluate("send({type: 'eui:close'})")
    expect(iframe).to_have_count(0)
    page.wait_for_function("document.activeElement === document.querySelector('#launch')")
    assert page.evaluate("calls") == [{"success": False}]
    assert page.evaluate("events") == [["open"], ["close"]]


def test_close_replacement_and_destroy_each_end_the_call_once(
    sdk_page: Page, live_server: str, isv: str
) -> None:
    page = sdk_page
    open_host(page, isv)
    page.evaluate(
        """(t) => {
            Alloy.setToken(t);
            listen();
            window.first = []; window.second = [];
            Alloy.install({integrationId: "a", callback: (r) => first.push(r)});
            Alloy.authenticate({app: "sandbox", callback: (r) => second.push(r)});
        }""",
        TOKEN,
    )
    frame = modal_frame(page, live_server)
    expect(page.locator("iframe")).to_have_count(1)
    assert page.evaluate("first") == [{"success": False}]  # replaced by the second call
    init = frame.evaluate("received")[0]["data"]
    assert (init["operation"], init["params"]) == ("authenticate", {"app": "sandbox"})

    page.evaluate("Alloy.close(); Alloy.close();")
    expect(page.locator("iframe")).to_have_count(0)
    assert page.evaluate("second") == [{"success": False}]

    page.evaluate("Alloy.edit(record({workflowIds: ['w']}))")
    modal_frame(page, live_server)
    page.evaluate("Alloy.destroy()")
    expect(page.locator("iframe")).to_have_count(0)
    assert page.evaluate("calls") == [{"success": False}]
    assert page.evaluate("events") == [["close"], ["close"], ["close"]]
    # The token is forgotten and so is every listener.
    assert page.evaluate("attempt(() => Alloy.update({workflowIds: ['w']}))") == (
        "Alloy.update: expected a user token first: call Alloy.setToken(token)"
    )
    page.evaluate("(t) => { Alloy.setToken(t); Alloy.update({workflowIds: ['w']}); }", TOKEN)
    modal_frame(page, live_server).evaluate("send({type: 'eui:close'})")
    expect(page.locator("iframe")).to_have_count(0)
    settle(page)
    assert page.evaluate("events.length") == 3


# --- The JSON API with a real user token -------------------------------------------------------


@pytest.fixture(scope="session")
def end_user(live_server: str, live_server_env: dict[str, str]) -> dict[str, str]:
    """A workspace with the quickstart's integrations released, a user, and a user token."""
    workspace = run_cli(live_server_env, "workspace", "create", "sdk-e2e")
    workspace_id = workspace["id"]
    common = ["--workspace", "sdk-e2e", "--environment", "development"]
    key = run_cli(live_server_env, "keys", "create", *common)["key"]
    run_cli(
        live_server_env, "apply", str(REPO / "examples" / "fulfillmently"), *common, "--release"
    )
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=live_server, headers=headers, timeout=10.0) as client:
        user = client.post("/2024-03/users", json={"username": "sdk-e2e"})
        assert user.status_code == 201, user.text
        user_id = user.json()["userId"]
        token = client.get(f"/2024-03/users/{user_id}/token")
        assert token.status_code == 200, token.text
        integrations = client.get("/2024-03/integrations", params={"userId": user_id})
        assert integrations.status_code == 200, integrations.text
        workflows = client.get("/2024-03/workflows", params={"userId": user_id})
        assert workflows.status_code == 200, workflows.text
    return {
        "workspace_id": workspace_id,
        "token": token.json()["token"],
        "integrations": json.dumps(integrations.json()["data"], sort_keys=True),
        "workflows": json.dumps(workflows.json()["data"], sort_keys=True),
    }


def add_cors(page: Page, live_server: str, isv: str) -> None:
    """What the modal branch adds on main, done here by the browser's router so the SDK's
    requests reach the real API today. Only the CORS headers are made up."""

    def answer(route: Route) -> None:
        cors = {
            "Access-Control-Allow-Origin": isv,
            "Access-Control-Allow-Methods": "GET, PUT",
            "Access-Control-Allow-Headers": "x-alloy-user-token, content-type",
        }
        if route.request.method == "OPTIONS":
            route.fulfill(status=204, headers=cors)
            return
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, **cors})

    page.route(f"{live_server}/2024-03/**", answer)


def test_api_calls_reach_the_real_service_with_the_token_in_a_header(
    sdk_page: Page, live_server: str, isv: str, end_user: dict[str, str], tokens_used: list[str]
) -> None:
    page = sdk_page
    tokens_used.append(end_user["token"])
    add_cors(page, live_server, isv)
    headers: list[dict[str, str]] = []
    api = f"{live_server}/2024-03/"
    page.on("request", lambda r: headers.append(r.headers) if r.url.startswith(api) else None)
    open_host(page, isv)
    page.evaluate("(t) => Alloy.setToken(t)", end_user["token"])

    integrations = page.evaluate("Alloy.getIntegrations()")
    assert json.dumps(integrations, sort_keys=True) == end_user["integrations"]
    assert integrations, "the quickstart's integrations are released"
    workflows = page.evaluate("Alloy.getWorkflows()")
    assert json.dumps(workflows, sort_keys=True) == end_user["workflows"]
    failure = page.evaluate(
        "Alloy.deactivate({workflowId: 'nope'}).then(() => 'resolved', (e) => e.message)"
    )
    assert failure == "Workflow 'nope' is not installed for this user.", failure
    workflow_id = workflows[0]["workflowId"]
    failure = page.evaluate(
        "(id) => Alloy.reactivate({workflowId: id}).then(() => 'resolved', (e) => e.message)",
        workflow_id,
    )
    assert failure == f"Workflow {workflow_id!r} is not installed for this user.", failure

    # A token the server refuses: the promise rejects with the server's own message.
    page.evaluate("(t) => Alloy.setToken(t)", TOKEN)
    refused = page.evaluate("Alloy.getWorkflows().then(() => 'resolved', (e) => e.message)")
    assert refused.startswith("The user token"), refused

    assert headers, "the SDK made no API request"
    for sent in headers:
        assert sent.get("x-alloy-user-token") in (end_user["token"], TOKEN)
        assert "cookie" not in sent
        assert "authorization" not in sent
    # Each iframe URL names the workspace of the token: here the real one.
    install(page, "{integrationId: 'x'}", end_user["token"])
    expect(page.locator("iframe")).to_have_attribute(
        "src", f"{live_server}/modal/{end_user['workspace_id']}/development"
    )


def test_get_integrations_from_another_origin_without_help(
    sdk_page: Page, isv: str, end_user: dict[str, str], tokens_used: list[str]
) -> None:
    page = sdk_page
    tokens_used.append(end_user["token"])
    open_host(page, isv)
    page.evaluate("(t) => Alloy.setToken(t)", end_user["token"])
    outcome = page.evaluate("Alloy.getIntegrations().then((d) => d, (e) => 'failed: ' + e.message)")
    assert json.dumps(outcome, sort_keys=True) == end_user["integrations"]
