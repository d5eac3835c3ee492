"""`embedded-ui sandbox`: print how to reach the sandbox, then serve it under Granian.

Granian imports the app factory in a worker process, which reads the environment again. So the
configuration, generated secrets included, is written back into this process's environment
first: the worker then serves exactly the key and secrets printed here. One worker only: the
sandbox keeps its data in that process's memory.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import MutableMapping

import click
from granian.constants import Interfaces
from granian.server import Server

from embedded_ui.sandbox.config import ENV_PREFIX, SandboxConfig


def prepare_environment(
    environ: MutableMapping[str, str], *, host: str | None = None, port: int | None = None
) -> SandboxConfig:
    """Apply command-line overrides, read the configuration, and pin it in ``environ``."""
    if host:
        environ[ENV_PREFIX + "HOST"] = host
    if port:
        environ[ENV_PREFIX + "PORT"] = str(port)
    config = SandboxConfig.from_env(environ)
    environ.update(config.to_env())
    return config


def describe(config: SandboxConfig) -> dict[str, object]:
    url = config.public_url
    return {
        "url": url,
        "authorizeUrl": f"{url}/oauth/authorize",
        "tokenUrl": f"{url}/oauth/token",
        "apiBaseUrl": f"{url}/api",
        "clientId": config.client_id,
        "clientSecret": config.client_secret,
        "redirectUris": list(config.redirect_uris),
        "apiKey": config.api_key,
        "adminSecret": config.admin_secret,
    }


def banner(config: SandboxConfig) -> str:
    info = describe(config)
    return "\n".join(
        [
            "",
            "  embedded-ui sandbox (Sandbox Commerce: an OAuth 2.0 provider and a commerce API)",
            f"  URL:             {info['url']}",
            f"  Authorize:       {info['authorizeUrl']}",
            f"  Token:           {info['tokenUrl']}",
            f"  API:             {info['apiBaseUrl']}",
            f"  Client id:       {info['clientId']}",
            f"  Client secret:   {info['clientSecret']}",
            f"  Redirect URIs:   {', '.join(config.redirect_uris)}",
            f"  API key:         {info['apiKey']}",
            f"  Admin secret:    {info['adminSecret']}  (header X-Sandbox-Admin)",
            "",
            "  Data lives in this process's memory: a restart forgets it.",
            "",
        ]
    )


def run_sandbox(*, host: str | None = None, port: int | None = None, as_json: bool = False) -> None:
    config = prepare_environment(os.environ, host=host, port=port)
    click.echo(json.dumps(describe(config)) if as_json else banner(config))
    sys.stdout.flush()
    Server(
        "embedded_ui.sandbox.app:create_sandbox_app_from_env",
        factory=True,
        interface=Interfaces.ASGI,
        address=config.host,
        port=config.port,
        workers=1,
        log_access=False,
    ).serve()
