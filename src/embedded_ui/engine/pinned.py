"""HTTP requests to checked addresses only (:func:`embedded_ui.engine.ssrf.check`), on aiohttp.

:class:`PinnedClient` sends each request to the IP address the check approved, written into
the request URL as a literal, so nothing resolves the name again: a DNS answer that changes
between the check and the connection (DNS rebinding) cannot redirect it. The name stays where
the receiver sees it: the ``Host`` header is the URL's authority, and over TLS the name is the
SNI and the name the certificate must match (aiohttp's ``server_hostname``, which is part of
its pool key, so a connection verified for one name is never reused for another).

Why aiohttp and not httpx, which the rest of the service uses: a delivery is the engine's unit
of work, and through httpx (httpcore, h11, anyio) one cost ~1.4-1.6 ms of CPU against a local
receiver, against ~0.22-0.30 ms through aiohttp's client (C parser, asyncio streams; measured
in one process, 3,000 posts, 10 at a time, docs/benchmarks.md). Deliveries share the API's two
cores, so that difference is the API's throughput while the worker delivers.

The client is made for webhooks, not for browsing: no cookies (a jar shared between tenants
would leak them), no proxy or ``.netrc`` from the environment, no redirects (a 3xx is an
answer), no decompression (an answer could inflate into a bomb) and no ``Accept-Encoding``.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import aiohttp
import httpx
from yarl import URL

from embedded_ui.engine.ssrf import CheckedTarget

MAX_CONNECTIONS_PER_ADDRESS = 128
"""Open connections to one checked address and port, busy or idle, per worker process."""
MAX_CONNECTIONS = 512
"""Open connections in all, per worker process."""
KEEPALIVE_SECONDS = 30.0
"""An idle connection is closed after this long."""


def request_url(target: CheckedTarget) -> URL:
    """Where a request for ``target`` goes: its checked address as a literal, its port, and its
    request target (path and query, percent-encoded as checked). Nothing else of the URL the
    user gave is used, so no part of it can lead the connection elsewhere."""
    host = f"[{target.ip}]" if target.ip.version == 6 else str(target.ip)
    return URL(f"{target.scheme}://{host}:{target.port}{target.path}", encoded=True)


class PinnedClient:
    """One pool of connections per worker process; each request goes to its checked address.

    Make one inside the event loop that uses it, and :meth:`aclose` it at shutdown.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections_per_address: int = MAX_CONNECTIONS_PER_ADDRESS,
    ) -> None:
        # One context for every connection (loading the CA bundle costs milliseconds), with the
        # same trust roots as the service's other outbound requests (httpx's).
        self._ssl_context = ssl_context or httpx.create_ssl_context()
        self._per_address = max_connections_per_address
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self._ssl_context,
                limit=MAX_CONNECTIONS,
                limit_per_host=self._per_address,
                keepalive_timeout=KEEPALIVE_SECONDS,
                use_dns_cache=False,  # every host is an address literal: nothing to resolve
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
                timeout=aiohttp.ClientTimeout(total=None),  # the caller bounds each request
            )
        return self._session

    async def post(
        self, target: CheckedTarget, body: bytes, headers: Mapping[str, str], max_answer: int
    ) -> tuple[int, str | None, bytes]:
        """POST ``body`` to ``target``: status, ``Retry-After`` and at most ``max_answer``
        bytes of the answer. An answer longer than that is cut off and its connection closed
        (aiohttp reuses a connection only when its answer was read to the end)."""
        url = request_url(target)
        session = self._open()
        async with session.post(
            url,
            data=body,
            headers={**headers, "Host": target.authority},
            allow_redirects=False,
            server_hostname=target.host if target.scheme == "https" else None,
        ) as response:
            raw = bytearray()
            while len(raw) < max_answer:
                chunk = await response.content.read(max_answer - len(raw))
                if not chunk:
                    break
                raw += chunk
            return response.status, response.headers.get("Retry-After"), bytes(raw)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
