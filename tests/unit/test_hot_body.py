"""How the hot path reads a request body (api/hot.py, ``_read`` and ``_replay``).

Granian delivers a small body as its bytes with ``more_body`` true and then an empty last
message; the hot path stops once the declared length arrived, and whatever it did not read
stays readable for the ordinary path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from embedded_ui.api.hot import _read, _replay


class Receive:
    """An ASGI ``receive`` that returns ``messages`` in turn, then waits forever."""

    def __init__(self, messages: Sequence[dict[str, Any]]) -> None:
        self.pending = list(messages)
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        if self.pending:
            return self.pending.pop(0)
        await asyncio.Event().wait()  # a client that sends nothing more


def chunk(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_stops_at_the_declared_length_without_waiting_for_the_last_message() -> None:
    receive = Receive([chunk(b'{"a":1}', True), chunk(b"", False)])
    messages = await asyncio.wait_for(_read(receive, 7), timeout=1)  # type: ignore[arg-type]
    assert messages == [chunk(b'{"a":1}', True)]
    assert receive.calls == 1

    # The ordinary path, if it takes over, reads the same message again, then the rest.
    replay = _replay(messages, receive)  # type: ignore[arg-type]
    assert await replay() == chunk(b'{"a":1}', True)
    assert await replay() == chunk(b"", False)
    assert receive.calls == 2


async def test_a_body_in_parts_is_read_until_all_its_bytes_are_there() -> None:
    receive = Receive([chunk(b'{"a"', True), chunk(b":1}", True), chunk(b"", False)])
    messages = await asyncio.wait_for(_read(receive, 7), timeout=1)  # type: ignore[arg-type]
    assert b"".join(m["body"] for m in messages) == b'{"a":1}'
    assert receive.calls == 2


async def test_a_last_message_or_a_disconnect_ends_the_read_early() -> None:
    whole = Receive([chunk(b"{}", False)])
    assert await _read(whole, 2) == [chunk(b"{}", False)]  # type: ignore[arg-type]

    # Shorter than declared: the caller sees the length differ and hands the request on.
    short = Receive([chunk(b"{", True), {"type": "http.disconnect"}])
    messages = await _read(short, 2)  # type: ignore[arg-type]
    assert messages[-1] == {"type": "http.disconnect"}


async def test_a_client_that_stops_short_is_waited_for_not_answered() -> None:
    receive = Receive([chunk(b"{", True)])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(_read(receive, 2), timeout=0.05)  # type: ignore[arg-type]
