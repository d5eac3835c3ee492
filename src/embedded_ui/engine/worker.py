"""The worker loop: claims due executions in batches, runs them concurrently, and writes
their outcomes in batches (one transaction for many), so the queue's cost per execution stays
a fraction of a delivery's.

The same :class:`Worker` runs inside the service (the embedded default, woken at once by the
API through :meth:`Worker.notify`) and in `embedded-ui worker` processes (woken by SAQ jobs,
see :mod:`embedded_ui.engine.saq_queue`). Either way the database row is the truth: a wake-up
that is lost costs at most one poll interval, never an execution.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

import structlog

from embedded_ui.engine.priority import BURST_SECONDS, DeliveryBudget
from embedded_ui.engine.queue import Claimed, ExecutionQueue, Finished
from embedded_ui.engine.runner import Loaded, Runner

log = structlog.get_logger(__name__)

POLL_SECONDS = 1.0
FLUSH_SECONDS = 0.005
FLUSH_BATCH = 100
BUSY_FLUSH_SECONDS = BURST_SECONDS
"""While the API is busy (priority.py), outcomes are recorded as often as a burst of
deliveries starts instead: fewer write transactions for the API's inserts to wait behind."""

OnFinished = Callable[[list[Finished]], Awaitable[None]]


class Worker:
    def __init__(
        self,
        queue: ExecutionQueue,
        runner: Runner,
        concurrency: int,
        on_finished: OnFinished | None = None,
        poll_seconds: float = POLL_SECONDS,
        budget: DeliveryBudget | None = None,
    ) -> None:
        self._queue = queue
        self._budget = budget  # in the API's processes: what to claim while it is busy
        self._runner = runner
        self._concurrency = concurrency
        self._on_finished = on_finished
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._running: dict[str, Claimed] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._done: list[Finished] = []
        self._outcome = asyncio.Event()
        """Set when an outcome waits to be recorded: an idle worker's flush loop sleeps on it."""
        self._flushed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False

    def notify(self) -> None:
        """New executions were queued: claim them now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="engine-claim"),
            asyncio.create_task(self._flush_loop(), name="engine-flush"),
            asyncio.create_task(self._heartbeat_loop(), name="engine-heartbeat"),
        ]

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop claiming, let running executions finish (bounded), record their outcomes.
        Whatever is still running after the grace period is claimed again after its lease."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in [*self._tasks, *self._loops]:
            task.cancel()
        for task in [*self._tasks, *self._loops]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._flush()

    async def run_ids(self, ids: Sequence[str]) -> int:
        """Claim these executions if they are due, run them, and record them before returning
        (a SAQ job's work: the job ends only when its executions are stored)."""
        claimed = await self._queue.claim(len(ids), ids)
        if not claimed:
            return 0
        loaded = await self._runner.load(claimed)
        for execution in claimed:
            self._running[execution.id] = execution
        results = await asyncio.gather(
            *(self._runner.run(c, loaded.get(c.id)) for c in claimed), return_exceptions=True
        )
        finished = [r for r in results if isinstance(r, Finished)]
        try:
            await self._queue.finish(finished)
        finally:
            for execution in claimed:
                self._running.pop(execution.id, None)
        if self._on_finished is not None:
            await self._on_finished(finished)
        return len(claimed)

    async def _claim_loop(self) -> None:
        while not self._stopping:
            # Cleared before looking, so a wake-up (a notify, or a flush that freed slots)
            # that comes while we claim or wait is never lost.
            self._wake.clear()
            free = self._concurrency - len(self._running)
            if free <= 0:
                # Every slot is taken: the next flush frees some and wakes us. Asking the
                # database when the next row is due would say "now" and spin (two SELECTs a
                # millisecond while saturated).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
                continue
            if self._budget is not None:
                free = self._budget.allowance(free)
                if free <= 0:  # the API is busy and this second's deliveries have started
                    await asyncio.sleep(self._budget.wait())
                    continue
            try:
                claimed = await self._queue.claim(free)
            except Exception:
                log.exception("claiming executions failed; retrying")
                await asyncio.sleep(self._poll)
                continue
            if self._budget is not None:
                self._budget.spend(len(claimed))
            if claimed:
                await self._run_batch(claimed)
                continue  # there may be more: ask again (or wait for a slot) before sleeping
            try:
                wait = await self._queue.next_due_in(self._poll)
            except Exception:
                wait = self._poll
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.001))

    async def _run_batch(self, claimed: list[Claimed]) -> None:
        if not claimed:
            return
        try:
            loaded = await self._runner.load(claimed)
        except Exception:
            log.exception("loading executions failed; they run again after their lease")
            return
        for execution in claimed:
            self._running[execution.id] = execution
            task = asyncio.create_task(self._run_one(execution, loaded.get(execution.id)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_one(self, claimed: Claimed, loaded: Loaded | None) -> None:
        async with self._slots:
            try:
                finished = await self._runner.run(claimed, loaded)
            except Exception:
                log.exception("execution crashed; it runs again after its lease", id=claimed.id)
                self._running.pop(claimed.id, None)
                return
        self._done.append(finished)
        self._outcome.set()
        if len(self._done) >= FLUSH_BATCH:
            self._flushed.set()

    async def _flush_loop(self) -> None:
        while True:
            # Nothing to record: sleep until there is (an idle service woke here 200 times a
            # second per process, ~4% of the machine for nothing). Then gather a batch.
            self._outcome.clear()
            if not self._done:
                await self._outcome.wait()
            busy = self._budget is not None and self._budget.busy()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._flushed.wait(), timeout=BUSY_FLUSH_SECONDS if busy else FLUSH_SECONDS
                )
            self._flushed.clear()
            try:
                await self._flush()
            except Exception:
                log.exception("recording outcomes failed; retrying")
                await asyncio.sleep(self._poll)

    async def _flush(self) -> None:
        if not self._done:
            return
        batch, self._done = self._done, []
        try:
            await self._queue.finish(batch)
        except Exception:
            self._done[:0] = batch  # keep them for the next flush
            raise
        for finished in batch:
            self._running.pop(finished.claimed.id, None)
        self._wake.set()  # slots are free again
        if self._on_finished is not None:
            try:
                await self._on_finished(batch)
            except Exception:
                log.exception("after-finish hook failed")

    async def _heartbeat_loop(self) -> None:
        interval = max(self._queue.lease_seconds / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._queue.extend(list(self._running.values()))
            except Exception:
                log.exception("extending leases failed")
