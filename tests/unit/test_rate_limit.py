"""The in-process sliding-window limiter, driven by an injected clock."""

from __future__ import annotations

import pytest

from embedded_ui.security.rate_limit import (
    WINDOW_SECONDS,
    MemoryRateLimiter,
    NoRateLimit,
    RedisRateLimiter,
    create_rate_limiter,
)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


WINDOW_10 = 10 * WINDOW_SECONDS  # the first instant of window number 10


async def hits_allowed(limiter: MemoryRateLimiter, identifier: str, attempts: int) -> int:
    """How many of ``attempts`` hits pass before the first refusal (all hits are made)."""
    results = [await limiter.hit(identifier) for _ in range(attempts)]
    allowed = 0
    for result in results:
        if result is not None:
            break
        allowed += 1
    assert all(r is not None for r in results[allowed:]), results
    return allowed


async def test_the_limit_is_inclusive_and_the_next_hit_gets_a_retry_time() -> None:
    clock = Clock(WINDOW_10 + 15)
    limiter = MemoryRateLimiter(limit=3, clock=clock)
    for _ in range(3):
        assert await limiter.hit("k") is None
    assert await limiter.hit("k") == 45.0  # until window 11 starts
    clock.now = WINDOW_10 + 50.2
    assert await limiter.hit("k") == 10.0  # rounded up, never early


async def test_retry_after_is_never_below_one_second() -> None:
    clock = Clock(WINDOW_10 + 59.999)
    limiter = MemoryRateLimiter(limit=1, clock=clock)
    assert await limiter.hit("k") is None
    assert await limiter.hit("k") == 1.0


async def test_identifiers_are_counted_apart() -> None:
    limiter = MemoryRateLimiter(limit=2, clock=Clock(WINDOW_10))
    assert await hits_allowed(limiter, "a", 5) == 2
    assert await hits_allowed(limiter, "b", 5) == 2
    assert await limiter.hit("a") is not None


async def test_two_windows_later_the_budget_is_whole_again() -> None:
    clock = Clock(WINDOW_10 + 5)
    limiter = MemoryRateLimiter(limit=4, clock=clock)
    assert await hits_allowed(limiter, "k", 10) == 4
    clock.now = WINDOW_10 + 2 * WINDOW_SECONDS  # window 12: window 10 no longer weighs
    assert await hits_allowed(limiter, "k", 10) == 4


async def test_the_previous_window_weighs_by_its_remaining_overlap() -> None:
    clock = Clock(WINDOW_10 + 30)
    limiter = MemoryRateLimiter(limit=10, clock=clock)
    assert await hits_allowed(limiter, "k", 10) == 10  # window 10 now holds 10 hits

    clock.now = WINDOW_10 + WINDOW_SECONDS + 30  # halfway through window 11: 10 x 0.5 = 5
    assert await hits_allowed(limiter, "k", 8) == 5

    clock.now = WINDOW_10 + WINDOW_SECONDS + 30  # same instant, a fresh identifier: all 10
    assert await hits_allowed(limiter, "fresh", 12) == 10


@pytest.mark.parametrize(
    ("elapsed", "allowed"),
    [(0.0, 0), (6.0, 1), (30.0, 5), (54.0, 9), (59.9, 9)],
)
async def test_the_estimate_slides_through_the_window(elapsed: float, allowed: int) -> None:
    """10 hits in the previous window; at ``elapsed`` seconds into the next, the previous
    window counts 10 x (1 - elapsed/60), so ``allowed`` more fit under a limit of 10."""
    clock = Clock(WINDOW_10)
    limiter = MemoryRateLimiter(limit=10, clock=clock)
    assert await hits_allowed(limiter, "k", 10) == 10
    clock.now = WINDOW_10 + WINDOW_SECONDS + elapsed
    assert await hits_allowed(limiter, "k", 12) == allowed


async def test_a_burst_at_the_window_edge_cannot_double_the_limit() -> None:
    clock = Clock(WINDOW_10 + WINDOW_SECONDS - 0.5)  # the last half second of window 10
    limiter = MemoryRateLimiter(limit=10, clock=clock)
    assert await hits_allowed(limiter, "k", 10) == 10
    clock.now = WINDOW_10 + WINDOW_SECONDS + 0.5  # one second later, in window 11
    assert await limiter.hit("k") is not None
    # Over the 60 seconds that follow the burst, at most ~one limit's worth passes.
    passed = 0
    for second in range(1, WINDOW_SECONDS):
        clock.now = WINDOW_10 + WINDOW_SECONDS + 0.5 + second
        passed += sum([await limiter.hit("k") is None for _ in range(3)])
    assert passed <= 10


async def test_refused_hits_still_count() -> None:
    """Hammering through a refusal does not earn a reset at the window's turn."""
    clock = Clock(WINDOW_10 + 59)
    limiter = MemoryRateLimiter(limit=5, clock=clock)
    assert await hits_allowed(limiter, "k", 50) == 5
    clock.now = WINDOW_10 + WINDOW_SECONDS + 30  # 50 x 0.5 = 25 > 5
    assert await limiter.hit("k") is not None


async def test_crowding_past_the_pruning_threshold_keeps_the_counts_that_matter() -> None:
    clock = Clock(WINDOW_10 + 30)
    limiter = MemoryRateLimiter(limit=3, clock=clock)
    assert await hits_allowed(limiter, "old", 3) == 3  # window 10
    clock.now = WINDOW_10 + WINDOW_SECONDS  # window 11, start
    assert await hits_allowed(limiter, "k", 3) == 3
    for number in range(100_001):  # enough identifiers to make the limiter prune
        await limiter.hit(f"crowd-{number}")
    # Window 10 (previous) and window 11 (current) survive the pruning.
    assert await limiter.hit("k") is not None
    assert await limiter.hit("old") is not None


async def test_close_forgets_the_counts() -> None:
    limiter = MemoryRateLimiter(limit=1, clock=Clock(WINDOW_10))
    assert await limiter.hit("k") is None
    assert await limiter.hit("k") is not None
    await limiter.close()
    assert await limiter.hit("k") is None


async def test_no_rate_limit_never_refuses() -> None:
    limiter = NoRateLimit()
    for _ in range(1000):
        assert await limiter.hit("k") is None
    await limiter.close()


async def test_the_factory_picks_the_limiter() -> None:
    assert isinstance(create_rate_limiter(0, None), NoRateLimit)
    assert isinstance(create_rate_limiter(0, "redis://127.0.0.1:1/0"), NoRateLimit)
    assert isinstance(create_rate_limiter(5, None), MemoryRateLimiter)
    shared = create_rate_limiter(5, "redis://127.0.0.1:1/0")  # no connection until first use
    assert isinstance(shared, RedisRateLimiter)
    await shared.close()
