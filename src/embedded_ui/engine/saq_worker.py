"""`embedded-ui worker`: a process that runs executions, woken by SAQ jobs on Redis.

Each SAQ job carries the ids of executions an API process stored; the job claims them (if
they are still due: another worker may have taken them), runs them, and records them before
it completes. The process also runs the polling loop of :class:`~embedded_ui.engine.worker.Worker`
as the safety net: executions whose job was lost, whose worker was killed (lease expired), or
whose retry is due are found in the database and run. Several worker processes and any number
of API processes can share one Redis and one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import httpx
import structlog

from embedded_ui.api.deps import service_values
from embedded_ui.catalog import load_catalog
from embedded_ui.credentials.vault import Vault
from embedded_ui.engine.runtime import SAQ_JOB, EngineRuntime
from embedded_ui.logs import configure_logging
from embedded_ui.settings import Settings
from embedded_ui.store.db import create_engine, migrate

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0
"""After SIGTERM, how long running executions may take to finish and be recorded; those still
running after it are run again once their lease is out."""


async def run_worker(settings: Settings, poll_seconds: float = 2.0) -> None:
    """Run until SIGTERM or SIGINT; running executions get a grace period to finish."""
    # As the service does (app.py): EMBEDDED_UI_LOG_LEVEL and _FORMAT apply here too.
    configure_logging(settings.log_level, settings.log_format)
    engine = create_engine(settings)
    if settings.migrate_on_start:
        await migrate(engine)
    http = httpx.AsyncClient(follow_redirects=False, trust_env=False)
    runtime = EngineRuntime(
        settings=settings,
        engine=engine,
        vault=Vault(settings.vault_keys),
        apps=load_catalog(),
        http=http,
        service_values=service_values(settings),
        lease_seconds=settings.execution_lease_seconds,
        run_worker=True,
        poll_seconds=poll_seconds,
    )
    await runtime.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    saq_worker: Any = None
    saq_task: asyncio.Task[None] | None = None
    running: set[asyncio.Task[int]] = set()
    if runtime.saq is not None:
        from saq import Worker as SaqWorker

        async def run_executions(_: Any, *, ids: list[str]) -> int:
            # SAQ cancels its job tasks the moment it stops (its grace period would keep every
            # stop waiting on its idle loops): the executions run in a task of their own,
            # which gets the grace period below.
            task = asyncio.create_task(runtime.worker.run_ids(ids))
            running.add(task)
            task.add_done_callback(running.discard)
            return await asyncio.shield(task)

        run_executions.__qualname__ = SAQ_JOB
        saq_worker = SaqWorker(
            runtime.saq,
            functions=[(SAQ_JOB, run_executions)],
            concurrency=settings.worker_concurrency,
        )
        # SAQ's start() would install its own SIGTERM/SIGINT handlers in place of ours: it
        # then stopped by itself while this function kept waiting for `stop`, so the process
        # never exited on SIGTERM (only SIGKILL ended it) and never recorded what it ran.
        saq_worker.SIGNALS = []
        saq_task = asyncio.create_task(saq_worker.start())
    log.info(
        "worker started",
        queue=settings.queue_name if runtime.saq is not None else "database polling only",
        concurrency=settings.worker_concurrency,
    )
    try:
        await stop.wait()
    finally:
        log.info("worker stopping")
        # One grace period for everything running, not one per kind: the SAQ jobs' executions
        # and then the polling loop's each waited up to 10 s, so a stop could take 20 s (a
        # test's SIGKILL after 20 s caught it).
        grace_ends = loop.time() + SHUTDOWN_GRACE_SECONDS
        if saq_worker is not None:
            await saq_worker.stop()
        if saq_task is not None:
            saq_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await saq_task
        if running:  # executions of SAQ jobs: finished and recorded, or run again after the lease
            await asyncio.wait(set(running), timeout=max(0.0, grace_ends - loop.time()))
        await runtime.stop(grace_seconds=max(0.0, grace_ends - loop.time()))
        await http.aclose()
        await engine.dispose()
