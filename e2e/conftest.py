"""End-to-end fixtures: a real `embedded-ui serve` process and Debian's Chromium, headless.

Playwright cannot download its own browsers here, so every browser launch uses
``/usr/bin/chromium``. The server runs once per test process (xdist worker) on a free loopback
port with its own SQLite file, and its whole process group is stopped at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
READY_TIMEOUT = 45.0  # seconds for the server to answer /health (generous: CI machines are busy)
STOP_TIMEOUT = 20.0  # seconds for the process group to exit after SIGTERM


E2E_DIR = Path(__file__).parent


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests after every other test of the same process.

    Playwright's sync API (what pytest-playwright uses) leaves its event loop marked as running
    in the main thread until its session-scoped fixtures end; an asyncio test run after a browser
    test then fails with "Runner.run() cannot be called from a running event loop". A stable
    sort keeps every other order (xdist needs each worker to collect the same order).
    """
    items.sort(key=lambda item: item.path.is_relative_to(E2E_DIR))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test does)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def artifacts_dir(pytestconfig: pytest.Config) -> Path:
    """``artifacts/e2e`` at the top of the checkout (git-ignored): screenshots land here."""
    path = pytestconfig.rootpath / "artifacts" / "e2e"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers; bounded throughout."""
    pgid = process.pid  # start_new_session: the leader's pid is the group id
    _signal_group(pgid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        _signal_group(pgid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)


def _wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"embedded-ui serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"/health did not answer within {READY_TIMEOUT}s:\n{log.read_text()}")
        time.sleep(0.2)


REPO = Path(__file__).resolve().parents[1]


@contextmanager
def _running(arguments: list[str], env: dict[str, str], workdir: Path, url: str) -> Iterator[None]:
    """``embedded-ui ARGUMENTS`` in its own process group until the block ends, once ``url``
    answers ``/health``; its output goes to ``workdir/<command>.log``."""
    log = workdir / f"{arguments[0]}.log"
    with ExitStack() as stack:
        output = stack.enter_context(log.open("wb"))
        process = subprocess.Popen(
            [sys.executable, "-m", "embedded_ui", *arguments],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stack.callback(_stop, process)
        _wait_until_healthy(process, url, log)
        yield


def run_cli(env: dict[str, str], *args: str) -> Any:
    """``embedded-ui ARGS --json`` with the live server's environment; its parsed output."""
    result = subprocess.run(
        [sys.executable, "-m", "embedded_ui", *args, "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr or result.stdout
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def live_server_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("live-server")


@pytest.fixture(scope="session")
def live_server_port() -> int:
    return _free_port()


@dataclass(frozen=True)
class E2ESandbox:
    """The sandbox app as a real process: the OAuth provider and commerce API of the tests."""

    url: str
    client_id: str
    client_secret: str
    admin_secret: str

    @property
    def admin(self) -> dict[str, str]:
        return {"X-Sandbox-Admin": self.admin_secret}

    def new_key(self, name: str = "E2E Store") -> str:
        response = httpx.post(
            f"{self.url}/_sandbox/accounts", json={"name": name}, headers=self.admin, timeout=10
        )
        response.raise_for_status()
        key: str = response.json()["api_key"]
        return key


@pytest.fixture(scope="session")
def sandbox_server(live_server_workdir: Path, live_server_port: int) -> Iterator[E2ESandbox]:
    """`embedded-ui sandbox` on its own loopback port, redirecting to the live server."""
    port = _free_port()
    sandbox = E2ESandbox(
        url=f"http://127.0.0.1:{port}",
        client_id="embedded-ui-e2e",
        client_secret="e2e-canary-client-secret-" + secrets.token_hex(8),
        admin_secret="sbxadm_" + secrets.token_hex(12),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_UI_")}
    env |= {
        "PYTHONUNBUFFERED": "1",
        "EMBEDDED_UI_SANDBOX_CLIENT_ID": sandbox.client_id,
        "EMBEDDED_UI_SANDBOX_CLIENT_SECRET": sandbox.client_secret,
        "EMBEDDED_UI_SANDBOX_ADMIN_SECRET": sandbox.admin_secret,
        "EMBEDDED_UI_SANDBOX_REDIRECT_URIS": (
            f"http://127.0.0.1:{live_server_port}/oauth/callback/sandbox"
        ),
    }
    with _running(["sandbox", "--port", str(port)], env, live_server_workdir, sandbox.url):
        yield sandbox


@pytest.fixture(scope="session")
def live_server_env(
    live_server_workdir: Path, live_server_port: int, sandbox_server: E2ESandbox
) -> dict[str, str]:
    """The live server's environment: the CLI run with it works on the same database."""
    workdir = live_server_workdir
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_UI_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # let Granian's worker reuse compiled bytecode
    env |= {
        "PYTHONPYCACHEPREFIX": str(workdir / "pycache"),
        "PYTHONUNBUFFERED": "1",
        "EMBEDDED_UI_HOST": "127.0.0.1",
        "EMBEDDED_UI_PORT": str(live_server_port),
        "EMBEDDED_UI_PUBLIC_URL": f"http://127.0.0.1:{live_server_port}",
        "EMBEDDED_UI_SANDBOX_PUBLIC_URL": sandbox_server.url,
        "EMBEDDED_UI_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'embedded-ui.sqlite3'}",
        "EMBEDDED_UI_LOG_LEVEL": "WARNING",
    }
    return env


@pytest.fixture(scope="session")
def live_server(
    live_server_workdir: Path, live_server_env: dict[str, str], live_server_port: int
) -> Iterator[str]:
    """The base URL of a real `embedded-ui serve` on 127.0.0.1, private to this process."""
    base_url = f"http://127.0.0.1:{live_server_port}"
    arguments = ["serve", "--port", str(live_server_port)]
    with _running(arguments, live_server_env, live_server_workdir, base_url):
        yield base_url


@pytest.fixture(scope="session")
def base_url(live_server: str) -> str:
    """Relative ``page.goto("/schema")`` calls resolve against the live server."""
    return live_server
