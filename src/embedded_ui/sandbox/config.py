"""The sandbox's configuration, read once from ``EMBEDDED_UI_SANDBOX_*`` variables.

The sandbox is a development tool on loopback, so every value has a default. The secrets it
generates (the API key and the admin secret) are random per start unless set; the command that
starts it prints them and hands them to the server process through the environment.
"""

from __future__ import annotations

import os
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from embedded_ui.settings import EnvReader

ENV_PREFIX = "EMBEDDED_UI_SANDBOX_"
DEFAULT_CLIENT_ID = "embedded-ui-demo"
# A public development secret: the sandbox only ever runs on a developer's machine or in CI.
DEFAULT_CLIENT_SECRET = "embedded-ui-demo-sandbox-secret"  # noqa: S105
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/oauth/callback/sandbox"
API_KEY_PATTERN = re.compile(r"^sbx_[A-Za-z0-9]{16,64}$")
"""The same pattern as the catalog's `sandbox` app (`catalog/apps/sandbox.yaml`)."""
_ALPHANUMERIC = string.ascii_letters + string.digits


def new_api_key() -> str:
    """``sbx_`` and 24 random alphanumerics."""
    return "sbx_" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(24))


def new_admin_secret() -> str:
    return "sbxadm_" + secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Everything `embedded-ui sandbox` can be told. Build it with :meth:`from_env`."""

    host: str = "127.0.0.1"
    """Interface to bind."""
    port: int = 8001
    """Port to bind."""
    public_url: str = "http://127.0.0.1:8001"
    """Where browsers and the service reach the sandbox; also its OAuth issuer (`iss`)."""
    client_id: str = DEFAULT_CLIENT_ID
    """The one registered OAuth client."""
    client_secret: str = field(default=DEFAULT_CLIENT_SECRET, repr=False)
    """Its secret (client_secret_basic or client_secret_post)."""
    client_name: str = "embedded-ui demo"
    """The application name shown on the consent page."""
    redirect_uris: tuple[str, ...] = (DEFAULT_REDIRECT_URI,)
    """Exact allow-list of redirect URIs; no prefix or pattern matching."""
    api_key: str = field(default_factory=new_api_key, repr=False)
    """The demo account's API key (`Authorization: Bearer sbx_...` on /api)."""
    admin_secret: str = field(default_factory=new_admin_secret, repr=False)
    """Value of the `X-Sandbox-Admin` header the /_sandbox test hooks require."""
    token_ttl: int = 3600
    """Access-token lifetime in seconds."""
    database: str = "memory"
    """Only `memory`: data lives in the process and a restart forgets it."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SandboxConfig:
        """Read every ``EMBEDDED_UI_SANDBOX_*`` variable once; unknown ones are an error."""
        env = _Env(os.environ if environ is None else environ)
        host = env.text("HOST", "127.0.0.1")
        port = env.integer("PORT", 8001, 1, 65535)
        loopback = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        config = cls(
            host=host,
            port=port,
            public_url=env.url("PUBLIC_URL", f"http://{loopback}:{port}"),
            client_id=env.text("CLIENT_ID", DEFAULT_CLIENT_ID),
            client_secret=env.text("CLIENT_SECRET", DEFAULT_CLIENT_SECRET),
            client_name=env.text("CLIENT_NAME", "embedded-ui demo"),
            redirect_uris=env.redirect_uris("REDIRECT_URIS", DEFAULT_REDIRECT_URI),
            api_key=env.api_key("API_KEY"),
            admin_secret=env.text("ADMIN_SECRET", "") or new_admin_secret(),
            token_ttl=env.integer("TOKEN_TTL", 3600, 1, 86_400 * 30),
            database=env.choice("DATABASE", ("memory",), "memory"),
        )
        env.refuse_unknown()
        return config

    def to_env(self) -> dict[str, str]:
        """The variables that rebuild this exact configuration (generated secrets included)."""
        return {
            ENV_PREFIX + "HOST": self.host,
            ENV_PREFIX + "PORT": str(self.port),
            ENV_PREFIX + "PUBLIC_URL": self.public_url,
            ENV_PREFIX + "CLIENT_ID": self.client_id,
            ENV_PREFIX + "CLIENT_SECRET": self.client_secret,
            ENV_PREFIX + "CLIENT_NAME": self.client_name,
            ENV_PREFIX + "REDIRECT_URIS": ",".join(self.redirect_uris),
            ENV_PREFIX + "API_KEY": self.api_key,
            ENV_PREFIX + "ADMIN_SECRET": self.admin_secret,
            ENV_PREFIX + "TOKEN_TTL": str(self.token_ttl),
            ENV_PREFIX + "DATABASE": self.database,
        }


class _Env(EnvReader):
    """The settings' readers under ``EMBEDDED_UI_SANDBOX_``, plus the sandbox's own types."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(environ, ENV_PREFIX, reference="docs/sandbox.md")

    def redirect_uris(self, name: str, default: str) -> tuple[str, ...]:
        raw = self._raw(name) or default
        uris = tuple(item.strip() for item in raw.split(",") if item.strip())
        for uri in uris:
            if not _is_http_url(uri) or urlsplit(uri).fragment:
                raise self._fail(name, f"expected absolute http(s) URLs, got {uri!r}")
        if not uris:
            raise self._fail(name, "expected at least one redirect URI")
        return uris

    def api_key(self, name: str) -> str:
        raw = self._raw(name)
        if raw is None:
            return new_api_key()
        if not API_KEY_PATTERN.fullmatch(raw):
            raise self._fail(name, "expected sbx_ followed by 16 to 64 letters or digits")
        return raw


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
