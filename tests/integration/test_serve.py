"""`embedded-ui serve` and `embedded-ui demo` as real processes on a loopback port.

Each test starts the command in its own process group with a private SQLite file, waits (bounded)
for ``GET /health``, talks HTTP to it, then stops the whole group and checks that it is gone.
These take a few seconds each: Granian starts a worker process that imports the app.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

READY_TIMEOUT = 45.0  # seconds for the server to answer /health (generous: CI machines are busy)
STOP_TIMEOUT = 20.0  # seconds for the process group to exit after SIGTERM
KEY_LINE = re.compile(r"^\s*Development key:\s+(eui_dev_\S+)\s*$", re.MULTILINE)


@pytest.fixture(scope="session")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The parent's environment without EMBEDDED_UI_* variables, with a bytecode cache.

    With ``PYTHONDONTWRITEBYTECODE`` set, each process would recompile Litestar and SQLAlchemy.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_UI_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a recycled id owned by someone else
        return False
    return True


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


@dataclass
class Server:
    """A running `embedded-ui` process group and where its output goes."""

    process: subprocess.Popen[bytes]
    base_url: str
    stdout_path: Path
    stderr_path: Path
    returncode: int | None = field(default=None, init=False)

    def output(self) -> str:
        out = self.stdout_path.read_text(encoding="utf-8", errors="replace")
        err = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        return f"--- stdout\n{out}\n--- stderr\n{err}"

    def wait_until_healthy(self, timeout: float = READY_TIMEOUT) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}\n{self.output()}")
            try:
                response = httpx.get(f"{self.base_url}/health", timeout=2.0)
            except httpx.TransportError:
                pass
            else:
                if response.status_code == 200:
                    return response
            if time.monotonic() > deadline:
                pytest.fail(f"/health did not answer 200 within {timeout}s\n{self.output()}")
            time.sleep(0.2)

    def wait_for_stdout(self, pattern: re.Pattern[str], timeout: float = READY_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            match = pattern.search(self.stdout_path.read_text(encoding="utf-8", errors="replace"))
            if match:
                return match.group(1)
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"stdout never matched {pattern.pattern!r}\n{self.output()}")
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM the whole group; SIGKILL whatever outlives the grace period. Idempotent."""
        if self.returncode is not None:
            return self.returncode
        pgid = self.process.pid  # start_new_session: the leader's pid is the group id
        _signal_group(pgid, signal.SIGTERM)
        try:
            self.returncode = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT)
            self.returncode = -signal.SIGKILL
        # Workers leave with the main process; give them the same bounded grace.
        deadline = time.monotonic() + STOP_TIMEOUT
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
            pytest.fail(f"workers outlived the main process\n{self.output()}")
        return self.returncode


@contextmanager
def running(command: str, tmp_path: Path, env: dict[str, str], *extra: str) -> Iterator[Server]:
    """Run ``embedded-ui COMMAND --port <free port>`` on 127.0.0.1 until the block ends."""
    port = free_port()
    child_env = {
        **env,
        "EMBEDDED_UI_HOST": "127.0.0.1",
        "EMBEDDED_UI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'embedded-ui.sqlite3'}",
        "EMBEDDED_UI_LOG_LEVEL": "WARNING",
    }
    stdout_path, stderr_path = tmp_path / f"{command}.out", tmp_path / f"{command}.err"
    with ExitStack() as stack:
        stdout = stack.enter_context(stdout_path.open("wb"))
        stderr = stack.enter_context(stderr_path.open("wb"))
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "embedded_ui", command, "--port", str(port), *extra],
            cwd=tmp_path,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        server = Server(process, f"http://127.0.0.1:{port}", stdout_path, stderr_path)
        try:
            yield server
        finally:
            server.stop()


def test_serve_answers_health_and_stops_on_sigterm(
    tmp_path: Path, base_env: dict[str, str]
) -> None:
    with running("serve", tmp_path, base_env) as server:
        health = server.wait_until_healthy()
        assert health.json() == {"status": "ok"}

        with httpx.Client(base_url=server.base_url, timeout=10.0) as client:
            refused = client.get("/2024-03/users")
            assert refused.status_code == 401, refused.text
            assert refused.json()["code"] == "unauthorized"
            assert refused.headers["www-authenticate"] == "Bearer"

        assert server.stop() == 0, server.output()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.base_url}/health", timeout=2.0)


def test_processes_starting_together_on_a_new_sqlite_file_migrate_it_once(
    tmp_path: Path, base_env: dict[str, str]
) -> None:
    """On SQLite, Alembic's DDL runs outside a transaction: processes starting together on a
    new file each found no tables and created them, and one crashed ("table ... already
    exists"; seen with `serve --workers 2`, and with 2 of 12 `db upgrade`s run 4 at a time).
    store/db.py serialises them with a lock file beside the database."""
    for attempt in range(4):
        database = f"sqlite+aiosqlite:///{tmp_path / f'attempt-{attempt}.sqlite3'}"
        upgrades = [
            subprocess.Popen(
                [sys.executable, "-m", "embedded_ui", "db", "upgrade", "--json"],
                env={**base_env, "EMBEDDED_UI_DATABASE_URL": database},
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(4)
        ]
        outcomes = [(p.communicate(timeout=120), p.returncode) for p in upgrades]
        for (_, err), code in outcomes:
            assert code == 0, err.decode(errors="replace")[-2000:]
        assert len({out for (out, _), _ in outcomes}) == 1  # the same revision, at head

    # `serve --workers 2` on a new file: both workers start, migrate once, and stay up.
    with running("serve", tmp_path, base_env, "--workers", "2") as server:
        server.wait_until_healthy()
        time.sleep(1.0)
        assert server.process.poll() is None, server.output()
        assert "already exists" not in server.output()
        assert server.stop() == 0, server.output()


def test_demo_prints_a_working_development_key(tmp_path: Path, base_env: dict[str, str]) -> None:
    sandbox_url = f"http://127.0.0.1:{free_port()}"
    page_url = f"http://127.0.0.1:{free_port()}"
    env = {**base_env, "EMBEDDED_UI_SANDBOX_PUBLIC_URL": sandbox_url}
    page_port = page_url.rsplit(":", 1)[1]
    with running("demo", tmp_path, env, "--page-port", page_port) as server:
        key = server.wait_for_stdout(KEY_LINE)
        server.wait_until_healthy()
        assert f"Service:          {server.base_url}" in server.output()
        assert f"Demo ISV page:    {page_url}" in server.output()

        # The sandbox runs as the OAuth provider, and the demo page loads the SDK from us.
        assert httpx.get(f"{sandbox_url}/health", timeout=5).status_code == 200
        page = httpx.get(page_url, timeout=5)
        assert page.status_code == 200
        assert f'<script src="{server.base_url}/embedded.js"></script>' in page.text
        token = httpx.get(f"{page_url}/token", params={"username": "page-user"}, timeout=10)
        assert token.status_code == 200, token.text
        integrations = httpx.get(
            f"{server.base_url}/2024-03/integrations",
            headers={"x-alloy-user-token": token.json()["token"]},
            timeout=10,
        )
        apps = {i["app"] for i in integrations.json()["data"]}
        assert apps == {"bigcommerce", "sandbox"}
        # The sandbox's OAuth client is configured, so the modal can start a flow at once.
        flow = httpx.post(
            f"{server.base_url}/modal/api/oauth/flows",
            json={"app": "sandbox", "purpose": "install", "connection": {}},
            headers={"x-alloy-user-token": token.json()["token"]},
            timeout=10,
        )
        assert flow.status_code == 201, flow.text

        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=10.0) as client:
            created = client.post("/2024-03/users", json={"username": "gregg"})
            assert created.status_code == 201, created.text
            user = created.json()
            assert user["username"] == "gregg"

            listed = client.get("/2022-09/users")
            assert listed.status_code == 200, listed.text
            assert user["userId"] in [u["userId"] for u in listed.json()["data"]]

        assert server.stop() == 0, server.output()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{sandbox_url}/health", timeout=2)


def _http_exchange(sock: socket.socket, request: bytes) -> tuple[int, bytes]:
    """Send one HTTP/1.1 request (possibly in parts) and read one response off ``sock``."""
    sock.sendall(request)
    response = http.client.HTTPResponse(sock)  # reads exactly one response
    response.begin()
    return response.status, response.read()


def test_serve_answers_a_body_at_its_declared_length_and_keeps_the_connection(
    tmp_path: Path, base_env: dict[str, str]
) -> None:
    """Granian hands a small body over as its bytes (``more_body`` true) and then an empty last
    message; the hot path answers once the declared length arrived (api/hot.py, ``_read``).
    Over one keep-alive connection: a created user, a body sent in two parts, a refusal the
    ordinary path explains after reading the rest, and a read of the first user."""
    env = {**base_env, "EMBEDDED_UI_LOG_LEVEL": "WARNING"}
    database = f"sqlite+aiosqlite:///{tmp_path / 'embedded-ui.sqlite3'}"  # as running() sets

    def cli(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
            [sys.executable, "-m", "embedded_ui", *args, "--json"],
            env={**env, "EMBEDDED_UI_DATABASE_URL": database},
            cwd=tmp_path,
            check=True,
            capture_output=True,
            timeout=60,
            text=True,
        ).stdout

    cli("workspace", "create", "acme")
    created = cli("keys", "create", "--workspace", "acme", "--environment", "development")
    key = json.loads(created)["key"]

    def post(body: bytes, length: int | None = None) -> bytes:
        head = (
            f"POST /2024-03/users HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length or len(body)}\r\n\r\n"
        )
        return head.encode() + body

    with running("serve", tmp_path, env) as server:
        server.wait_until_healthy()
        port = int(server.base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            status, body = _http_exchange(sock, post(b'{"username": "ada"}'))
            assert status == 201, body
            user = json.loads(body)
            assert user["username"] == "ada"

            # The body in two parts, 100 ms apart: answered once all of it is there.
            whole = b'{"username": "grace"}'
            sock.sendall(post(b"", len(whole)))
            sock.sendall(whole[:7])
            time.sleep(0.1)
            status, body = _http_exchange(sock, whole[7:])
            assert status == 201, body
            assert json.loads(body)["username"] == "grace"

            # Taken: the ordinary path reads the rest of the request and names the field.
            status, body = _http_exchange(sock, post(b'{"username": "ada"}'))
            assert status == 409, body
            assert "username" in json.loads(body)["message"]

            get = (
                f"GET /2024-03/users/{user['userId']} HTTP/1.1\r\nHost: t\r\n"
                f"Authorization: Bearer {key}\r\n\r\n"
            ).encode()
            status, body = _http_exchange(sock, get)
            assert status == 200, body
            assert json.loads(body) == user
        assert server.stop() == 0, server.output()
