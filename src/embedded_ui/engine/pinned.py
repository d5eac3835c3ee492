"""Connections to checked addresses only (:func:`embedded_ui.engine.ssrf.check`).

:class:`PinnedTransport` connects to the checked address instead of resolving the name
again, so a DNS answer that changes between the check and the connection (DNS rebinding)
cannot redirect the request. The URL keeps its hostname, so the Host header, TLS SNI and the
certificate check all use the name. Connections are pooled per checked
``(scheme, host, port, address)``.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import httpcore
import httpx

from embedded_ui.engine.ssrf import CHECKED_TARGET, DEFAULT_PORTS, CheckedTarget, IPAddress


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Opens connections for one checked target, to its checked address only."""

    def __init__(
        self, target: CheckedTarget, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._target = target
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if (host, port) != (self._target.host, self._target.port):
            # Only reachable if httpcore someday connects elsewhere (a proxy, a redirect).
            raise httpcore.ConnectError("refused: not the checked destination")
        stream = await self._inner.connect_tcp(
            str(self._target.ip), port, timeout, local_address, socket_options
        )
        return _PollableStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("refused: unix sockets are never a webhook destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PollableStream(httpcore.AsyncNetworkStream):
    """A stream whose "is the idle connection readable?" probe is one poll() call.

    httpcore asks it of every idle connection each time a request enters or leaves the pool;
    anyio answers through its typed-attribute lookup, which dominated a busy pool's time.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        return _PollableStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> object:
        if info == "is_readable" and self._socket is not None:
            if self._socket.fileno() < 0:
                return True
            poller = select.poll()
            poller.register(self._socket, select.POLLIN)
            return bool(poller.poll(0))
        return self._inner.get_extra_info(info)


class _PinnedPool(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that connects through a PinnedBackend."""

    def __init__(self, target: CheckedTarget, ssl_context: ssl.SSLContext, limits: httpx.Limits):
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # httpx 0.28 takes no network backend, so the pool it built (still without a single
        # connection) is replaced by one that has ours; tests pin the behaviour.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(target),
        )


@dataclass(eq=False)
class _Shard:
    pool: _PinnedPool
    in_use: int = field(default=0)


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that marks its shard free again once it is closed."""

    def __init__(self, inner: httpx.AsyncByteStream, shard: _Shard) -> None:
        self._inner = inner
        self._shard: _Shard | None = shard

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._shard is not None:
                self._shard.in_use -= 1
                self._shard = None


SHARD_LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=8, keepalive_expiry=30)
"""One shard's pool. httpcore's pool does work quadratic in its connections whenever a request
enters or leaves it (at 32 concurrent requests to one receiver it managed 200 a second), so a
busy target gets several small pools instead of one large one."""
MAX_SHARDS = 16
"""Per target, so at most 128 connections to one receiver from one process."""


class PinnedTransport(httpx.AsyncBaseTransport):
    """Sends each request to the address :func:`check` approved, found in the request's
    :data:`CHECKED_TARGET` extension; a request without one is refused.

    Pools are kept per ``(scheme, host, port, address)`` and reused across deliveries; a host
    whose address changed gets new pools, never a connection opened for another address.
    Targets left idle are closed, least recently used first, beyond ``max_targets``.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, max_targets: int = 256):
        # One context for every pool: loading the CA bundle costs milliseconds each time.
        self._ssl_context = ssl_context or httpx.create_ssl_context()
        self._max_targets = max_targets
        self._targets: OrderedDict[tuple[str, str, int, IPAddress], list[_Shard]] = OrderedDict()

    @property
    def pool_count(self) -> int:
        """Targets with open pools."""
        return len(self._targets)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = request.extensions.get(CHECKED_TARGET)
        url = request.url
        if not isinstance(target, CheckedTarget) or (
            url.scheme,
            url.raw_host.decode("ascii").lower(),
            url.port or DEFAULT_PORTS.get(url.scheme),
        ) != (target.scheme, target.host, target.port):
            raise httpx.ConnectError("refused: the request's destination was not checked")
        shard = self._shard_for(target)
        shard.in_use += 1  # before any await, so the eviction below cannot pick it
        try:
            await self._evict_idle()
            response = await shard.pool.handle_async_request(request)
        except BaseException:
            shard.in_use -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_ReleasingStream(response.stream, shard),
            extensions=response.extensions,
        )

    def _shard_for(self, target: CheckedTarget) -> _Shard:
        # Fill the first shards first: their warm connections get reused, and a later shard
        # only opens connections when the earlier ones are all busy.
        shards = self._targets.setdefault(target.origin, [])
        self._targets.move_to_end(target.origin)
        capacity = SHARD_LIMITS.max_connections or 1
        for shard in shards:
            if shard.in_use < capacity:
                return shard
        if len(shards) < MAX_SHARDS:
            shards.append(_Shard(_PinnedPool(target, self._ssl_context, SHARD_LIMITS)))
            return shards[-1]
        return min(shards, key=lambda shard: shard.in_use)

    async def _evict_idle(self) -> None:
        excess = len(self._targets) - self._max_targets
        if excess <= 0:
            return
        idle = [
            origin
            for origin, shards in self._targets.items()
            if all(shard.in_use == 0 for shard in shards)
        ][:excess]
        for origin in idle:
            for shard in self._targets.pop(origin):
                await shard.pool.aclose()

    async def aclose(self) -> None:
        targets = list(self._targets.values())
        self._targets.clear()
        for shards in targets:
            for shard in shards:
                await shard.pool.aclose()
