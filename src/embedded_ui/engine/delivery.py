"""One signed POST of a JSON body to a checked address, and what came of it.

Every post is checked by :func:`~embedded_ui.engine.ssrf.check` first and sent through the
:class:`~embedded_ui.engine.pinned.PinnedClient`, so it reaches the address that was checked.
It has one total time limit (15 s unless a test sets less), follows no redirect (a 3xx is an
answer), and reads at most :data:`MAX_ANSWER_BYTES` of the answer, of which a short excerpt is
kept. The client keeps no cookies, reads no proxy settings and decompresses nothing
(pinned.py says why).

Outcomes (docs/engine.md, "Retries"):

- ``delivered``: a 2xx answer;
- ``retry``: 408, 425, 429, 5xx, a timeout, a connection error, or a host that did not resolve;
  ``retry_after`` holds the answer's ``Retry-After`` in seconds when it had one;
- ``gone``: 410, the receiver asks us to stop (the endpoint gets disabled);
- ``failed``: any other answer, 3xx included, or a request that cannot be built;
- ``blocked``: the guard refused the URL; no connection was opened.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Literal

import aiohttp

from embedded_ui import __version__
from embedded_ui.engine import signing
from embedded_ui.engine.pinned import PinnedClient
from embedded_ui.engine.ssrf import (
    BlockedDestination,
    OutboundPolicy,
    ResolutionFailed,
    Resolver,
    check,
    resolve_host,
)

DEFAULT_TIMEOUT = 15.0
MAX_ANSWER_BYTES = 65_536
EXCERPT_CHARS = 500
MAX_ERROR_CHARS = 300
USER_AGENT = f"embedded-ui/{__version__}"
RETRIED_STATUSES = frozenset({408, 425, 429})
# Set by us (or by the client from the URL and body); an extra header of that name is dropped.
_OWN_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-alloy-signature",
    }
)

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]{0,8192}")

Kind = Literal["delivered", "retry", "gone", "failed", "blocked"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to. ``error`` and ``excerpt`` never contain the secret."""

    kind: Kind
    status: int | None
    retry_after: float | None
    error: str | None
    duration_ms: float
    excerpt: str = ""


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` (seconds, or an HTTP date) as seconds from ``now``; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,10}", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, says RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def classify(status: int, retry_after: str | None, now: float) -> tuple[Kind, float | None]:
    """The outcome kind of an HTTP status, and the delay it asked for when it is a retry."""
    if 200 <= status < 300:
        return "delivered", None
    if status == 410:
        return "gone", None
    if status in RETRIED_STATUSES or 500 <= status < 600:
        return "retry", parse_retry_after(retry_after, now)
    return "failed", None


def transport_error(exc: aiohttp.ClientError | OSError) -> str:
    """What went wrong on the way, in words an ISV reads in its logs (not a class name)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"the receiver's certificate was refused: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return (
            f"could not connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}"
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the receiver closed the connection without answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"the answer broke off: {exc}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"the answer is not valid HTTP: {exc.message}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Deliverer:
    """Posts webhooks for one worker process, over pooled connections pinned to checked
    addresses. Make one, share it between tasks, and :meth:`aclose` it at shutdown."""

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        resolver: Resolver = resolve_host,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        self._timeout = timeout
        self._resolver = resolver
        self._client = PinnedClient(ssl_context=ssl_context)

    async def __aenter__(self) -> Deliverer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        secret: str,
        msg_id: str,
        extra_headers: Mapping[str, str] = {},
    ) -> Outcome:
        """Sign ``body`` with ``secret`` under ``msg_id`` and POST it to ``url``, once."""
        started = time.perf_counter()

        def scrub(text: str) -> str:
            # Nothing we build quotes the secret; this is the belt to those braces.
            return text.replace(secret, "***") if len(secret) >= 8 else text

        def outcome(kind: Kind, error: str) -> Outcome:
            duration_ms = (time.perf_counter() - started) * 1000
            return Outcome(kind, None, None, scrub(error)[:MAX_ERROR_CHARS], duration_ms)

        try:
            async with asyncio.timeout(self._timeout):
                target = await check(url, self._policy, resolver=self._resolver)
                headers = self._headers(body, secret, msg_id, extra_headers)
                status, retry_after, raw = await self._client.post(
                    target, body, headers, MAX_ANSWER_BYTES
                )
        except BlockedDestination as exc:
            return outcome("blocked", exc.reason)
        except ResolutionFailed as exc:
            return outcome("retry", str(exc))
        except TimeoutError:
            return outcome("retry", f"no answer within {self._timeout:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            # Before ValueError: a refused certificate is both (ssl.CertificateError).
            return outcome("retry", transport_error(exc))
        except ValueError as exc:
            # A bad secret, message id or extra header: it will not be better next time.
            return outcome("failed", f"the request could not be built: {exc}")
        kind, delay = classify(status, retry_after, time.time())
        excerpt = raw[: EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS]
        return Outcome(
            kind,
            status,
            delay,
            None if kind == "delivered" else f"HTTP {status}",
            (time.perf_counter() - started) * 1000,
            scrub(excerpt),
        )

    @staticmethod
    def _headers(
        body: bytes, secret: str, msg_id: str, extra_headers: Mapping[str, str]
    ) -> dict[str, str]:
        headers = {}
        for name, value in extra_headers.items():
            # Checked here, before a connection is opened, rather than by the client mid-request.
            if not _HEADER_NAME.fullmatch(name) or not _HEADER_VALUE.fullmatch(value):
                raise ValueError(f"extra header {name[:40]!r} is not a valid HTTP header")
            if name.lower() not in _OWN_HEADERS:
                headers[name] = value
        headers.update(signing.headers(secret, msg_id, body))
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = USER_AGENT
        return headers
