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
from embedded_ui.settings import Settings
from embedded_ui.store.db import create_engine, migrate

log = structlog.get_logger(__name__)


async def run_worker(settings: Settings, poll_seconds: float = 2.0) -> None:
    """Run until SIGTERM or SIGINT; running executions get a grace period to finish."""
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
    if runtime.saq is not None:
        from saq import Worker as SaqWorker

        async def run_executions(_: Any, *, ids: list[str]) -> int:
            return await runtime.worker.run_ids(ids)

        run_executions.__qualname__ = SAQ_JOB
        saq_worker = SaqWorker(
            runtime.saq,
            functions=[(SAQ_JOB, run_executions)],
            concurrency=settings.worker_concurrency,
        )
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
        if saq_worker is not None:
            await saq_worker.stop()
        if saq_task is not None:
            saq_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await saq_task
        await runtime.stop()
        await http.aclose()
        await engine.dispose()
