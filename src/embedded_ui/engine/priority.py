"""The API first: an in-process worker gives way to the requests of its own process.

On the embedded default the in-process worker delivers on the same event loop and cores as
the API. A delivery costs about 1 ms of CPU (docs/benchmarks.md), several times a hot
``POST /run/event``, so a burst of events whose deliveries started at once would slow the
answers to the events themselves — the ISV's backend waiting on us — to the pace of the
deliveries. The product decision (docs/engine.md, "The API first"): accepting an event (it is
stored, durably, before the answer) comes before delivering it, within a bound.

- The process's API is *busy* when its requests queue up: a request that starts while
  ``BUSY_CONCURRENCY - 1`` others are still being answered marks it busy for the next
  ``BUSY_HOLD_SECONDS``. (Requests one at a time, or a moderate stream of them, never
  overlap that much; a saturated API does so all the time. Gaps of a few milliseconds
  between requests happen even then, when the process loses its core, so "no request in
  flight right now" would not tell.)
- While it is busy, the worker starts deliveries from a budget refilled at
  ``rate`` per second (``EMBEDDED_UI_WORKER_BUSY_RATE``), a quarter of a second's worth at
  once: the guaranteed minimum, so nothing waits for the API to fall quiet.
- As soon as the API is quiet, the worker claims as many executions as it has free slots,
  as before; the backlog of a burst is delivered at full speed after it.

Requests one at a time never wait: each finds the budget full (the event → delivered latency
is that of a quiet process). ``rate`` 0 switches the priority off.
"""

from __future__ import annotations

import math
import time

BUSY_CONCURRENCY = 3
"""Requests in flight at once that mark the API busy."""
BUSY_HOLD_SECONDS = 0.1
"""How long the API stays busy after its requests last queued up."""
BURST_SECONDS = 0.25
"""While the API is busy, deliveries start in bursts of this many seconds' worth of ``rate``."""


class ApiLoad:
    """The HTTP requests this process is answering (counted by the app, app.py)."""

    __slots__ = ("in_flight", "queued_up_at")

    def __init__(self) -> None:
        self.in_flight = 0
        self.queued_up_at = -math.inf

    def started(self) -> None:
        self.in_flight += 1
        if self.in_flight >= BUSY_CONCURRENCY:
            self.queued_up_at = time.monotonic()

    def finished(self) -> None:
        self.in_flight -= 1

    def busy_for(self, now: float) -> float:
        """How much longer the API counts as busy (0: it is quiet)."""
        return max(0.0, self.queued_up_at + BUSY_HOLD_SECONDS - now)


class DeliveryBudget:
    """How many executions the worker may claim now: all it has room for while the API is
    quiet, a token bucket of ``rate`` per second while it is busy."""

    def __init__(self, load: ApiLoad, rate: float) -> None:
        self._load = load
        self._rate = rate
        self._burst = max(1.0, rate * BURST_SECONDS)
        self._tokens = self._burst
        self._at = time.monotonic()

    def allowance(self, free: int) -> int:
        """At most ``free``; 0 means "wait ``wait()`` seconds and ask again".

        While the API is busy, deliveries start in whole bursts (``rate * BURST_SECONDS``
        every ``BURST_SECONDS``): each claim, and each flush of outcomes, is a write
        transaction that the API's own inserts queue behind on SQLite, and each claim's
        statement costs the same for 1 row or 25, so few large ones cost the API less than
        many small ones (bench/engine.py ``run-event``: 1,140 claims of 1.7 executions each
        per process in 14 s, before bursts)."""
        now = time.monotonic()
        if not self.busy(now):
            self._tokens, self._at = self._burst, now
            return free
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        tokens = int(self._tokens + 1e-9)  # 24.999... tokens after a quarter of a second are 25
        if tokens < min(max(1, int(self._burst)), free):
            return 0
        return min(free, tokens)

    def busy(self, now: float | None = None) -> bool:
        """Whether the API has priority now (never with ``rate`` 0)."""
        moment = time.monotonic() if now is None else now
        return self._rate > 0 and self._load.busy_for(moment) > 0

    def spend(self, claimed: int) -> None:
        self._tokens = max(0.0, self._tokens - claimed)

    def wait(self) -> float:
        """Until the next burst, or until the API may have fallen quiet, if sooner."""
        next_burst = max(0.0, self._burst - self._tokens) / self._rate
        return min(next_burst, self._load.busy_for(time.monotonic()))
