"""The outbound guard: a URL is sent to only after its host resolved to addresses we accept,
and then only to the address that was checked (:mod:`embedded_ui.engine.pinned`).

:func:`check` parses the URL, resolves the host **once**, and refuses it when any address is
not global (loopback, private, link-local, CGNAT, multicast, reserved...) unless
``EMBEDDED_UI_OUTBOUND_ALLOW`` lists its network. IPv6 forms that carry an IPv4 address
(IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) are judged by that IPv4 address too.

:class:`~embedded_ui.engine.pinned.PinnedClient` then connects to the checked address
instead of resolving the name again (no DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from embedded_ui.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses``; :func:`resolve_host` unless a test injects one."""

DEFAULT_PORTS = {"http": 80, "https": 443}
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
    authority: str
    """The ``Host`` header: the host as sent, bracketed if IPv6, and the port unless default."""
    path: str
    """The request target: path and query, percent-encoded (no fragment)."""


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


@lru_cache(maxsize=4096)
def refusal(ip: IPAddress, policy: OutboundPolicy) -> str | None:
    """What makes ``ip`` unreachable under ``policy`` ("a loopback address"...), or None.
    Cached: the answer depends on nothing else, and working it out (a score of network
    tests) was a tenth of a delivery's CPU."""
    if policy.permits(ip):
        return None
    embedded = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    if embedded is not None and policy.permits(embedded):
        return None
    return address_class(ip)


@dataclass(frozen=True, slots=True)
class _Parsed:
    url: str
    scheme: str
    host: str
    port: int
    literal: IPAddress | None
    """The address the host spells, if it is one (no resolution then)."""
    authority: str
    path: str


@lru_cache(maxsize=4096)
def _parse(url: str, policy: OutboundPolicy) -> _Parsed:
    # Cached per URL (an endpoint is sent to again and again; a refused URL raises and is not
    # cached): parsing cost more than the rest of the check. Resolution is never cached.
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise BlockedDestination("the URL is not valid") from None
    if parsed.scheme not in DEFAULT_PORTS:
        raise BlockedDestination("only http and https URLs are allowed")
    if parsed.userinfo:
        raise BlockedDestination("URLs with a user name or password are not allowed")
    host = parsed.raw_host.decode("ascii").lower()
    if not host or (":" not in host and not _HOSTNAME.fullmatch(host)):
        raise BlockedDestination("the URL has no valid host name")
    port = DEFAULT_PORTS[parsed.scheme] if parsed.port is None else parsed.port
    if not 1 <= port <= 65535 or (
        policy.allowed_ports is not None and port not in policy.allowed_ports
    ):
        raise BlockedDestination(f"port {port} is not allowed")
    return _Parsed(
        str(parsed),
        parsed.scheme,
        host,
        port,
        _literal_address(host),
        parsed.netloc.decode("ascii"),
        parsed.raw_path.decode("ascii"),
    )


async def check(
    url: str, policy: OutboundPolicy, *, resolver: Resolver = resolve_host
) -> CheckedTarget:
    """Approve ``url`` and choose the address to connect to.

    Raises:
        BlockedDestination: the URL is malformed, or an address is not allowed.
        ResolutionFailed: the host name has no address right now.
    """
    parsed = _parse(url, policy)
    host, port, literal = parsed.host, parsed.port, parsed.literal
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
    return CheckedTarget(
        parsed.url,
        parsed.scheme,
        host,
        port,
        _unmapped(addresses[0]),
        parsed.authority,
        parsed.path,
    )
