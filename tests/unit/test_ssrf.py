from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from embedded_ui.engine.pinned import request_url
from embedded_ui.engine.ssrf import (
    BlockedDestination,
    CheckedTarget,
    OutboundPolicy,
    ResolutionFailed,
    address_class,
    check,
)
from embedded_ui.settings import Settings

EMPTY = OutboundPolicy()
LOOPBACK = OutboundPolicy(allowed=(ipaddress.IPv4Network("127.0.0.0/8"),))


async def no_resolver(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"an address literal was resolved: {host}")


class FakeResolver:
    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append((host, port))
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://[::1]/", "::1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.1/", "10.0.0.1 is a private (RFC 1918) address"),
        ("http://172.16.5.4/", "private (RFC 1918)"),
        ("http://192.168.1.1/", "private (RFC 1918)"),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
        ("http://[::]/", ":: is an unspecified address"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://2130706433/", "2130706433 means 127.0.0.1, a loopback address"),
        ("http://0x7f000001/", "0x7f000001 means 127.0.0.1, a loopback address"),
        ("http://127.1/", "127.1 means 127.0.0.1, a loopback address"),
        ("http://0177.1/", "0177.1 means 127.0.0.1"),
        ("http://0x7f.0x0.1/", "0x7f.0x0.1 means 127.0.0.1"),
        ("http://0x0a000001/", "10.0.0.1, a private (RFC 1918) address"),
        ("http://127.0.0.1./", "loopback"),
        ("http://100.64.0.1/", "shared (CGNAT)"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://255.255.255.255/", "reserved"),
        ("http://240.0.0.1/", "reserved"),
        ("http://198.18.0.1/", "benchmarking"),
        ("http://192.0.2.1/", "documentation"),
        ("http://[fd00::1]/", "unique-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:a9fe:a9fe]/", "link-local"),
        ("http://[::a00:1]/", "embedding 10.0.0.1"),
        ("http://[64:ff9b::a9fe:a9fe]/", "embedding 169.254.169.254"),
        ("http://[2002:c0a8:0101::1]/", "embedding 192.168.1.1"),
        ("http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/", "embedding 10.0.0.1"),
        ("http://[2001:db8::1]/", "documentation"),
    ],
)
async def test_non_global_literals_are_refused_without_resolving(url: str, reason: str):
    with pytest.raises(BlockedDestination) as refused:
        await check(url, EMPTY, resolver=no_resolver)
    assert reason in refused.value.reason


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://example.com:70/", "only http and https"),
        ("http://user:pass@example.com/", "user name or password"),
        ("http://:pass@example.com/", "user name or password"),
        ("http:///path", "no valid host"),
        ("http://exa%6dple.com/", "no valid host"),
        ("http://4294967296/", "not a valid IPv4 address"),
        ("http://256.0.0.1/", "not valid"),
        ("http://0177.0.0.1/", "not valid"),  # httpx refuses octal dotted quads
        ("http://example.com:0/", "port 0"),
        ("not a url at all", "only http and https"),
        ("http://[::1/", "not valid"),
    ],
)
async def test_malformed_urls_are_refused(url: str, reason: str):
    with pytest.raises(BlockedDestination) as refused:
        await check(url, EMPTY, resolver=no_resolver)
    assert reason in refused.value.reason


async def test_a_global_literal_is_checked_without_resolving():
    target = await check("https://93.184.216.34/hook?x=1", EMPTY, resolver=no_resolver)
    assert target == CheckedTarget(
        "https://93.184.216.34/hook?x=1",
        "https",
        "93.184.216.34",
        443,
        ipaddress.IPv4Address("93.184.216.34"),
        "93.184.216.34",
        "/hook?x=1",
    )
    v6 = await check("http://[2606:4700::1111]:8443/", EMPTY, resolver=no_resolver)
    assert (v6.host, v6.port, v6.ip) == (
        "2606:4700::1111",
        8443,
        ipaddress.IPv6Address("2606:4700::1111"),
    )


async def test_a_name_is_resolved_once_and_its_first_address_pinned():
    resolver = FakeResolver(["93.184.216.34", "2606:4700::1111", "93.184.216.34"])
    target = await check("http://Hooks.Example.COM:8080/in", EMPTY, resolver=resolver)
    assert resolver.calls == [("hooks.example.com", 8080)]
    assert target.host == "hooks.example.com"
    assert target.ip == ipaddress.IPv4Address("93.184.216.34")
    assert target.url == "http://hooks.example.com:8080/in"


async def test_a_checked_url_is_resolved_and_judged_again_every_time():
    # The URL's parsing is cached (ssrf._parse), never its resolution: a name that moves to
    # a private address is refused on the next check, and a policy that changes applies.
    resolver = FakeResolver(["93.184.216.34"], ["10.0.0.7"])
    url = "https://hooks.example.com/in"
    assert (await check(url, EMPTY, resolver=resolver)).ip == ipaddress.IPv4Address("93.184.216.34")
    with pytest.raises(BlockedDestination, match=r"resolves to 10\.0\.0\.7, which is a priv"):
        await check(url, EMPTY, resolver=resolver)
    assert len(resolver.calls) == 2
    allowed = OutboundPolicy(allowed=(ipaddress.ip_network("10.0.0.0/8"),))
    assert (await check(url, allowed, resolver=resolver)).ip == ipaddress.IPv4Address("10.0.0.7")
    with pytest.raises(BlockedDestination, match="loopback"):
        await check("http://127.0.0.1:8080/hook", EMPTY, resolver=no_resolver)
    loopback = OutboundPolicy(allowed=(ipaddress.ip_network("127.0.0.0/8"),))
    target = await check("http://127.0.0.1:8080/hook", loopback, resolver=no_resolver)
    assert (target.authority, target.path) == ("127.0.0.1:8080", "/hook")


async def test_international_names_are_checked_in_their_ascii_form():
    resolver = FakeResolver(["93.184.216.34"])
    target = await check("https://bücher.example/", EMPTY, resolver=resolver)
    assert resolver.calls == [("xn--bcher-kva.example", 443)]
    assert target.host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "answers",
    [["10.0.0.5"], ["93.184.216.34", "127.0.0.1"], ["2606:4700::1111", "fd12::1"]],
)
async def test_a_name_with_any_private_address_is_refused(answers: list[str]):
    with pytest.raises(BlockedDestination) as refused:
        await check("https://internal.example/", EMPTY, resolver=FakeResolver(answers))
    assert refused.value.reason.startswith("internal.example resolves to ")


async def test_localhost_is_refused_with_the_system_resolver():
    with pytest.raises(BlockedDestination, match="loopback"):
        await check("http://localhost:8080/", EMPTY)


@pytest.mark.parametrize("answers", [[], ["not-an-address"]])
async def test_names_without_a_usable_address_fail_resolution(answers: list[str]):
    with pytest.raises(ResolutionFailed):
        await check("http://nowhere.example/", EMPTY, resolver=FakeResolver(answers))


async def test_resolver_errors_fail_resolution():
    async def failing(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(ResolutionFailed, match=r"nowhere\.example could not be resolved"):
        await check("http://nowhere.example/", EMPTY, resolver=failing)


async def test_the_allow_list_permits_its_networks_only():
    target = await check("http://2130706433:9000/", LOOPBACK, resolver=no_resolver)
    assert target.ip == ipaddress.IPv4Address("127.0.0.1")
    mapped = await check("http://[::ffff:127.0.0.1]/", LOOPBACK, resolver=no_resolver)
    assert mapped.ip == ipaddress.IPv4Address("127.0.0.1")  # connected over IPv4
    with pytest.raises(BlockedDestination, match="private"):
        await check("http://10.0.0.1/", LOOPBACK, resolver=no_resolver)
    with pytest.raises(BlockedDestination, match="loopback"):
        await check("http://[::1]/", LOOPBACK, resolver=no_resolver)


def test_policy_from_settings():
    settings = Settings(outbound_allow=("127.0.0.0/8", "fd00::/8"))
    policy = OutboundPolicy.from_settings(settings)
    assert policy.allowed == (
        ipaddress.IPv4Network("127.0.0.0/8"),
        ipaddress.IPv6Network("fd00::/8"),
    )
    assert OutboundPolicy.from_settings(Settings()).allowed == ()


async def test_allowed_ports_restrict_ports_and_count_the_default_port():
    policy = OutboundPolicy(allowed_ports=frozenset({443}))
    await check("https://93.184.216.34/", policy, resolver=no_resolver)
    with pytest.raises(BlockedDestination, match="port 80 is not allowed"):
        await check("http://93.184.216.34/", policy, resolver=no_resolver)
    with pytest.raises(BlockedDestination, match="port 22 is not allowed"):
        await check("https://93.184.216.34:22/", policy, resolver=no_resolver)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "2a00:1450::1"]
)
def test_global_addresses_have_no_class(address: str):
    assert address_class(ipaddress.ip_address(address)) is None


NON_GLOBAL_NETWORKS = [
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
]
IPV4_NON_GLOBAL = [net for net in NON_GLOBAL_NETWORKS if net.version == 4]


def _inside(
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    # A network, then an integer inside it: the draw never needs filtering.
    return st.sampled_from(networks).flatmap(
        lambda net: st.integers(int(net.network_address), int(net.broadcast_address)).map(
            ipaddress.ip_address
        )
    )


def _url_host(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return f"[{ip}]" if ip.version == 6 else str(ip)


@given(ip=_inside(NON_GLOBAL_NETWORKS))
def test_the_guard_refuses_every_private_loopback_or_link_local_address(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
):
    with pytest.raises(BlockedDestination):
        asyncio.run(check(f"http://{_url_host(ip)}/", EMPTY, resolver=no_resolver))


@given(ip=_inside(IPV4_NON_GLOBAL), form=st.sampled_from(["mapped", "decimal", "hex", "name"]))
def test_the_guard_refuses_every_private_ipv4_address_in_any_spelling(
    ip: ipaddress.IPv4Address, form: str
):
    hosts = {
        "mapped": f"[::ffff:{ip}]",
        "decimal": str(int(ip)),
        "hex": hex(int(ip)),
        "name": "rebind.example",
    }
    resolver = FakeResolver([str(ip)]) if form == "name" else no_resolver
    with pytest.raises(BlockedDestination):
        asyncio.run(check(f"http://{hosts[form]}:8080/", EMPTY, resolver=resolver))


@pytest.mark.parametrize(
    ("url", "answer", "expected", "authority"),
    [
        (
            "https://Hooks.Example.com/in?a=1#frag",
            "93.184.216.34",
            "https://93.184.216.34/in?a=1",
            "hooks.example.com",
        ),
        (
            "http://hooks.example.com:8080/a b",
            "93.184.216.34",
            "http://93.184.216.34:8080/a%20b",
            "hooks.example.com:8080",
        ),
        (
            "https://bücher.example/",
            "2606:4700::1111",
            "https://[2606:4700::1111]/",
            "xn--bcher-kva.example",
        ),
        (
            "http://[::ffff:93.184.216.34]:81/",
            None,
            "http://93.184.216.34:81/",
            "[::ffff:93.184.216.34]:81",
        ),
    ],
)
async def test_a_request_goes_to_the_checked_address_under_the_name_it_was_given(
    url: str, answer: str | None, expected: str, authority: str
):
    resolver = FakeResolver([answer]) if answer else no_resolver
    target = await check(url, EMPTY, resolver=resolver)
    assert str(request_url(target)) == expected
    assert target.authority == authority
