"""Deliveries to real loopback receivers: each kind of answer becomes the right outcome."""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import socket
import time
from collections.abc import AsyncIterator

import pytest
from standardwebhooks.webhooks import Webhook

from embedded_ui import __version__
from embedded_ui.engine.delivery import EXCERPT_CHARS, Deliverer, Outcome, parse_retry_after
from embedded_ui.engine.signing import new_endpoint_secret
from embedded_ui.engine.ssrf import OutboundPolicy
from receiver import Answer, Receiver

LOOPBACK = OutboundPolicy(allowed=(ipaddress.IPv4Network("127.0.0.0/8"),))
SECRET = new_endpoint_secret()
BODY = b'{"order":{"id":42,"total":"9.99"}}'
MSG_ID = "msg_exec1_block1"


@pytest.fixture
async def deliverer() -> AsyncIterator[Deliverer]:
    async with Deliverer(LOOPBACK, timeout=2.0) as deliverer:
        yield deliverer


async def post(deliverer: Deliverer, url: str, **kwargs: object) -> Outcome:
    return await deliverer.post(url, BODY, secret=SECRET, msg_id=MSG_ID, **kwargs)  # type: ignore[arg-type]


async def test_a_2xx_is_delivered_signed_as_json(deliverer: Deliverer):
    async with Receiver(Answer(202, body=b"accepted")) as receiver:
        outcome = await post(deliverer, receiver.url("/in?token=abc"))
    assert (outcome.kind, outcome.status, outcome.error, outcome.excerpt) == (
        "delivered",
        202,
        None,
        "accepted",
    )
    assert 0 < outcome.duration_ms < 2000
    [received] = receiver.requests
    assert (received.method, received.path, received.body) == ("POST", "/in?token=abc", BODY)
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"] == f"embedded-ui/{__version__}"
    assert received.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert received.headers["webhook-id"] == MSG_ID
    assert "accept-encoding" not in received.headers
    Webhook(SECRET).verify(received.body, received.headers)


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
async def test_throttling_and_server_errors_are_retried(deliverer: Deliverer, status: int):
    async with Receiver(Answer(status, body=b"busy")) as receiver:
        outcome = await post(deliverer, receiver.url())
    assert (outcome.kind, outcome.status, outcome.error) == ("retry", status, f"HTTP {status}")
    assert outcome.retry_after is None
    assert outcome.excerpt == "busy"


async def test_429_with_retry_after_seconds(deliverer: Deliverer):
    async with Receiver(Answer(429, {"Retry-After": "120"})) as receiver:
        outcome = await post(deliverer, receiver.url())
    assert (outcome.kind, outcome.status, outcome.retry_after) == ("retry", 429, 120.0)


async def test_503_with_retry_after_date(deliverer: Deliverer):
    when = email.utils.formatdate(time.time() + 90, usegmt=True)
    async with Receiver(Answer(503, {"Retry-After": when})) as receiver:
        outcome = await post(deliverer, receiver.url())
    assert outcome.kind == "retry"
    assert outcome.retry_after is not None
    assert 80 <= outcome.retry_after <= 91


async def test_410_means_gone(deliverer: Deliverer):
    async with Receiver(Answer(410)) as receiver:
        outcome = await post(deliverer, receiver.url())
    assert (outcome.kind, outcome.status, outcome.error) == ("gone", 410, "HTTP 410")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
async def test_other_client_errors_fail(deliverer: Deliverer, status: int):
    async with Receiver(Answer(status, {"Retry-After": "5"})) as receiver:
        outcome = await post(deliverer, receiver.url())
    assert (outcome.kind, outcome.status, outcome.retry_after) == ("failed", status, None)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_fail_and_are_not_followed(deliverer: Deliverer, status: int):
    async with (
        Receiver(Answer(404)) as internal,
        Receiver(Answer(status, {"Location": internal.url("/admin")})) as receiver,
    ):
        outcome = await post(deliverer, receiver.url())
    assert (outcome.kind, outcome.status) == ("failed", status)
    assert len(receiver.requests) == 1
    assert internal.connections == 0


async def test_a_slow_receiver_times_out_and_is_retried():
    async with (
        Deliverer(LOOPBACK, timeout=0.3) as deliverer,
        Receiver(Answer(200, delay=1.5)) as receiver,
    ):
        started = time.perf_counter()
        outcome = await post(deliverer, receiver.url())
        elapsed = time.perf_counter() - started
    assert (outcome.kind, outcome.status, outcome.error) == (
        "retry",
        None,
        "no answer within 0.3 s",
    )
    assert elapsed < 1.0
    assert len(receiver.requests) == 1


async def test_a_closed_port_is_retried(deliverer: Deliverer):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = await post(deliverer, f"http://127.0.0.1:{port}/")
    assert (outcome.kind, outcome.status) == ("retry", None)
    assert outcome.error is not None
    assert outcome.error.startswith(f"could not connect to 127.0.0.1:{port}: ")


async def test_a_huge_answer_is_cut_short(deliverer: Deliverer):
    async with Receiver(Answer(200, body=b"x" * 5_000_000)) as receiver:
        outcome = await post(deliverer, receiver.url())
        again = await post(deliverer, receiver.url())
    assert (outcome.kind, outcome.status) == ("delivered", 200)
    assert outcome.excerpt == "x" * EXCERPT_CHARS
    # The unread rest is never read: that connection is closed, the next post opens its own.
    assert again.kind == "delivered"
    assert receiver.connections == 2


async def test_every_attempt_carries_the_same_webhook_id(deliverer: Deliverer):
    async with Receiver(Answer(500)) as receiver:
        first = await post(deliverer, receiver.url())
        second = await post(deliverer, receiver.url())
        third = await deliverer.post(receiver.url(), BODY, secret=SECRET, msg_id="msg_other")
    assert [first.kind, second.kind, third.kind] == ["retry"] * 3
    ids = [request.headers["webhook-id"] for request in receiver.requests]
    assert ids == [MSG_ID, MSG_ID, "msg_other"]
    for request in receiver.requests:
        Webhook(SECRET).verify(request.body, request.headers)


async def test_connections_are_reused_across_deliveries(deliverer: Deliverer):
    async with Receiver() as receiver:
        for _ in range(5):
            assert (await post(deliverer, receiver.url())).kind == "delivered"
        outcomes = await asyncio.gather(*(post(deliverer, receiver.url()) for _ in range(40)))
    assert {outcome.kind for outcome in outcomes} == {"delivered"}
    assert len(receiver.requests) == 45
    assert receiver.connections <= 40
    async with Receiver() as single:
        for _ in range(5):
            await post(deliverer, single.url())
    assert single.connections == 1


async def test_extra_headers_are_sent_but_cannot_replace_ours(deliverer: Deliverer):
    extra = {"X-Tenant": "acme", "webhook-id": "forged", "Content-Type": "text/plain"}
    async with Receiver() as receiver:
        await post(deliverer, receiver.url(), extra_headers=extra)
    [received] = receiver.requests
    assert received.headers["x-tenant"] == "acme"
    assert received.headers["webhook-id"] == MSG_ID
    assert received.headers["content-type"] == "application/json"


async def test_a_request_that_cannot_be_built_fails_without_quoting_the_secret(
    deliverer: Deliverer,
):
    broken_secret = "whsec_c2VjcmV0"  # decodes to 6 bytes: too short
    async with Receiver() as receiver:
        short = await deliverer.post(receiver.url(), BODY, secret=broken_secret, msg_id=MSG_ID)
        bad_header = await post(deliverer, receiver.url(), extra_headers={"X-A": "a\r\nX-B: b"})
    assert short.kind == "failed"
    assert short.error is not None
    assert "c2VjcmV0" not in short.error
    assert bad_header.kind == "failed"
    assert receiver.connections == 0


async def test_the_secret_is_in_no_outcome(deliverer: Deliverer):
    canary = new_endpoint_secret()

    def echo(request: object) -> Answer:
        return Answer(500, body=canary.encode() + repr(request).encode())

    async with Receiver(echo) as receiver:
        outcomes = [
            await deliverer.post(receiver.url(), BODY, secret=canary, msg_id=MSG_ID),
            await deliverer.post("http://10.0.0.1/", BODY, secret=canary, msg_id=MSG_ID),
            await deliverer.post(receiver.url(), BODY, secret=canary, msg_id="bad id"),
        ]
    assert [outcome.kind for outcome in outcomes] == ["retry", "blocked", "failed"]
    for outcome in outcomes:
        assert canary not in repr(outcome)
        assert canary.removeprefix("whsec_") not in repr(outcome)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0.0),
        (" 30 ", 30.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),
    ],
)
def test_retry_after_parsing(value: str | None, expected: float | None):
    assert parse_retry_after(value, time.time()) == expected


def test_retry_after_dates_count_from_now():
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 60, usegmt=True), now) == 60.0


async def test_a_busy_receivers_connections_are_kept_and_reused(deliverer: Deliverer):
    async with Receiver(Answer(200, delay=0.2)) as receiver:
        for _wave in range(2):
            outcomes = await asyncio.gather(*(post(deliverer, receiver.url()) for _ in range(20)))
            assert {outcome.kind for outcome in outcomes} == {"delivered"}
    assert receiver.connections == 20
    assert len(receiver.requests) == 40


@pytest.mark.parametrize("secret", ["", "whsec_"])
async def test_an_empty_secret_fails_cleanly(deliverer: Deliverer, secret: str):
    outcome = await deliverer.post("http://127.0.0.1:9/", BODY, secret=secret, msg_id=MSG_ID)
    assert outcome.kind == "failed"
    assert outcome.error is not None
    assert outcome.error.startswith("the request could not be built: an endpoint secret")
