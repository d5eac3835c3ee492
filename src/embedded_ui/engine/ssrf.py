"""The outbound guard: a URL is sent to only after its host resolved to addresses we accept,
and then only to the address that was checked.

:func:`check` parses the URL, resolves the host **once**, and refuses it when any address is
not global (loopback, private, link-local, CGNAT, multicast, reserved...) unless
``EMBEDDED_UI_OUTBOUND_ALLOW`` lists its network. IPv6 forms that carry an IPv4 address
(IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) are judged by that IPv4 address too.

:class:`PinnedTransport` then connects to the checked address instead of resolving the name
again, so a DNS answer that changes between the check and the connection (DNS rebinding)
cannot redirect the request. The URL keeps its hostname, so the Host header, TLS SNI and the
certificate check all use the name. Connections are pooled per checked
``(scheme, host, port, address)``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import select
import socket
import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpcore
import httpx

if TYPE_CHECKING:
    from embedded_ui.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses``; :func:`resolve_host` unless a test injects one."""

CHECKED_TARGET = "embedded_ui.checked_target"
"""Request extension holding the :class:`CheckedTarget` a request may be sent to."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOSTNAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")
# inet_aton's forms, which resolvers accept as addresses: 1 to 4 parts, each decimal, 0-octal
# or 0x-hex (`2130706433`, `0x7f000001`, `127.1`, `0177.0.0.1` are all 127.0.0.1).
_LEGACY_IPV4_PART = re.compile(r"0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*")


def _networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# (networks, what they are), most specific reason first. Anything else that Python does not
# call global is refused too, as "not a global address".
_NON_GLOBAL: tuple[tuple[tuple[IPNetwork, ...], str], ...] = (
    (_networks("0.0.0.0/8", "::/128"), "an unspecified address"),
    (_networks("127.0.0.0/8", "::1/128"), "a loopback address"),
    (_networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"), "a private (RFC 1918) address"),
    (_networks("169.254.0.0/16", "fe80::/10"), "a link-local address"),
    (_networks("100.64.0.0/10"), "a shared (CGNAT) address"),
    (_networks("fc00::/7", "fec0::/10"), "a unique-local or site-local address"),
    (_networks("224.0.0.0/4", "ff00::/8"), "a multicast address"),
    (
        _networks("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"),
        "a documentation address",
    ),
    (_networks("198.18.0.0/15"), "a benchmarking address"),
    (
        _networks("192.0.0.0/24", "192.88.99.0/24", "240.0.0.0/4", "64:ff9b:1::/48", "100::/64"),
        "a reserved address",
    ),
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class BlockedDestination(Exception):
    """The URL may not be sent to. ``reason`` names the problem and is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResolutionFailed(Exception):
    """The host name did not resolve; it may next time, so this is worth a retry."""


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Which non-global networks and which ports outbound requests may reach."""

    allowed: tuple[IPNetwork, ...] = ()
    """Networks reachable although they are not global (the demo and tests allow loopback)."""
    allowed_ports: frozenset[int] | None = None
    """Ports URLs may name; None allows any port (receivers often listen on 8443, 3000...)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls(
            allowed=tuple(
                ipaddress.ip_network(cidr, strict=False) for cidr in settings.outbound_allow
            )
        )

    def permits(self, ip: IPAddress) -> bool:
        return any(ip in network for network in self.allowed)


@dataclass(frozen=True, slots=True)
class CheckedTarget:
    """A URL and the one address it was checked at; requests for it connect there."""

    url: str
    scheme: str
    host: str
    """ASCII host as it is sent (IDNA-encoded; an IPv6 literal without brackets)."""
    port: int
    ip: IPAddress

    @property
    def origin(self) -> tuple[str, str, int, IPAddress]:
        return (self.scheme, self.host, self.port, self.ip)


async def resolve_host(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver, in its order of preference."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address inet_aton would read from ``host``, or None when it is not one."""
    parts = host.removesuffix(".").split(".")
    if len(parts) > 4 or not all(_LEGACY_IPV4_PART.fullmatch(part) for part in parts):
        return None
    values = [
        int(part[2:] or "0", 16)
        if part.startswith("0x")
        else int(part, 8 if part[0] == "0" else 10)
        for part in parts
    ]
    *leading, last = values
    if any(value > 255 for value in leading) or last >= 256 ** (5 - len(values)):
        raise BlockedDestination(f"{host} is not a valid IPv4 address")
    number = last
    for index, value in enumerate(leading):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _literal_address(host: str) -> IPAddress | None:
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise BlockedDestination(f"{host} is not a valid IPv6 address") from None
    return _legacy_ipv4(host)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for or tunnels to, if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _unmapped(ip: IPAddress) -> IPAddress:
    """The IPv4 address behind an IPv4-mapped IPv6 one (``::ffff:a.b.c.d``), else ``ip``."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_class(ip: IPAddress) -> str | None:
    """What makes ``ip`` non-global ("a loopback address"...), or None for a global address."""
    ip = _unmapped(ip)
    for networks, name in _NON_GLOBAL:
        if any(ip in network for network in networks):
            return name
    if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(ip)):
        inner = address_class(embedded)
        if inner is not None:
            return f"an IPv6 address embedding {embedded}, {inner}"
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        return "not a global address"
    return None


def refusal(ip: IPAddress, policy: OutboundPolicy) -> str | None:
    """What makes ``ip`` unreachable under ``policy`` ("a loopback address"...), or None."""
    if policy.permits(ip):
        return None
    embedded = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    if embedded is not None and policy.permits(embedded):
        return None
    return address_class(ip)


def _parse(url: str, policy: OutboundPolicy) -> tuple[httpx.URL, str, int]:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise BlockedDestination("the URL is not valid") from None
    if parsed.scheme not in _DEFAULT_PORTS:
        raise BlockedDestination("only http and https URLs are allowed")
    if parsed.userinfo:
        raise BlockedDestination("URLs with a user name or password are not allowed")
    host = parsed.raw_host.decode("ascii").lower()
    if not host or (":" not in host and not _HOSTNAME.fullmatch(host)):
        raise BlockedDestination("the URL has no valid host name")
    port = _DEFAULT_PORTS[parsed.scheme] if parsed.port is None else parsed.port
    if not 1 <= port <= 65535 or (
        policy.allowed_ports is not None and port not in policy.allowed_ports
    ):
        raise BlockedDestination(f"port {port} is not allowed")
    return parsed, host, port


async def check(
    url: str, policy: OutboundPolicy, *, resolver: Resolver = resolve_host
) -> CheckedTarget:
    """Approve ``url`` and choose the address to connect to.

    Raises:
        BlockedDestination: the URL is malformed, or an address is not allowed.
        ResolutionFailed: the host name has no address right now.
    """
    parsed, host, port = _parse(url, policy)
    literal = _literal_address(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            answers = await resolver(host, port)
            addresses = list(dict.fromkeys(ipaddress.ip_address(answer) for answer in answers))
        except (OSError, UnicodeError, ValueError):
            raise ResolutionFailed(f"{host} could not be resolved") from None
        if not addresses:
            raise ResolutionFailed(f"{host} has no address")
    for ip in addresses:
        kind = refusal(ip, policy)
        if kind is not None and literal is not None:
            meant = _unmapped(ip)
            message = f"{ip} is {kind}" if host == str(meant) else f"{host} means {meant}, {kind}"
            raise BlockedDestination(message)
        if kind is not None:
            raise BlockedDestination(f"{host} resolves to {ip}, which is {kind}")
    # An IPv4-mapped address is the same host, reached over IPv4.
    return CheckedTarget(str(parsed), parsed.scheme, host, port, _unmapped(addresses[0]))


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
            url.port or _DEFAULT_PORTS.get(url.scheme),
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
