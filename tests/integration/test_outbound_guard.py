"""Attack case 18 against a real Deliverer: internal destinations are refused before any
socket is opened, the allow-list lets loopback through, and connections go to the address
that was checked (DNS rebinding), with Host and TLS SNI kept on the name."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohappyeyeballs
import pytest

from embedded_ui.engine.delivery import Deliverer, Outcome
from embedded_ui.engine.pinned import PinnedClient
from embedded_ui.engine.signing import new_endpoint_secret
from embedded_ui.engine.ssrf import OutboundPolicy, check
from receiver import Answer, Receiver, self_signed_tls

LOOPBACK = OutboundPolicy(allowed=(ipaddress.IPv4Network("127.0.0.0/8"),))
SECRET = new_endpoint_secret()
BODY = b'{"event":"ping"}'


class ScriptedResolver:
    """Answers from a script, one entry per call (the last one repeats), and counts calls."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append((host, port))
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


@pytest.fixture
def sockets_opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """Every TCP connection the delivery client opens, as (address, port), wherever it was
    going: aiohttp connects through ``aiohappyeyeballs.start_connection``."""
    opened: list[tuple[str, int]] = []
    original = aiohappyeyeballs.start_connection

    async def recording(addr_infos: Sequence[Any], **kwargs: Any) -> socket.socket:
        opened.extend((info[4][0], info[4][1]) for info in addr_infos)
        return await original(addr_infos, **kwargs)

    monkeypatch.setattr(aiohappyeyeballs, "start_connection", recording)
    yield opened


@pytest.fixture
async def guarded() -> AsyncIterator[Deliverer]:
    """A deliverer with the production policy: nothing but global addresses."""
    async with Deliverer(OutboundPolicy(), timeout=2.0) as deliverer:
        yield deliverer


async def post(deliverer: Deliverer, url: str) -> Outcome:
    return await deliverer.post(url, BODY, secret=SECRET, msg_id="msg_1")


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("[::1]", "::1 is a loopback address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1 means 127.0.0.1, a loopback address"),
        ("2130706433", "2130706433 means 127.0.0.1, a loopback address"),
        ("0x7f000001", "0x7f000001 means 127.0.0.1, a loopback address"),
        ("localhost", "localhost resolves to"),
    ],
)
async def test_loopback_in_any_spelling_is_blocked_before_connecting(
    guarded: Deliverer, sockets_opened: list[tuple[str, int]], host: str, reason: str
):
    async with Receiver() as receiver:
        outcome = await post(guarded, receiver.url(host=host))
    assert (outcome.kind, outcome.status) == ("blocked", None)
    assert outcome.error is not None
    assert reason in outcome.error
    assert receiver.connections == 0
    assert sockets_opened == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/", "private (RFC 1918)"),
        ("http://[fd00::1]:8080/", "unique-local"),
        ("http://100.64.0.1/", "shared (CGNAT)"),
    ],
)
async def test_internal_networks_are_blocked_before_connecting(
    guarded: Deliverer, sockets_opened: list[tuple[str, int]], url: str, reason: str
):
    outcome = await post(guarded, url)
    assert outcome.kind == "blocked"
    assert outcome.error is not None
    assert reason in outcome.error
    assert sockets_opened == []


async def test_a_name_resolving_to_a_private_address_is_blocked(
    sockets_opened: list[tuple[str, int]],
):
    resolver = ScriptedResolver(["93.184.216.34", "10.1.2.3"])
    async with Deliverer(OutboundPolicy(), resolver=resolver) as deliverer:
        outcome = await post(deliverer, "https://hooks.customer.example/in")
    assert outcome.kind == "blocked"
    assert outcome.error == (
        "hooks.customer.example resolves to 10.1.2.3, which is a private (RFC 1918) address"
    )
    assert resolver.calls == [("hooks.customer.example", 443)]
    assert sockets_opened == []


async def test_the_allow_list_lets_loopback_through(sockets_opened: list[tuple[str, int]]):
    async with Deliverer(LOOPBACK, timeout=2.0) as deliverer, Receiver() as receiver:
        outcomes = [
            await post(deliverer, receiver.url(host=host))
            for host in ("127.0.0.1", "localhost", "2130706433", "[::ffff:127.0.0.1]")
        ]
    assert [outcome.kind for outcome in outcomes] == ["delivered"] * 4
    assert {address for address, _port in sockets_opened} == {"127.0.0.1"}
    assert [request.headers["host"] for request in receiver.requests] == [
        f"{host}:{receiver.port}"
        for host in ("127.0.0.1", "localhost", "2130706433", "[::ffff:127.0.0.1]")
    ]


async def test_a_redirect_to_an_internal_address_is_not_followed(
    sockets_opened: list[tuple[str, int]],
):
    # The receiver looks public (its name resolves to an allowed address); its 302 points
    # at an internal service that must never see a connection.
    resolver = ScriptedResolver(["127.0.0.1"])
    async with (
        Receiver(Answer(404)) as internal,
        Receiver(Answer(302, {"Location": internal.url("/admin")})) as receiver,
        Deliverer(LOOPBACK, resolver=resolver) as deliverer,
    ):
        outcome = await post(deliverer, receiver.url(host="public.example"))
    assert (outcome.kind, outcome.status) == ("failed", 302)
    assert internal.connections == 0
    assert sockets_opened == [("127.0.0.1", receiver.port)]


async def test_dns_rebinding_resolves_once_per_check_and_connects_to_the_checked_address(
    sockets_opened: list[tuple[str, int]],
):
    # First answer: an address we accept (loopback is allow-listed here, standing in for a
    # public one). Second answer: an internal one. "rebind.example" exists in no real DNS,
    # so a connection that resolved the name itself would fail.
    resolver = ScriptedResolver(["127.0.0.1"], ["10.0.0.1"])
    async with (
        Receiver() as receiver,
        Deliverer(LOOPBACK, resolver=resolver, timeout=2.0) as deliverer,
    ):
        first = await post(deliverer, receiver.url(host="rebind.example"))
        assert resolver.calls == [("rebind.example", receiver.port)]
        second = await post(deliverer, receiver.url(host="rebind.example"))
    assert first.kind == "delivered"
    assert second.kind == "blocked"
    assert (
        second.error == "rebind.example resolves to 10.0.0.1, which is a private (RFC 1918) address"
    )
    assert len(resolver.calls) == 2
    assert sockets_opened == [("127.0.0.1", receiver.port)]
    assert receiver.connections == 1
    assert receiver.requests[0].headers["host"] == f"rebind.example:{receiver.port}"


async def test_a_pooled_connection_is_not_reused_once_the_name_moved(
    sockets_opened: list[tuple[str, int]],
):
    resolver = ScriptedResolver(["127.0.0.1"], ["127.0.0.2"])
    async with (
        Receiver() as receiver,
        Deliverer(LOOPBACK, resolver=resolver, timeout=2.0) as deliverer,
    ):
        first = await post(deliverer, receiver.url(host="moving.example"))
        second = await post(deliverer, receiver.url(host="moving.example"))
    assert first.kind == "delivered"
    # The receiver listens on 127.0.0.1 only, so the new address refuses the connection.
    assert second.kind == "retry"
    assert sockets_opened == [("127.0.0.1", receiver.port), ("127.0.0.2", receiver.port)]


async def test_tls_verifies_the_name_and_sends_it_as_sni(tmp_path: Path):
    server_tls, client_tls = self_signed_tls(tmp_path, "hooks.customer.example")
    resolver = ScriptedResolver(["127.0.0.1"])
    async with (
        Receiver(tls=server_tls) as receiver,
        Deliverer(LOOPBACK, resolver=resolver, ssl_context=client_tls) as deliverer,
    ):
        outcome = await post(deliverer, receiver.url(host="hooks.customer.example"))
    assert (outcome.kind, outcome.status) == ("delivered", 200)
    assert receiver.sni_names == ["hooks.customer.example"]
    assert receiver.requests[0].headers["host"] == f"hooks.customer.example:{receiver.port}"


async def test_tls_refuses_a_certificate_for_another_name(tmp_path: Path):
    server_tls, client_tls = self_signed_tls(tmp_path, "other.example")
    resolver = ScriptedResolver(["127.0.0.1"])
    async with (
        Receiver(tls=server_tls) as receiver,
        Deliverer(LOOPBACK, resolver=resolver, ssl_context=client_tls) as deliverer,
    ):
        outcome = await post(deliverer, receiver.url(host="hooks.customer.example"))
    assert outcome.kind == "retry"
    assert outcome.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.error
    assert receiver.requests == []


async def test_connections_to_one_address_are_capped_and_waited_for(
    sockets_opened: list[tuple[str, int]],
):
    client = PinnedClient(max_connections_per_address=4)
    try:
        async with Receiver(Answer(200, delay=0.05)) as receiver:
            target = await check(receiver.url("/in?x=1"), LOOPBACK)
            answers = await asyncio.gather(
                *(client.post(target, b"{}", {}, 1024) for _ in range(12))
            )
        assert [status for status, _, _ in answers] == [200] * 12
        assert receiver.connections == 4  # the others waited for a free one
        assert sockets_opened == [("127.0.0.1", receiver.port)] * 4
        assert {request.path for request in receiver.requests} == {"/in?x=1"}
    finally:
        await client.aclose()
