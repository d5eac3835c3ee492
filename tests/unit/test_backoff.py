from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from embedded_ui.engine.backoff import MAX_RETRY_AFTER, next_delay
from embedded_ui.settings import Settings

SCHEDULE = Settings().retry_schedule


def test_the_first_failure_waits_about_five_seconds():
    delay = next_delay(1, SCHEDULE, None, random.Random(1))
    assert delay is not None
    assert 4.0 <= delay <= 6.0


def test_each_attempt_uses_its_own_slot_of_the_schedule():
    rng = random.Random(7)
    for attempt, base in enumerate(SCHEDULE, start=1):
        delay = next_delay(attempt, SCHEDULE, None, rng)
        assert delay is not None
        assert base * 0.8 <= delay <= base * 1.2


def test_no_retry_once_the_schedule_is_used_up():
    assert next_delay(len(SCHEDULE) + 1, SCHEDULE, None, random.Random(1)) is None
    assert next_delay(len(SCHEDULE) + 1, SCHEDULE, 10.0, random.Random(1)) is None
    assert next_delay(1, (), None, random.Random(1)) is None


def test_attempts_are_counted_from_one():
    with pytest.raises(ValueError, match="start at 1"):
        next_delay(0, SCHEDULE, None, random.Random(1))


def test_a_longer_retry_after_wins_and_a_shorter_one_does_not():
    assert next_delay(1, SCHEDULE, 120.0, random.Random(1)) == 120.0
    delay = next_delay(2, SCHEDULE, 1.0, random.Random(1))
    assert delay is not None
    assert delay >= 240.0


def test_retry_after_is_capped_at_a_day_and_never_negative():
    assert next_delay(1, SCHEDULE, 10 * 86400.0, random.Random(1)) == MAX_RETRY_AFTER
    delay = next_delay(1, (5.0,), -100.0, random.Random(1))
    assert delay is not None
    assert delay >= 4.0


def test_jitter_spreads_delays():
    rng = random.Random(3)
    delays = {next_delay(3, SCHEDULE, None, rng) for _ in range(50)}
    assert len(delays) > 40


@given(
    attempt=st.integers(min_value=1, max_value=len(SCHEDULE)),
    retry_after=st.none() | st.floats(min_value=0, max_value=10 * 86400),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_is_within_jitter_or_the_retry_after(
    attempt: int, retry_after: float | None, seed: int
):
    delay = next_delay(attempt, SCHEDULE, retry_after, random.Random(seed))
    assert delay is not None
    base = SCHEDULE[attempt - 1]
    floor = (
        base * 0.8 if retry_after is None else max(base * 0.8, min(retry_after, MAX_RETRY_AFTER))
    )
    assert floor <= delay <= max(base * 1.2, min(retry_after or 0.0, MAX_RETRY_AFTER))
