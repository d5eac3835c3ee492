"""The webhook receiver of bench/engine.py: a cheap HTTP/1.1 server in its own process.

    python bench/engine_receiver.py --port PORT

Every POST is a delivery: it is answered ``200 {"ok":true}`` at once and counted, with the
arrival time (``time.monotonic()``, the system-wide CLOCK_MONOTONIC, so comparable with the
benchmark's own clock) of the first copy of each ``webhook-id``. Control routes (GET):

- ``/_stats``: ``{"count", "unique", "first", "last"}`` (first and last arrival times);
- ``/_reset``: forget everything;
- ``/_wait?id=ID&timeout=S``: answers once ``webhook-id`` ID has arrived, with ``{"at": t}``
  (or ``{"at": null}`` after S seconds);
- ``/_wait_unique?n=N&timeout=S``: answers ``/_stats`` once N unique ids have arrived (or
  after S seconds).

It is an ``asyncio.Protocol`` on uvloop with a minimal parser (Content-Length bodies, keep
alive), so a delivery costs it a few microseconds and it is never what limits a measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qs, urlsplit

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n" + (
    b'{"ok":true}'
)
MAX_HEAD = 65_536
MAX_BODY = 10_000_000
MAX_WAIT_SECONDS = 120.0


class State:
    def __init__(self) -> None:
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.arrivals: dict[str, float] = {}
        self.waiters: dict[str, list[asyncio.Future[float]]] = {}
        self.unique_waiters: list[tuple[int, asyncio.Future[None]]] = []

    def reset(self) -> None:
        self.count = 0
        self.first = self.last = None
        self.arrivals.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "unique": len(self.arrivals),
            "first": self.first,
            "last": self.last,
        }

    def delivered(self, webhook_id: str) -> None:
        now = time.monotonic()
        self.count += 1
        if self.first is None:
            self.first = now
        self.last = now
        if webhook_id and webhook_id not in self.arrivals:
            self.arrivals[webhook_id] = now
            for future in self.waiters.pop(webhook_id, ()):
                if not future.done():
                    future.set_result(now)
            if self.unique_waiters:
                unique = len(self.arrivals)
                for n, waiter in self.unique_waiters:
                    if unique >= n and not waiter.done():
                        waiter.set_result(None)
                self.unique_waiters = [(n, w) for n, w in self.unique_waiters if not w.done()]


STATE = State()
TASKS: set[asyncio.Future[None]] = set()


def _response(payload: Any) -> bytes:
    body = json.dumps(payload).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


class Http(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self._close()
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            request_line, _, header_text = head.partition("\r\n")
            headers = {}
            for line in header_text.split("\r\n"):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if length > MAX_BODY:
                self._close()
                return
            if len(self.buffer) < end + 4 + length:
                return  # the body is still coming
            del self.buffer[: end + 4 + length]
            method, _, rest = request_line.partition(" ")
            target = rest.rpartition(" ")[0]
            if method == "GET":
                self._control(target)
            else:
                STATE.delivered(headers.get("webhook-id", ""))
                assert self.transport is not None
                self.transport.write(OK)

    def _control(self, target: str) -> None:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        timeout = min(float(query.get("timeout", "10")), MAX_WAIT_SECONDS)
        if parts.path == "/_stats":
            self._write(STATE.stats())
        elif parts.path == "/_reset":
            STATE.reset()
            self._write(STATE.stats())
        elif parts.path == "/_wait":
            self._later(self._wait_id(query.get("id", ""), timeout))
        elif parts.path == "/_wait_unique":
            self._later(self._wait_unique(int(query.get("n", "0")), timeout))
        else:
            self._write({"error": "unknown"})

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        TASKS.add(task)
        task.add_done_callback(TASKS.discard)

    async def _wait_id(self, webhook_id: str, seconds: float) -> None:
        at = STATE.arrivals.get(webhook_id)
        if at is None:
            future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            STATE.waiters.setdefault(webhook_id, []).append(future)
            try:
                at = await asyncio.wait_for(future, seconds)
            except TimeoutError:
                at = None
        self._write({"at": at})

    async def _wait_unique(self, n: int, seconds: float) -> None:
        if len(STATE.arrivals) < n:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            STATE.unique_waiters.append((n, future))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, seconds)
        self._write(STATE.stats())

    def _write(self, payload: Any) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_response(payload))

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await loop.create_server(Http, host, port, backlog=1024)
    print(f"receiver listening on {host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(options.host, options.port))
    except ImportError:
        asyncio.run(serve(options.host, options.port))


if __name__ == "__main__":
    main()
