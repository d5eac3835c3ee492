"""How long a failed delivery waits before its next attempt (docs/engine.md, "Retries").

Attempt 1 is the first send. When attempt N fails, the next one waits ``schedule[N-1]``
seconds times a random factor from 0.8 to 1.2, so a receiver that went down does not get every
queued execution back in the same second. A ``Retry-After`` answer replaces that delay when it
is longer, capped at :data:`MAX_RETRY_AFTER`. When the schedule is used up there is no next
attempt.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

JITTER_LOW = 0.8
JITTER_HIGH = 1.2
MAX_RETRY_AFTER = 24 * 3600.0
"""A receiver may ask for a pause, but not park an execution for longer than a day."""


def next_delay(
    attempt: int, schedule: Sequence[float], retry_after: float | None, rng: random.Random
) -> float | None:
    """Seconds to wait after failed attempt ``attempt`` (1-based), or None when no retry is left.

    Args:
        attempt: the attempt that just failed; 1 is the first send.
        schedule: base delays in seconds, one per retry (``Settings.retry_schedule``).
        retry_after: the receiver's ``Retry-After`` in seconds, if it sent one.
        rng: the source of jitter; tests pass a seeded one.
    """
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    if attempt > len(schedule):
        return None
    delay = schedule[attempt - 1] * rng.uniform(JITTER_LOW, JITTER_HIGH)
    if retry_after is not None:
        delay = max(delay, min(max(retry_after, 0.0), MAX_RETRY_AFTER))
    return delay
