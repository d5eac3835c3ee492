"""The demo: the quickstart's ISV, Fulfillmently, with its integrations applied and released,
a fresh development key, the sandbox app as a real OAuth provider (its own process), and a
stand-in for Fulfillmently's own page on another origin (:mod:`embedded_ui.demo_host`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import MutableMapping
from contextlib import suppress
from urllib.parse import urlsplit

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker

from embedded_ui.catalog import load_catalog
from embedded_ui.credentials import Vault
from embedded_ui.errors import NotFound
from embedded_ui.integrations import IntegrationService
from embedded_ui.integrations.definitions import DefinitionSet, parse_documents
from embedded_ui.oauth.clients import OAuthClientService
from embedded_ui.paths import EXAMPLES_DIR
from embedded_ui.sandbox.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, new_api_key
from embedded_ui.settings import Settings
from embedded_ui.store import Scope, create_engine, migrate
from embedded_ui.workspaces import WorkspaceService

DEMO_WORKSPACE = "Fulfillmently"
DEMO_KEY_LABEL = "demo"


EXAMPLE_RECEIVER = "http://127.0.0.1:8000/demo/receiver"
"""The example's default Stream Data URL; the demo points it at its own inbox."""
OUTBOUND_ALLOW = "127.0.0.0/8"
"""What the demo lets Stream Data reach: its inbox is on loopback."""


def allow_loopback(environ: MutableMapping[str, str]) -> None:
    """The demo's own environment (never the service's default): Stream Data may reach
    loopback, where the demo's inbox listens. A value already set is kept, with loopback
    added."""
    current = [n.strip() for n in environ.get("EMBEDDED_UI_OUTBOUND_ALLOW", "").split(",")]
    networks = [n for n in current if n]
    if OUTBOUND_ALLOW not in networks:
        networks.append(OUTBOUND_ALLOW)
    environ["EMBEDDED_UI_OUTBOUND_ALLOW"] = ",".join(networks)


def demo_definitions(inbox_url: str | None) -> DefinitionSet:
    """The quickstart's integrations, with new orders streamed to ``inbox_url``."""
    documents = []
    for path in sorted((EXAMPLES_DIR / "fulfillmently").glob("*.yaml")):
        text = path.read_text()
        if inbox_url is not None and path.name == "sandbox.yaml":
            if EXAMPLE_RECEIVER not in text:
                raise RuntimeError(f"{path} no longer has the default {EXAMPLE_RECEIVER}")
            text = text.replace(EXAMPLE_RECEIVER, inbox_url)
        documents.append((path.name, text))
    return parse_documents(documents, load_catalog())


async def prepare_demo(settings: Settings, inbox_url: str | None = None) -> str:
    """Create the demo workspace if needed; replace the previous demo key with a new one.
    ``inbox_url``: where the sandbox workflow streams new orders (the demo ISV's inbox)."""
    engine = create_engine(settings)
    try:
        await migrate(engine)
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            service = WorkspaceService(session, actor="demo")
            try:
                workspace = await service.find(DEMO_WORKSPACE)
            except NotFound:
                workspace = await service.create(DEMO_WORKSPACE)
            for old in await service.list_keys(workspace, "development"):
                if old.label == DEMO_KEY_LABEL and old.revoked_at is None:
                    await service.revoke_key(old.id)
            issued = await service.create_key(workspace, "development", DEMO_KEY_LABEL)
            definitions = demo_definitions(inbox_url)
            scope = Scope(workspace.id, "development")
            await IntegrationService(session, scope).apply(definitions, release=True)
            # The sandbox's one OAuth client; its secret is a public development value.
            await OAuthClientService(
                session, scope, Vault(settings.vault_keys), load_catalog(), actor="demo"
            ).set("sandbox", DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
            await session.commit()
            return issued.plaintext
    finally:
        await engine.dispose()


class DemoSandbox:
    """`embedded-ui sandbox` as a child process at ``settings.sandbox_url``, redirecting to this
    service; reused if a sandbox already answers there."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.sandbox_url
        self.api_key = new_api_key()
        self._redirect_uri = f"{settings.public_url}/oauth/callback/sandbox"
        self._process: subprocess.Popen[bytes] | None = None
        self.started_here = False
        """Whether this started the sandbox (and so knows its API key)."""

    def _healthy(self) -> bool:
        with suppress(httpx.HTTPError):
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        return False

    def start(self, timeout: float = 30) -> DemoSandbox:
        if self._healthy():
            self.api_key = "(the running sandbox's key)"
            return self
        parts = urlsplit(self.url)
        env = {
            **os.environ,
            "EMBEDDED_UI_SANDBOX_HOST": parts.hostname or "127.0.0.1",
            "EMBEDDED_UI_SANDBOX_PORT": str(parts.port or 80),
            "EMBEDDED_UI_SANDBOX_REDIRECT_URIS": self._redirect_uri,
            "EMBEDDED_UI_SANDBOX_API_KEY": self.api_key,
            "EMBEDDED_UI_SANDBOX_CLIENT_NAME": "Fulfillmently",
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", "embedded_ui", "sandbox", "--json"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the sandbox did not start at {self.url}")
            time.sleep(0.2)
        self.started_here = True
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self._process.pid, 15)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self._process.pid, 9)
        self._process = None
