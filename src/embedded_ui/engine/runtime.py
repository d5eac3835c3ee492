"""The engine inside one process: its tools, the queue, the runner, and what wakes workers.

`EngineRuntime.queued` is called by the API after the executions it stored are committed:
the in-process worker is notified at once; with Redis, a SAQ job carrying the ids wakes an
`embedded-ui worker` process. Outcomes go to the error URL (`alerts`) and, with SAQ, retries
are scheduled as SAQ jobs at their due time. The database stays the truth throughout: every
worker also polls it, so a lost wake-up delays an execution by one poll, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from embedded_ui.catalog import App
from embedded_ui.credentials.vault import Vault
from embedded_ui.engine.alerts import Alerts
from embedded_ui.engine.blocks import Destinations, Tools
from embedded_ui.engine.delivery import Deliverer
from embedded_ui.engine.destination_inserts import DestinationPool
from embedded_ui.engine.endpoints import Endpoints
from embedded_ui.engine.inbound import Inbound
from embedded_ui.engine.priority import ApiLoad, DeliveryBudget
from embedded_ui.engine.queue import ExecutionQueue, Finished
from embedded_ui.engine.retention import purge_loop
from embedded_ui.engine.runner import Runner
from embedded_ui.engine.ssrf import OutboundPolicy
from embedded_ui.engine.subscriptions import WebhookRegistrar
from embedded_ui.engine.worker import Worker
from embedded_ui.settings import Settings

log = structlog.get_logger(__name__)

LEASE_SECONDS = 30.0
SAQ_JOB = "run_executions"


class EngineRuntime:
    def __init__(
        self,
        *,
        settings: Settings,
        engine: AsyncEngine,
        vault: Vault,
        apps: Mapping[str, App],
        http: httpx.AsyncClient,
        service_values: dict[str, str],
        run_worker: bool,
        lease_seconds: float = LEASE_SECONDS,
        poll_seconds: float = 1.0,
    ) -> None:
        self.settings = settings
        self.deliverer = Deliverer(
            OutboundPolicy.from_settings(settings), timeout=settings.delivery_timeout_seconds
        )
        self.endpoints = Endpoints(engine, vault)
        self.destination_pool = DestinationPool()
        self.tools = Tools(
            engine=engine,
            settings=settings,
            vault=vault,
            apps=apps,
            http=http,
            deliverer=self.deliverer,
            endpoints=self.endpoints,
            destinations=Destinations(engine, vault, settings),
            destination_pool=self.destination_pool,
            service_values=service_values,
        )
        self.queue = ExecutionQueue(engine, lease_seconds)
        self.runner = Runner(self.tools)
        self.alerts = Alerts(engine, self.endpoints, self.deliverer)
        self.webhooks = WebhookRegistrar(
            engine=engine,
            settings=settings,
            vault=vault,
            apps=apps,
            http=http,
            service_values=service_values,
        )
        self.inbound = Inbound(engine, vault, apps)
        self.api_load = ApiLoad()
        """This process's API requests, which its in-process worker gives way to."""
        self.worker = Worker(
            self.queue,
            self.runner,
            settings.worker_concurrency,
            on_finished=self._after,
            poll_seconds=poll_seconds,
            budget=DeliveryBudget(self.api_load, settings.worker_busy_rate),
        )
        self._run_worker = run_worker
        self._saq: Any = None
        self._background: list[asyncio.Task[None]] = []

    @property
    def saq(self) -> Any:
        return self._saq

    async def start(self) -> None:
        if self.settings.redis_url:
            from saq import Queue

            self._saq = Queue.from_url(self.settings.redis_url, name=self.settings.queue_name)
            try:
                await self._saq.connect()
            except Exception:
                # Redis only wakes workers; the database is the queue. Start anyway: enqueues
                # are retried on each new execution, and workers poll the database meanwhile.
                log.warning("Redis is unreachable; workers will find executions by polling")
        if self._run_worker:
            self.worker.start()
            self._background.append(
                asyncio.create_task(purge_loop(self.tools.engine, self.settings))
            )

    async def stop(self, grace_seconds: float = 10.0) -> None:
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._run_worker:
            await self.worker.stop(grace_seconds)
        await self.alerts.drain()
        await self.deliverer.aclose()
        await self.destination_pool.aclose()
        if self._saq is not None:
            with contextlib.suppress(Exception):  # Redis may be gone: nothing to flush
                await self._saq.disconnect()

    async def queued(self, execution_ids: Sequence[str], at: float = 0) -> None:
        """New executions are stored (committed): wake whoever runs them."""
        if not execution_ids:
            return
        if self._run_worker:
            self.worker.notify()
        if self._saq is not None:
            try:
                await self._saq.enqueue(
                    SAQ_JOB,
                    ids=list(execution_ids),
                    key=f"{execution_ids[0]}:{math.ceil(at)}",
                    # SAQ schedules in whole seconds: round up, or the job wakes a worker
                    # before the retry is due and finds nothing to do.
                    scheduled=math.ceil(at),
                    timeout=0,
                    heartbeat=0,
                    retries=1,
                )
            except Exception:
                # Stored is what counts: the workers' polling finds them anyway.
                log.warning("could not wake the workers through Redis", exc_info=True)

    async def _after(self, finished: list[Finished]) -> None:
        self.alerts.send(finished)
        if self._saq is None:
            return
        for outcome in finished:
            if outcome.status == "queued" and outcome.retry_at is not None:
                await self.queued([outcome.claimed.id], at=outcome.retry_at.timestamp())
