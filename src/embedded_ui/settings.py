"""Settings, read once from the environment into frozen dataclasses.

Every variable is named ``EMBEDDED_UI_<FIELD>``. A value that does not parse fails at start
with a :class:`SettingsError` naming the variable. Outside development mode, missing or
well-known development secrets are refused, so a production deployment can never run on the
keys printed in this repository.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PREFIX = "EMBEDDED_UI_"
MAX_USER_TOKEN_TTL = 3600
"""Hard ceiling on a user token's lifetime, in seconds; verification refuses anything longer."""

Mode = Literal["development", "production"]
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///embedded-ui.sqlite3"

# A well-known seed so development tokens survive restarts. It is public, hence refused
# outside development mode.
_DEV_SIGNING_SEED = hashlib.sha256(b"embedded-ui insecure development signing key").digest()
DEV_SIGNING_KEY_ID = "dev-insecure"
_DEV_VAULT_KEY = hashlib.sha256(b"embedded-ui insecure development vault key").digest()
DEV_VAULT_KEY_ID = "dev-insecure"


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One Ed25519 key for user tokens. The first configured key signs; all of them verify."""

    kid: str
    private_key: Ed25519PrivateKey = field(repr=False, compare=False)
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class VaultKey:
    """One AES-256-GCM key for credentials. The first configured key encrypts; all decrypt."""

    kid: str
    secret: bytes = field(repr=False)
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    """All of the service's configuration. Build it with :meth:`from_env`."""

    mode: Mode = "development"
    """`development` (defaults allowed, demo secrets accepted) or `production`."""
    host: str = "127.0.0.1"
    """Interface the HTTP server binds to."""
    port: int = 8000
    """Port the HTTP server binds to."""
    public_url: str = "http://127.0.0.1:8000"
    """Origin users' browsers reach the service at; also the `iss` of user tokens."""
    database_url: str = DEFAULT_DATABASE_URL
    """SQLAlchemy async URL: `sqlite+aiosqlite:///file` or `postgresql+asyncpg://...`."""
    database_pool_size: int = 10
    """Connections kept open per process (PostgreSQL)."""
    migrate_on_start: bool = True
    """Apply Alembic migrations when the service starts."""
    redis_url: str | None = None
    """Optional Redis URL; when set, rate-limit counters are shared through it."""
    signing_keys: tuple[SigningKey, ...] = ()
    """User-token signing keys, newest first; see `EMBEDDED_UI_SIGNING_KEYS`."""
    vault_keys: tuple[VaultKey, ...] = ()
    """Credential encryption keys, newest first; see `EMBEDDED_UI_VAULT_KEYS`."""
    user_token_ttl: int = 3600
    """Lifetime of a user token in seconds (60 to 3600)."""
    rate_limit_per_minute: int = 600
    """Requests per minute allowed per API key; 0 turns the limit off."""
    max_request_bytes: int = 1_048_576
    """Largest request body accepted; larger bodies get 413."""
    hot_path: bool = True
    """Answer the busiest API requests (a user, a user token) before Litestar's routing and
    dependency injection, on SQLite's inline reader (api/hot.py). Off: every request takes the
    ordinary path. No effect on PostgreSQL."""
    sandbox_url: str = "http://127.0.0.1:8001"
    """Where the local sandbox app answers (`{sandbox_url}` in the catalog). The same variable
    as the sandbox's own, `EMBEDDED_UI_SANDBOX_PUBLIC_URL`, so one setting serves both."""
    workers: int = 1
    """Worker processes started by `embedded-ui serve`."""
    inprocess_worker: bool = True
    """Run workflow executions inside the service's own processes. Defaults to on without
    Redis and off with it (then `embedded-ui worker` processes run them through SAQ)."""
    queue_name: str = "embedded-ui-executions"
    """The SAQ queue on Redis that API processes and `embedded-ui worker` processes share."""
    worker_concurrency: int = 32
    """Executions one worker process runs at the same time."""
    worker_busy_rate: float = 100.0
    """Executions an in-process worker still starts per second while its process's API is
    busy (engine/priority.py); when the API is quiet it starts as many as it has room for.
    0: no priority for the API."""
    execution_lease_seconds: float = 30.0
    """How long a worker holds a claimed execution without renewing it (it renews every third
    of this while it runs). A killed worker's executions run again once their lease is out."""
    delivery_timeout_seconds: float = 15.0
    """How long a Stream Data delivery (and an error URL notification) waits for the answer;
    no answer in time is retried like a 5xx."""
    retry_schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    """Seconds to wait before each retry of a failed delivery (before jitter); after the last
    one the execution fails. `EMBEDDED_UI_RETRY_SCHEDULE=5,300,...`."""
    outbound_allow: tuple[str, ...] = ()
    """Networks (CIDR) that Stream Data and the error URL may reach although they are not
    global (loopback, private...). Empty: only global addresses. The demo and tests set it."""
    destination_sqlite_dir: str | None = None
    """The directory SQLite files of `database` blocks' destinations must be in. Unset: SQLite
    destinations are allowed anywhere in development mode and refused in production."""
    log_retention_days: int = 60
    """Executions (logs) and errors older than this are purged."""
    log_level: str = "INFO"
    """Python log level name."""
    log_format: Literal["console", "json"] = "console"
    """`console` for people, `json` for log collectors."""

    @property
    def is_development(self) -> bool:
        return self.mode == "development"

    @property
    def public_origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every ``EMBEDDED_UI_*`` variable once and validate it."""
        env = EnvReader(os.environ if environ is None else environ, reserved=_RESERVED)
        mode = cast(Mode, env.choice("MODE", ("development", "production"), "development"))
        port = env.integer("PORT", 8000, 1, 65535)
        redis_url = env.optional_url("REDIS_URL", ("redis", "rediss", "unix"))
        host = env.text("HOST", "127.0.0.1")
        default_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104
        settings = cls(
            mode=mode,
            host=host,
            port=port,
            public_url=env.url("PUBLIC_URL", default_url),
            database_url=env.database_url("DATABASE_URL", DEFAULT_DATABASE_URL),
            database_pool_size=env.integer("DATABASE_POOL_SIZE", 10, 1, 200),
            migrate_on_start=env.boolean("MIGRATE_ON_START", True),
            redis_url=redis_url,
            signing_keys=env.signing_keys("SIGNING_KEYS", allow_default=mode == "development"),
            vault_keys=env.vault_keys("VAULT_KEYS", allow_default=mode == "development"),
            user_token_ttl=env.integer("USER_TOKEN_TTL", 3600, 60, MAX_USER_TOKEN_TTL),
            rate_limit_per_minute=env.integer("RATE_LIMIT_PER_MINUTE", 600, 0, 1_000_000),
            max_request_bytes=env.integer("MAX_REQUEST_BYTES", 1_048_576, 1024, 100 * 1_048_576),
            hot_path=env.boolean("HOT_PATH", True),
            sandbox_url=env.url("SANDBOX_PUBLIC_URL", "http://127.0.0.1:8001"),
            workers=env.integer("WORKERS", 1, 1, 64),
            inprocess_worker=env.boolean("INPROCESS_WORKER", redis_url is None),
            queue_name=env.text("QUEUE_NAME", "embedded-ui-executions"),
            worker_concurrency=env.integer("WORKER_CONCURRENCY", 32, 1, 1000),
            worker_busy_rate=env.number("WORKER_BUSY_RATE", 100.0, 0.0, 1_000_000.0),
            execution_lease_seconds=env.number("EXECUTION_LEASE_SECONDS", 30.0, 1.0, 3600.0),
            delivery_timeout_seconds=env.number("DELIVERY_TIMEOUT_SECONDS", 15.0, 0.1, 300.0),
            retry_schedule=env.seconds_list(
                "RETRY_SCHEDULE", (5, 300, 1800, 7200, 18000, 36000, 36000)
            ),
            outbound_allow=env.networks("OUTBOUND_ALLOW"),
            log_retention_days=env.integer("LOG_RETENTION_DAYS", 60, 1, 3650),
            destination_sqlite_dir=env.text("DESTINATION_SQLITE_DIR", "") or None,
            log_level=env.choice(
                "LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", upper=True
            ),
            log_format=cast(
                Literal["console", "json"], env.choice("LOG_FORMAT", ("console", "json"), "console")
            ),
        )
        env.refuse_unknown()
        return settings


class EnvReader:
    """Typed readers over the environment under one prefix; each error names the variable.
    The sandbox app extends it for its own ``EMBEDDED_UI_SANDBOX_`` variables."""

    def __init__(
        self,
        environ: Mapping[str, str],
        prefix: str = PREFIX,
        reserved: tuple[str, ...] = (),
        reference: str = "the README's reference",
    ) -> None:
        self._environ = environ
        self._prefix = prefix
        self._reserved = reserved
        self._reference = reference
        self._read: set[str] = set()

    def _raw(self, name: str) -> str | None:
        self._read.add(self._prefix + name)
        value = self._environ.get(self._prefix + name)
        return None if value is None or value.strip() == "" else value.strip()

    def _fail(self, name: str, problem: str) -> SettingsError:
        return SettingsError(f"{self._prefix}{name}: {problem}")

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def choice(self, name: str, options: tuple[str, ...], default: str, upper: bool = False) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in options:
            raise self._fail(name, f"expected one of {', '.join(options)}, got {raw!r}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self._fail(name, f"expected a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise self._fail(name, f"expected a number from {low} to {high}, got {value}")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise self._fail(name, f"expected a number, got {raw!r}") from None
        if not low <= value <= high:  # NaN fails this too
            raise self._fail(name, f"expected a number from {low:g} to {high:g}, got {raw}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise self._fail(name, f"expected true or false, got {raw!r}")

    def url(self, name: str, default: str) -> str:
        raw = self._raw(name) or default
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self._fail(name, f"expected an http(s) URL such as https://host, got {raw!r}")
        return raw.rstrip("/")

    def optional_url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        if urlsplit(raw).scheme not in schemes:
            raise self._fail(name, f"expected a URL starting with {' or '.join(schemes)}://")
        return raw

    def seconds_list(self, name: str, default: tuple[float, ...]) -> tuple[float, ...]:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            values = tuple(float(item) for item in raw.split(","))
        except ValueError:
            raise self._fail(name, f"expected comma-separated seconds, got {raw!r}") from None
        if not 1 <= len(values) <= 20 or any(not 0 <= v <= 7 * 86400 for v in values):
            raise self._fail(name, "expected 1 to 20 delays, each from 0 to 604800 seconds")
        return values

    def networks(self, name: str) -> tuple[str, ...]:
        raw = self._raw(name)
        if raw is None:
            return ()
        networks = []
        for item in raw.split(","):
            try:
                networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise self._fail(
                    name, f"expected comma-separated networks such as 127.0.0.0/8, got {item!r}"
                ) from None
        return tuple(networks)

    def database_url(self, name: str, default: str) -> str:
        raw = self._raw(name) or default
        scheme = urlsplit(raw).scheme
        if scheme in ("postgres", "postgresql"):
            # Accept the URL every PostgreSQL tool prints; we only speak asyncpg.
            raw = "postgresql+asyncpg" + raw[len(scheme) :]
        elif scheme == "sqlite":
            raw = "sqlite+aiosqlite" + raw[len(scheme) :]
        elif scheme not in ("postgresql+asyncpg", "sqlite+aiosqlite"):
            raise self._fail(
                name, f"expected sqlite+aiosqlite:///file or postgresql+asyncpg://..., got {raw!r}"
            )
        return raw

    def _keyed_secrets(
        self, name: str, dev_secret: bytes, allow_default: bool
    ) -> list[tuple[str, bytes]]:
        """``KID:BASE64URL`` entries of 32 bytes, comma-separated, newest first."""
        raw = self._raw(name) or ""
        entries: list[tuple[str, bytes]] = []
        for item in raw.split(","):
            kid, sep, encoded = item.strip().partition(":")
            if not sep or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", kid):
                raise self._fail(name, "expected comma-separated KID:BASE64URL_SEED entries")
            try:
                secret = base64.b64decode(
                    encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True
                )
            except (binascii.Error, ValueError):
                raise self._fail(name, f"key {kid!r} is not valid base64url") from None
            if len(secret) != 32:
                raise self._fail(name, f"key {kid!r} must decode to 32 bytes, got {len(secret)}")
            if secret == dev_secret and not allow_default:
                raise self._fail(name, f"key {kid!r} is the public development key")
            if any(existing == kid for existing, _ in entries):
                raise self._fail(name, f"key id {kid!r} appears twice")
            entries.append((kid, secret))
        return entries

    def _require_or_default(self, name: str, allow_default: bool, command: str) -> bool:
        """True when the variable is unset and the development default may stand in."""
        if self._raw(name) is not None:
            return False
        if not allow_default:
            raise self._fail(
                name, f"required outside development mode; generate one with `{command}`"
            )
        return True

    def signing_keys(self, name: str, allow_default: bool) -> tuple[SigningKey, ...]:
        if self._require_or_default(name, allow_default, "embedded-ui keygen signing"):
            dev = Ed25519PrivateKey.from_private_bytes(_DEV_SIGNING_SEED)
            return (SigningKey(DEV_SIGNING_KEY_ID, dev, insecure=True),)
        return tuple(
            SigningKey(kid, Ed25519PrivateKey.from_private_bytes(seed), seed == _DEV_SIGNING_SEED)
            for kid, seed in self._keyed_secrets(name, _DEV_SIGNING_SEED, allow_default)
        )

    def vault_keys(self, name: str, allow_default: bool) -> tuple[VaultKey, ...]:
        if self._require_or_default(name, allow_default, "embedded-ui keygen vault"):
            return (VaultKey(DEV_VAULT_KEY_ID, _DEV_VAULT_KEY, insecure=True),)
        return tuple(
            VaultKey(kid, secret, secret == _DEV_VAULT_KEY)
            for kid, secret in self._keyed_secrets(name, _DEV_VAULT_KEY, allow_default)
        )

    def refuse_unknown(self) -> None:
        """A misspelt variable would silently fall back to a default, so it is an error."""
        unknown = sorted(
            key
            for key in self._environ
            if key.startswith(self._prefix)
            and key not in self._read
            and not key.startswith(self._reserved)
        )
        if unknown:
            raise SettingsError(f"{unknown[0]}: unknown setting (see {self._reference})")


# Variables under these prefixes belong to the test suite, tools and the sandbox app
# (`embedded-ui sandbox`, which reads EMBEDDED_UI_SANDBOX_* itself), not to the service.
_RESERVED = (PREFIX + "TEST_", PREFIX + "BENCH_", PREFIX + "SANDBOX_")


def new_key_value(kid: str) -> str:
    """A fresh ``KID:SECRET`` entry for ``EMBEDDED_UI_SIGNING_KEYS`` or ``..._VAULT_KEYS``."""
    seed = os.urandom(32)
    return f"{kid}:{base64.urlsafe_b64encode(seed).rstrip(b'=').decode()}"
