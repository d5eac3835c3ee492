"""A stand-in for the ISV's own web app, for the demo and the end-to-end tests: a page on
another origin that loads ``embedded.js`` from the service, and the small backend every ISV
writes — it keeps the API key on the server and hands the browser a user token.

It uses only the standard library's HTTP server, in a thread: it is a demo of what an ISV
does, not part of the service.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from embedded_ui.templating import render

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")


class DemoHost:
    """``start()`` serves the page on ``host:port``; ``stop()`` shuts it down."""

    def __init__(self, service_url: str, api_key: str, host: str = "127.0.0.1", port: int = 0):
        self.service_url = service_url.rstrip("/")
        self._api_key = api_key
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> DemoHost:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def user_token(self, username: str) -> str:
        """What the ISV's backend does: make sure the user exists, then ask for a token."""
        headers = {"Authorization": f"Bearer {self._api_key}"}
        with httpx.Client(base_url=f"{self.service_url}/2024-03", headers=headers) as api:
            created = api.post("/users", json={"username": username})
            if created.status_code not in (201, 409):
                created.raise_for_status()
            answer = api.get(f"/users/{quote(username, safe='')}/token")
            answer.raise_for_status()
            token: str = answer.json()["token"]
            return token

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the demo prints its own banner."""

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/":
                    page = render("demo/host.html", service_url=host.service_url)
                    self._send(200, page.encode(), "text/html; charset=utf-8")
                elif parts.path == "/page":
                    # The integrations page mounted into this page (docs/page.md).
                    page = render("demo/page-host.html", service_url=host.service_url)
                    self._send(200, page.encode(), "text/html; charset=utf-8")
                elif parts.path == "/blank":
                    # The smallest framed page: says it loaded (bench/modal.py's baseline).
                    blank = b"<!doctype html><script>parent.postMessage('loaded', '*')</script>"
                    self._send(200, blank, "text/html; charset=utf-8")
                elif parts.path == "/token":
                    username = parse_qs(parts.query).get("username", [""])[0]
                    if not USERNAME.match(username):
                        self._send(
                            400,
                            b'{"message": "username: letters, digits, _.@-"}',
                            "application/json",
                        )
                        return
                    try:
                        token = host.user_token(username)
                    except httpx.HTTPError as exc:
                        body = json.dumps({"message": f"The service refused: {exc}"}).encode()
                        self._send(502, body, "application/json")
                        return
                    self._send(200, json.dumps({"token": token}).encode(), "application/json")
                else:
                    self._send(404, b"not found", "text/plain")

        return Handler
