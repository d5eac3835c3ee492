"""Per-API-key rate limits with a sliding-window counter.

Litestar's RateLimitMiddleware keeps a list of timestamps and writes it back with get-then-set,
which undercounts when several processes share Redis, and sends no ``Retry-After``. Here each
window is one atomic ``INCR``; the estimate weighs the previous window by how much of it still
overlaps the last 60 seconds (the approach Cloudflare describes), so bursts at a window edge
cannot double the limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)
WINDOW_SECONDS = 60


class RateLimiter(Protocol):
    async def hit(self, identifier: str) -> float | None:
        """Count one request; return ``None`` if allowed, else seconds until a retry may pass."""

    async def close(self) -> None: ...


def _decide(limit: int, previous: int, current: int, now: float) -> float | None:
    elapsed = now % WINDOW_SECONDS
    estimate = previous * (1 - elapsed / WINDOW_SECONDS) + current
    if estimate <= limit:
        return None
    # When the previous window's weight alone keeps us over, waiting for the window to turn
    # is the honest answer; never advise less than one second.
    return float(max(1, math.ceil(WINDOW_SECONDS - elapsed)))


class MemoryRateLimiter:
    """Counts in this process only: right for one process, documented as such."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.time) -> None:
        self._limit = limit
        self._clock = clock
        self._counts: dict[tuple[str, int], int] = {}

    async def hit(self, identifier: str) -> float | None:
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        if len(self._counts) > 100_000:  # bound memory: forget windows that no longer count
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= window - 1}
        current = self._counts.get((identifier, window), 0) + 1
        self._counts[(identifier, window)] = current
        previous = self._counts.get((identifier, window - 1), 0)
        return _decide(self._limit, previous, current, now)

    async def close(self) -> None:
        self._counts.clear()


class RedisRateLimiter:
    """Shared by every process pointed at the same Redis."""

    def __init__(self, redis_url: str, limit: int, clock: Callable[[], float] = time.time) -> None:
        self._redis: Redis = Redis.from_url(redis_url, socket_timeout=1.0)
        self._limit = limit
        self._clock = clock

    async def hit(self, identifier: str) -> float | None:
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        current_key = f"eui:rate:{identifier}:{window}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(current_key)
                pipe.expire(current_key, WINDOW_SECONDS * 2)
                pipe.get(f"eui:rate:{identifier}:{window - 1}")
                current, _, previous = await pipe.execute()
        except RedisError as exc:
            # Limiting is protection, not correctness: an unreachable Redis must not take the
            # API down with it. The failure is logged so it is seen.
            log.warning("rate_limit_unavailable", error_type=type(exc).__name__)
            return None
        return _decide(self._limit, int(previous or 0), int(current), now)

    async def close(self) -> None:
        await self._redis.aclose()


class NoRateLimit:
    async def hit(self, identifier: str) -> float | None:
        return None

    async def close(self) -> None:
        return None


def create_rate_limiter(limit: int, redis_url: str | None) -> RateLimiter:
    if limit <= 0:
        return NoRateLimit()
    if redis_url:
        return RedisRateLimiter(redis_url, limit)
    return MemoryRateLimiter(limit)
