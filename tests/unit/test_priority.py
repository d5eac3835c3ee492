"""The in-process worker gives way to a busy API, down to its guaranteed rate (priority.py)."""

from __future__ import annotations

import pytest

from embedded_ui.engine import priority
from embedded_ui.engine.priority import BURST_SECONDS, BUSY_HOLD_SECONDS, ApiLoad, DeliveryBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(priority.time, "monotonic", fake)
    return fake


def _requests(load: ApiLoad, count: int) -> None:
    for _ in range(count):
        load.started()


def test_requests_one_at_a_time_never_hold_deliveries_back(clock: Clock) -> None:
    load = ApiLoad()
    budget = DeliveryBudget(load, rate=100)
    for _ in range(1000):
        load.started()
        assert budget.allowance(32) == 32  # the worker is woken while the request is in flight
        budget.spend(1)
        load.finished()
        clock.now += 0.001
    _requests(load, 2)  # two at once is not a queue either
    assert budget.allowance(32) == 32


def test_a_busy_api_gets_priority_and_deliveries_keep_their_minimum_rate(clock: Clock) -> None:
    load = ApiLoad()
    budget = DeliveryBudget(load, rate=100)
    _requests(load, 3)  # queued up: busy
    assert load.busy_for(clock.now) == pytest.approx(BUSY_HOLD_SECONDS)
    started, claims = 0, 0
    for _ in range(1000):  # 10 seconds of a saturated API, the worker asking every 10 ms
        allowed = budget.allowance(32)
        budget.spend(allowed)
        started += allowed
        claims += allowed > 0
        load.finished()
        load.started()  # the next request, with two others still in flight
        clock.now += 0.01
    assert 990 <= started <= 1010  # 100 a second, not 0 and not 32 every time
    # In bursts of a quarter of a second's worth (25): few write transactions, not one a token.
    assert BURST_SECONDS == 0.25
    assert 38 <= claims <= 41
    assert budget.busy()
    while (allowed := budget.allowance(32)) == 0:
        assert 0 < budget.wait() <= BURST_SECONDS
        clock.now += budget.wait()
    assert allowed == 25
    budget.spend(allowed)
    assert budget.allowance(32) == 0
    assert budget.allowance(3) == 0  # a burst's worth, or what the free slots take
    clock.now += 0.03
    assert budget.allowance(3) == 3


def test_the_worker_catches_up_as_soon_as_the_api_is_quiet(clock: Clock) -> None:
    load = ApiLoad()
    budget = DeliveryBudget(load, rate=100)
    _requests(load, 5)
    budget.spend(budget.allowance(32))
    assert budget.allowance(32) == 0
    for _ in range(5):
        load.finished()
    assert budget.wait() == pytest.approx(BUSY_HOLD_SECONDS)
    clock.now += BUSY_HOLD_SECONDS
    assert budget.allowance(32) == 32


def test_rate_zero_switches_the_priority_off(clock: Clock) -> None:
    load = ApiLoad()
    budget = DeliveryBudget(load, rate=0)
    _requests(load, 50)
    assert budget.allowance(32) == 32
