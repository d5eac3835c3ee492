"""A stand-in for the ISV's own web app, for the demo and the end-to-end tests: a page on
another origin that loads ``embedded.js`` from the service, and the small backend every ISV
writes — it keeps the API key on the server and hands the browser a user token.

For the quickstart's story it also plays the rest of Fulfillmently's backend:

- ``POST /orders`` creates an order in the merchant's sandbox store (the sandbox's API, with
  the sandbox account's key): what a shopper buying in the merchant's store would do;
- ``POST /inbox/deliveries`` is the Stream Data target ("the ISV inbox"): it verifies each
  delivery's Standard Webhooks signature with the endpoint's secret from
  ``GET /stream-endpoints`` (with the ISV's API key), keeps it in memory, and ``GET /inbox``
  lists what arrived with the verification result and the order's status in the sandbox;
- ``POST /inbox/fulfill`` runs the custom event "Fulfillment Updated" for one order
  (``POST /2022-09/run/event``, as the quickstart shows), which updates the order's status in
  the sandbox through the installed workflow;
- ``GET /logs`` lists the user's runs (``GET /workflows/{id}/logs``) for the page's Logs panel.

It uses only the standard library's HTTP server, in a thread: it is a demo of what an ISV
does, not part of the service. The signature check is written out here as an ISV would (any
Standard Webhooks library does the same), not borrowed from the service's code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from embedded_ui.templating import render

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")
MAX_DELIVERY_BYTES = 1_048_576
MAX_DELIVERIES = 200
TOLERANCE_SECONDS = 300
FULFILLMENT_EVENT = "Fulfillment Updated"
INBOX_PATH = "/inbox/deliveries"


def verify_standard_webhook(
    secret: str, headers: dict[str, str], body: bytes, now: float | None = None
) -> str | None:
    """None when ``webhook-signature`` is a valid v1 signature of ``{id}.{timestamp}.{body}``
    with ``secret`` (``whsec_`` + base64) and the timestamp is within five minutes; otherwise
    why not."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and timestamp and signatures):
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    try:
        sent = int(timestamp)
    except ValueError:
        return "webhook-timestamp is not a number"
    if abs((time.time() if now is None else now) - sent) > TOLERANCE_SECONDS:
        return "webhook-timestamp is more than five minutes off"
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return "the endpoint secret is not whsec_ + base64"
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return None
    return "no signature matches the endpoint secret"


@dataclass
class Delivery:
    """One Stream Data delivery the inbox received (repeats of its webhook-id counted)."""

    number: int
    webhook_id: str
    received_at: str
    verified: bool
    reason: str
    user_id: str
    workflow_id: str
    body: Any
    attempts: int = 1
    runs: list[str] = field(default_factory=list)
    """Messages of the "Fulfillment Updated" runs started from this delivery."""

    @property
    def order(self) -> dict[str, Any] | None:
        """The sandbox order a ``order.created`` webhook carried (Stream Data sends the
        trigger, the app's webhook body, as it is)."""
        data = self.body.get("data") if isinstance(self.body, dict) else None
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            return data
        return None


class DemoHost:
    """``start()`` serves the page on ``host:port``; ``stop()`` shuts it down.

    ``sandbox_url`` and ``sandbox_key`` (the sandbox account's API key) let the page create
    orders and show their status; without them those parts say so."""

    def __init__(
        self,
        service_url: str,
        api_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sandbox_url: str | None = None,
        sandbox_key: str | None = None,
    ):
        self.service_url = service_url.rstrip("/")
        self.api_key = api_key
        self.sandbox_url = sandbox_url.rstrip("/") if sandbox_url else None
        self._sandbox_key = sandbox_key
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._lock = threading.Lock()
        self._deliveries: OrderedDict[str, Delivery] = OrderedDict()
        self._numbers = 0
        self._secret: str | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def inbox_url(self) -> str:
        """Where Stream Data delivers new orders: the demo's workflow points here."""
        return f"{self.url}{INBOX_PATH}"

    def start(self) -> DemoHost:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    # -- what the ISV's backend does ----------------------------------------------------

    def _service(self, prefix: str = "/2024-03") -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.service_url}{prefix}",
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=10,
        )

    def user_token(self, username: str) -> str:
        """What the ISV's backend does: make sure the user exists, then ask for a token."""
        with self._service() as api:
            created = api.post("/users", json={"username": username})
            if created.status_code not in (201, 409):
                created.raise_for_status()
            answer = api.get(f"/users/{quote(username, safe='')}/token")
            answer.raise_for_status()
            token: str = answer.json()["token"]
            return token

    def _sandbox(self) -> httpx.Client:
        if not (self.sandbox_url and self._sandbox_key):
            raise LookupError("The demo does not know the sandbox's API key.")
        return httpx.Client(
            base_url=f"{self.sandbox_url}/api",
            headers={"Authorization": f"Bearer {self._sandbox_key}"},
            timeout=5,
        )

    def create_order(self) -> dict[str, Any]:
        """A new order in the merchant's sandbox store; the sandbox sends ``order.created``
        to the service, which streams it to the inbox."""
        with self._sandbox() as sandbox:
            created = sandbox.post(
                "/orders",
                json={"total": "42.00", "currency": "USD", "items": [{"sku": "TEE-1", "qty": 2}]},
            )
            created.raise_for_status()
            order: dict[str, Any] = created.json()
            return order

    def order_status(self, order_id: str) -> str:
        try:
            with self._sandbox() as sandbox:
                found = sandbox.get(f"/orders/{quote(order_id, safe='')}")
        except (LookupError, httpx.HTTPError) as exc:
            return f"unknown ({exc})"
        if found.status_code != 200:
            return f"unknown (the sandbox answered {found.status_code})"
        return str(found.json().get("status"))

    def _endpoint_secret(self, fresh: bool) -> str | None:
        """The inbox endpoint's ``whsec_`` secret, from ``GET /stream-endpoints``."""
        if self._secret is not None and not fresh:
            return self._secret
        with self._service() as api:
            listed = api.get("/stream-endpoints")
            listed.raise_for_status()
        ours = urlsplit(self.inbox_url)
        for endpoint in listed.json()["data"]:
            theirs = urlsplit(endpoint["url"])
            if endpoint["url"] == self.inbox_url or (
                theirs.path == ours.path and theirs.port == ours.port
            ):
                self._secret = str(endpoint["secret"])
                return self._secret
        return None

    def receive(self, headers: dict[str, str], body: bytes) -> Delivery:
        """Verify and keep one delivery (a repeat of a webhook-id is counted, not listed)."""
        try:
            secret = self._endpoint_secret(fresh=False)
            reason = (
                verify_standard_webhook(secret, headers, body)
                if secret
                else "no stream endpoint for this URL"
            )
            if reason is not None:  # perhaps a new endpoint since we looked: look once more
                secret = self._endpoint_secret(fresh=True)
                if secret:
                    reason = verify_standard_webhook(secret, headers, body)
        except httpx.HTTPError as exc:
            reason = f"could not read the endpoint secret: {exc}"
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        webhook_id = headers.get("webhook-id", "") or f"unnamed-{time.time_ns()}"
        with self._lock:
            known = self._deliveries.get(webhook_id)
            if known is not None and known.verified:
                known.attempts += 1
                return known
            self._numbers += 1
            delivery = Delivery(
                number=self._numbers,
                webhook_id=webhook_id,
                received_at=datetime.now(UTC).strftime("%H:%M:%S UTC"),
                verified=reason is None,
                reason=reason or "",
                user_id=headers.get("x-alloy-userid", ""),
                workflow_id=headers.get("x-alloy-workflowid", ""),
                body=parsed,
            )
            self._deliveries[webhook_id] = delivery
            while len(self._deliveries) > MAX_DELIVERIES:
                self._deliveries.popitem(last=False)
            return delivery

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(reversed(self._deliveries.values()))

    def fulfill(self, number: int) -> str:
        """Run "Fulfillment Updated" for the order of delivery ``number``; what happened."""
        delivery = next((d for d in self.deliveries() if d.number == number), None)
        if delivery is None or not delivery.verified or delivery.order is None:
            return "No verified order delivery with that number."
        with self._service("/2022-09") as api:
            answer = api.post(
                "/run/event",
                json={
                    "event": FULFILLMENT_EVENT,
                    "userId": delivery.user_id,
                    "data": {"orderId": delivery.order["id"], "status": "FULFILLED"},
                },
            )
        if answer.status_code != 202:
            message = f"The service refused: {answer.status_code} {answer.text[:200]}"
        else:
            ids = answer.json().get("executionIds", [])
            message = (
                f"{FULFILLMENT_EVENT} queued for order {delivery.order['id']}: "
                f"{len(ids)} run{'s' if len(ids) != 1 else ''} ({', '.join(ids) or 'none'})."
            )
        with self._lock:
            delivery.runs.append(message)
        return message

    def logs(self, username: str) -> list[dict[str, Any]]:
        """The user's runs of every installed workflow, newest first."""
        runs: list[dict[str, Any]] = []
        with self._service() as api:
            listed = api.get("/integrations", params={"userId": username})
            listed.raise_for_status()
            for integration in listed.json()["data"]:
                for workflow in integration["workflows"]:
                    if not workflow.get("installed"):
                        continue
                    logs = api.get(
                        f"/workflows/{workflow['workflowId']}/logs",
                        params={"userId": username, "limit": 20},
                    )
                    logs.raise_for_status()
                    for run in logs.json()["data"]:
                        runs.append(
                            {
                                "workflow": workflow["name"],
                                "executionId": run["executionId"],
                                "status": run["status"],
                                "trigger": run["triggerType"],
                                "createdAt": run["createdAt"],
                                "error": run.get("error"),
                            }
                        )
        runs.sort(key=lambda r: str(r["createdAt"]), reverse=True)
        return runs

    # -- HTTP ---------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the demo prints its own banner."""

            def _send(
                self,
                status: int,
                body: bytes,
                content_type: str,
                headers: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, data: Any) -> None:
                self._send(status, json.dumps(data).encode(), "application/json")

            def _body(self, limit: int) -> bytes | None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= limit:
                    self._json(413, {"message": f"At most {limit} bytes."})
                    return None
                return self.rfile.read(length)

            def _same_origin(self) -> bool:
                """The page's own buttons only: a browser sends Origin on every POST."""
                origin = self.headers.get("Origin")
                if origin is not None and origin != host.url:
                    self._json(403, {"message": "Only the demo page may do this."})
                    return False
                return True

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                if parts.path == "/":
                    page = render(
                        "demo/host.html",
                        service_url=host.service_url,
                        inbox_url=host.inbox_url,
                        orders=bool(host.sandbox_url and host._sandbox_key),
                    )
                    self._send(200, page.encode(), "text/html; charset=utf-8")
                elif parts.path == "/page":
                    # The integrations page mounted into this page (docs/page.md).
                    page = render("demo/page-host.html", service_url=host.service_url)
                    self._send(200, page.encode(), "text/html; charset=utf-8")
                elif parts.path == "/inbox":
                    deliveries = host.deliveries()
                    statuses = {
                        d.number: host.order_status(str(d.order["id"]))
                        for d in deliveries
                        if d.order is not None
                    }
                    page = render(
                        "demo/inbox.html",
                        deliveries=deliveries,
                        statuses=statuses,
                        inbox_url=host.inbox_url,
                        notice=query.get("notice", [""])[0][:300],
                    )
                    self._send(200, page.encode(), "text/html; charset=utf-8")
                elif parts.path == "/logs":
                    username = query.get("username", [""])[0]
                    if not USERNAME.match(username):
                        self._json(400, {"message": "username: letters, digits, _.@-"})
                        return
                    try:
                        self._json(200, {"data": host.logs(username)})
                    except httpx.HTTPError as exc:
                        self._json(502, {"message": f"The service refused: {exc}"})
                elif parts.path == "/blank":
                    # The smallest framed page: says it loaded (bench/modal.py's baseline).
                    blank = b"<!doctype html><script>parent.postMessage('loaded', '*')</script>"
                    self._send(200, blank, "text/html; charset=utf-8")
                elif parts.path == "/token":
                    username = query.get("username", [""])[0]
                    if not USERNAME.match(username):
                        self._json(400, {"message": "username: letters, digits, _.@-"})
                        return
                    try:
                        token = host.user_token(username)
                    except httpx.HTTPError as exc:
                        self._json(502, {"message": f"The service refused: {exc}"})
                        return
                    self._json(200, {"token": token})
                else:
                    self._send(404, b"not found", "text/plain")

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                if path == INBOX_PATH:
                    body = self._body(MAX_DELIVERY_BYTES)
                    if body is None:
                        return
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    delivery = host.receive(headers, body)
                    if delivery.verified:
                        self._send(204, b"", "text/plain")
                    else:
                        self._json(401, {"message": delivery.reason})
                elif path == "/inbox/fulfill":
                    body = self._body(1024)
                    if body is None or not self._same_origin():
                        return
                    number = parse_qs(body.decode("ascii", "replace")).get("delivery", [""])[0]
                    try:
                        message = (
                            host.fulfill(int(number)) if number.isdigit() else "Which delivery?"
                        )
                    except httpx.HTTPError as exc:
                        message = f"The service could not be reached: {exc}"
                    location = f"/inbox?notice={quote(message)}"
                    self._send(303, b"", "text/plain", {"Location": location})
                elif path == "/orders":
                    if self._body(1024) is None or not self._same_origin():
                        return
                    try:
                        self._json(201, host.create_order())
                    except LookupError as exc:
                        self._json(409, {"message": str(exc)})
                    except httpx.HTTPError as exc:
                        self._json(502, {"message": f"The sandbox refused: {exc}"})
                else:
                    self._send(404, b"not found", "text/plain")

        return Handler
