"""The engine as deployed: real `embedded-ui serve` and `embedded-ui worker` processes, a real
Redis (SAQ) and a real database, a loopback receiver, and SIGKILL.

- SAQ: two API processes (no in-process worker) and two worker processes on one Redis queue
  (a queue name of its own per run) and one database, SQLite and PostgreSQL.
- The embedded default: one `embedded-ui serve` with its in-process worker, no Redis.

What they prove (docs/engine.md, "Reliability"): every event fired through either API process
is delivered by a worker process; a worker (or a whole service) killed in the middle of a
delivery loses nothing, and the repeat carries the same `webhook-id`; 500, a timeout, 429 with
Retry-After and 410 behave as documented across processes; 1,000 events make exactly 1,000
executions, each delivered at least once.

Every process runs in its own process group and is stopped (SIGTERM, then SIGKILL) by the
fixture that started it, whatever the test's outcome; every wait is bounded. The engine's
timings are shortened by settings: a 3 s lease, a 5 s delivery timeout, 0.3 s retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from conftest import REDIS_URL, SandboxProcess, _truncate_all, free_port
from embedded_ui.settings import Settings
from embedded_ui.store import Execution, create_engine, migrate
from embedded_ui.workspaces import WorkspaceService
from receiver import Answer, Received, Receiver

pytestmark = pytest.mark.slow

V = "/2024-03"
EVENT = "Order Shipped"
DEFINITION = """
integration: {key: engine-processes, app: sandbox, name: Engine processes}
events:
  - name: Order Shipped
    schema:
      type: object
      required: [orderId]
      properties:
        orderId: {type: string}
workflows:
  - key: ship-stream
    name: Stream shipped orders
    trigger: {type: custom_event, event: Order Shipped}
    blocks:
      - id: send
        type: stream_data
        name: Send to the ISV
        url:
          configurable: {label: Receiver, type: url, default: "http://127.0.0.1:9/unused"}
        data: {order: "{{ trigger.orderId }}"}
"""

LEASE_SECONDS = 3
DELIVERY_TIMEOUT = 5
READY_TIMEOUT = 60.0  # a process answering (2 shared cores: imports alone take seconds)
STOP_TIMEOUT = 20.0
SETTLE_TIMEOUT = 60.0
HELD = 60.0  # a held answer: longer than any test, cut short when the receiver stops


# --- processes ----------------------------------------------------------------------------


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


@dataclass(eq=False)
class Proc:
    """One `embedded-ui` command in its own process group (its pid is the group id)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    @property
    def pgid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return f"--- {self.name}\n{self.log.read_text(errors='replace')[-6000:]}"

    def kill(self) -> None:
        """SIGKILL the whole group: no handler, no grace, no flush."""
        _signal_group(self.pgid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT)
        self._wait_group_gone()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the group lingers; bounded throughout."""
        if self.process.poll() is None:
            _signal_group(self.pgid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(self.pgid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT)
        self._wait_group_gone()

    def _wait_group_gone(self) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT
        while _group_alive(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal_group(self.pgid, signal.SIGKILL)


class Processes:
    """Starts `embedded-ui` commands with one shared environment and stops all of them."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.database_url = env["EMBEDDED_UI_DATABASE_URL"]
        self.apis: list[Proc] = []
        self.workers: list[Proc] = []
        self._all: list[Proc] = []

    def _spawn(self, name: str, arguments: list[str], extra: dict[str, str]) -> Proc:
        log = self.workdir / f"{name}-{len(self._all)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "embedded_ui", *arguments],
                cwd=self.workdir,
                env={**self.env, **extra},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, process, log)
        self._all.append(proc)
        return proc

    async def start(self, apis: int = 0, workers: int = 0) -> None:
        """Start ``apis`` `serve` and ``workers`` `worker` processes; return once all are ready
        (a service answers /health; a worker logged "worker started"). Async, so that a test's
        receiver keeps answering meanwhile."""
        started = []
        for _ in range(apis):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proc = self._spawn(
                "serve",
                ["serve", "--port", str(port)],
                {"EMBEDDED_UI_PORT": str(port), "EMBEDDED_UI_PUBLIC_URL": url},
            )
            proc.url = url
            self.apis.append(proc)
            started.append(proc)
        for _ in range(workers):
            proc = self._spawn("worker", ["worker"], {"EMBEDDED_UI_LOG_LEVEL": "INFO"})
            self.workers.append(proc)
            started.append(proc)
        await asyncio.gather(*(_ready(proc) for proc in started))

    def kill(self, proc: Proc) -> None:
        proc.kill()
        self.forget(proc)

    def forget(self, proc: Proc) -> None:
        """``proc`` is no longer one of the running APIs or workers."""
        for group in (self.apis, self.workers):
            if proc in group:
                group.remove(proc)

    def stop_all(self) -> None:
        """Stop every process still running (SIGTERM first): each must exit 0, in time."""
        problems = []
        for proc in reversed(self._all):
            if proc.process.poll() is not None:
                continue  # killed or stopped by the test
            began = time.monotonic()
            try:
                proc.stop()
            except Exception as exc:  # keep stopping the others
                problems.append(f"{proc.name} {proc.pgid}: {exc!r}")
                continue
            took = time.monotonic() - began
            print(f"{proc.name} {proc.pgid} stopped in {took:.1f} s")  # pytest -s
            if proc.process.returncode != 0:
                problems.append(f"exit {proc.process.returncode} after SIGTERM:\n{proc.output()}")
        assert not problems, problems

    def outputs(self) -> str:
        return "\n".join(proc.output() for proc in self._all)


async def _ready(proc: Proc) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            if proc.process.poll() is not None:
                pytest.fail(f"{proc.name} exited with {proc.process.returncode}:\n{proc.output()}")
            if proc.url:
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{proc.url}/health")).status_code == 200:
                        return
            elif '"event": "worker started"' in proc.log.read_text(errors="replace"):
                return  # the worker logs JSON as EMBEDDED_UI_LOG_FORMAT says
            if time.monotonic() > deadline:
                pytest.fail(f"{proc.name} was not ready within {READY_TIMEOUT} s:\n{proc.output()}")
            await asyncio.sleep(0.1)


def base_env(
    workdir: Path, database_url: str, sandbox: SandboxProcess, **settings: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_UI_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env |= {
        "PYTHONPYCACHEPREFIX": str(workdir.parent / "pycache"),
        "PYTHONUNBUFFERED": "1",
        "EMBEDDED_UI_DATABASE_URL": database_url,
        "EMBEDDED_UI_MIGRATE_ON_START": "false",  # migrated once, before any process starts
        "EMBEDDED_UI_SANDBOX_PUBLIC_URL": sandbox.url,
        "EMBEDDED_UI_OUTBOUND_ALLOW": "127.0.0.0/8",
        "EMBEDDED_UI_RETRY_SCHEDULE": "0.3,0.3,0.3,0.3,0.3",
        "EMBEDDED_UI_EXECUTION_LEASE_SECONDS": str(LEASE_SECONDS),
        "EMBEDDED_UI_DELIVERY_TIMEOUT_SECONDS": str(DELIVERY_TIMEOUT),
        "EMBEDDED_UI_RATE_LIMIT_PER_MINUTE": "1000000",
        "EMBEDDED_UI_LOG_LEVEL": "WARNING",
        "EMBEDDED_UI_LOG_FORMAT": "json",
    }
    return env | {f"EMBEDDED_UI_{name.upper()}": value for name, value in settings.items()}


def process_groups() -> dict[int, set[int]]:
    """Every live process id by process group."""
    groups: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after it.
        groups.setdefault(int(stat.rsplit(")", 1)[1].split()[2]), set()).add(int(entry.name))
    return groups


def sender_of(request: Received, receiver: Receiver, processes: list[Proc]) -> Proc | None:
    """The process (of ``processes``: any process of its group, e.g. Granian's worker) whose
    socket sent ``request`` to ``receiver``, found in /proc by the connection's two ports (a
    client port alone is not unique: Linux reuses it towards other destinations, PostgreSQL
    say). The connection must still be open: call it before the request is answered, from a
    thread (it reads a few thousand lines)."""
    assert request.peer is not None
    client, server = f":{request.peer[1]:04X}", f":{receiver.port:04X}"
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1].endswith(client) and fields[2].endswith(server):
                    inodes.add(f"socket:[{fields[9]}]")
    groups = process_groups()
    for proc in processes:
        for pid in groups.get(proc.pgid, set()):
            with contextlib.suppress(OSError):
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd) in inodes:
                            return proc
    return None


async def senders_of(
    requests: list[Received], receiver: Receiver, processes: list[Proc]
) -> list[Proc | None]:
    return [await asyncio.to_thread(sender_of, r, receiver, processes) for r in requests]


# --- databases and Redis ------------------------------------------------------------------


async def _migrate(url: str) -> None:
    engine = create_engine(Settings(database_url=url))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


@contextlib.contextmanager
def private_database(backend: str, request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    """A migrated database no other test uses while this one runs, emptied afterwards."""
    if backend == "sqlite":
        path = workdir / "embedded-ui.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
        asyncio.run(_migrate(url))
        yield url
        return
    url = request.getfixturevalue("postgres_database")
    asyncio.run(_migrate(url))
    try:
        yield url
    finally:
        asyncio.run(_truncate_all(url))


@pytest.fixture(scope="module")
def redis_url() -> str:
    if REDIS_URL is None:
        pytest.skip("Redis variant off: set EMBEDDED_UI_TEST_REDIS_URL to run the SAQ tests")
    client = Redis.from_url(REDIS_URL, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        client.ping()
    except Exception as exc:
        pytest.fail(f"Redis variant is on but {REDIS_URL} is unreachable: {exc!r}")
    finally:
        client.close()
    return REDIS_URL


def _forget_queue(redis_url: str, queue: str) -> None:
    client = Redis.from_url(redis_url, socket_timeout=5.0)
    try:
        for pattern in (f"saq:{queue}:*", f"saq:job:{queue}:*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
    finally:
        client.close()


POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
BACKENDS = ["sqlite", POSTGRES]
only_postgres = pytest.mark.parametrize("saq", [POSTGRES], indirect=True)
"""For the tests that add nothing on SQLite but time: SAQ's production setup is PostgreSQL."""


@pytest.fixture(scope="module", params=BACKENDS)
def saq(
    request: pytest.FixtureRequest,
    redis_url: str,
    sandbox_process: SandboxProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Processes]:
    """Two API processes without an in-process worker and two `embedded-ui worker` processes,
    sharing one Redis queue (its own name) and one database."""
    workdir = tmp_path_factory.mktemp(f"saq-{request.param}")
    queue = f"eui-test-{os.getpid()}-{secrets.token_hex(4)}"
    with private_database(request.param, request, workdir) as database_url:
        processes = Processes(
            workdir,
            base_env(
                workdir,
                database_url,
                sandbox_process,
                redis_url=redis_url,
                queue_name=queue,
                inprocess_worker="false",
            ),
        )
        try:
            asyncio.run(processes.start(apis=2, workers=2))
            yield processes
        finally:
            processes.stop_all()
            _forget_queue(redis_url, queue)


@pytest.fixture(scope="module")
def embedded(
    sandbox_process: SandboxProcess,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Processes]:
    """The embedded default: no Redis, `embedded-ui serve` runs executions itself (SQLite).
    Started (and restarted) by the tests."""
    workdir = tmp_path_factory.mktemp("embedded")
    with private_database("sqlite", request, workdir) as database_url:
        processes = Processes(workdir, base_env(workdir, database_url, sandbox_process))
        try:
            yield processes
        finally:
            processes.stop_all()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


# --- a tenant with the workflow installed, through the API --------------------------------


@dataclass
class Shop:
    http: httpx.AsyncClient
    apis: list[str]
    headers: dict[str, str]
    sandbox: SandboxProcess
    database_url: str
    workflow_id: str = ""
    integration_id: str = ""
    users: dict[str, str] = field(default_factory=dict)
    """username → userId"""

    async def call(self, method: str, path: str, api: int = 0, **kwargs: Any) -> httpx.Response:
        return await self.http.request(
            method, f"{self.apis[api % len(self.apis)]}{V}{path}", headers=self.headers, **kwargs
        )

    async def add_user(self, username: str, receiver_url: str) -> str:
        """A user with the workflow installed, streaming to ``receiver_url``."""
        created = await self.call("POST", "/users", json={"username": username})
        assert created.status_code in (200, 201), created.text
        user_id: str = created.json()["userId"]
        credential = await self.call(
            "POST",
            f"/users/{user_id}/credentials",
            json={
                "app": "sandbox",
                "type": "api_key",
                "data": {"access_token": self.sandbox.new_key()},
            },
        )
        assert credential.status_code in (200, 201), credential.text
        if not self.workflow_id:
            listing = await self.call("GET", "/integrations", params={"userId": user_id})
            (integration,) = [i for i in listing.json()["data"] if i["app"] == "sandbox"]
            self.integration_id = integration["integrationId"]
            (workflow,) = integration["workflows"]
            self.workflow_id = workflow["workflowId"]
        started = await self.call(
            "POST",
            "/headless/startInstallation",
            json={
                "userId": user_id,
                "integrationId": self.integration_id,
                "credentialIds": [credential.json()["credentialId"]],
            },
        )
        assert started.status_code == 200, started.text
        done = await self.call(
            "POST",
            "/headless/completeInstallation",
            json={
                "installationId": started.json()["installationId"],
                "data": [
                    {
                        "workflowId": self.workflow_id,
                        "blockId": "send",
                        "fields": [{"name": "url", "value": receiver_url}],
                    }
                ],
            },
        )
        assert done.status_code == 200, done.text
        self.users[username] = user_id
        return user_id

    async def fire(self, order: str, user: str = "merchant", api: int = 0) -> str:
        """``POST /run/event`` through API process ``api``; the one execution's id."""
        response = await self.call(
            "POST",
            "/run/event",
            api,
            json={"event": EVENT, "userId": self.users[user], "data": {"orderId": order}},
        )
        assert response.status_code == 202, response.text
        (execution_id,) = response.json()["executionIds"]
        return str(execution_id)

    async def logs(self, **params: Any) -> dict[str, Any]:
        response = await self.call("GET", f"/workflows/{self.workflow_id}/logs", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def settled(
        self, ids: set[str], within: float = SETTLE_TIMEOUT, processes: Processes | None = None
    ) -> dict[str, dict[str, Any]]:
        """The executions ``ids`` once every one of them finished (succeeded or failed)."""
        deadline = time.monotonic() + within
        while True:
            runs = {r["executionId"]: r for r in (await self.logs(limit=100))["data"]}
            done = {i: runs[i] for i in ids if runs.get(i, {}).get("status") in FINISHED}
            if len(done) == len(ids):
                return done
            if time.monotonic() > deadline:
                detail = processes.outputs() if processes else ""
                pytest.fail(f"{len(done)} of {len(ids)} finished: {runs}\n{detail}")
            await asyncio.sleep(0.1)


FINISHED = ("succeeded", "failed")


@contextlib.asynccontextmanager
async def shop_on(processes: Processes, sandbox: SandboxProcess) -> AsyncIterator[Shop]:
    """A new workspace (its own API key) with the definition applied and released."""
    engine = create_engine(Settings(database_url=processes.database_url))
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            service = WorkspaceService(session, actor="test")
            workspace = await service.create(f"proc-{secrets.token_hex(4)}")
            issued = await service.create_key(workspace, "development")
            await session.commit()
    finally:
        await engine.dispose()
    limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
        shop = Shop(
            http,
            [proc.url for proc in processes.apis],
            {"Authorization": f"Bearer {issued.plaintext}"},
            sandbox,
            processes.database_url,
        )
        applied = await shop.call(
            "POST",
            "/manage/apply",
            json={"files": [{"name": "shop.yaml", "content": DEFINITION}], "release": True},
        )
        assert applied.status_code == 200, applied.text
        yield shop


def all_succeeded(runs: dict[str, dict[str, Any]]) -> None:
    failed = {i: (r["attempt"], r["error"]) for i, r in runs.items() if r["status"] != "succeeded"}
    assert not failed, f"not succeeded (attempt, error): {failed}"


def by_delivery_id(requests: list[Received]) -> dict[str, list[Received]]:
    grouped: dict[str, list[Received]] = {}
    for request in requests:
        grouped.setdefault(request.headers["webhook-id"], []).append(request)
    return grouped


def delivery_id(execution_id: str) -> str:
    return f"msg_{execution_id}_send"


def first_held(receiver: Receiver) -> Callable[[Received], Answer]:
    """Hold the first delivery of each webhook-id (no answer until the receiver stops);
    answer 200 at once to its repeats."""
    seen: set[str] = set()

    def answer(request: Received) -> Answer:
        webhook_id = request.headers["webhook-id"]
        if webhook_id in seen:
            return Answer(200)
        seen.add(webhook_id)
        return Answer(200, delay=HELD)

    return answer


async def wait_until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(0.02)


# --- SAQ: separate API and worker processes -----------------------------------------------


async def test_events_fired_at_either_api_process_are_delivered_by_the_workers(
    saq: Processes, sandbox_process: SandboxProcess, receiver: Receiver
) -> None:
    senders: list[Proc | None] = []

    async def answer(request: Received) -> Answer:
        # Looked up before answering, while the sender's connection is open.
        (sender,) = await senders_of([request], receiver, saq.apis + saq.workers)
        senders.append(sender)
        return Answer(200)

    receiver.answer = answer
    async with shop_on(saq, sandbox_process) as shop:
        await shop.add_user("merchant", receiver.url())
        ids = await asyncio.gather(*(shop.fire(f"o{n}", api=n) for n in range(40)))
        assert len(set(ids)) == 40
        runs = await shop.settled(set(ids), processes=saq)
    all_succeeded(runs)
    delivered = by_delivery_id(receiver.requests)
    assert set(delivered) == {delivery_id(i) for i in ids}
    # Only worker processes delivered: the API processes run no worker of their own.
    assert None not in senders
    assert {proc.name for proc in senders if proc} == {"worker"}
    print(  # which worker delivered how much (pytest -s)
        "deliveries per worker:", Counter(proc.pgid for proc in senders if proc)
    )


async def test_a_worker_killed_mid_delivery_loses_nothing_and_repeats_the_same_id(
    saq: Processes, sandbox_process: SandboxProcess, receiver: Receiver
) -> None:
    receiver.answer = first_held(receiver)
    async with shop_on(saq, sandbox_process) as shop:
        await shop.add_user("merchant", receiver.url())
        ids = await asyncio.gather(*(shop.fire(f"k{n}", api=n) for n in range(4)))
        # The first deliveries are held: wait for some, then for the rest (briefly: a held
        # delivery times out after DELIVERY_TIMEOUT, and it is to be killed before).
        await wait_until(lambda: len(receiver.requests) >= 1, 30, "a first delivery")
        with contextlib.suppress(AssertionError):
            await wait_until(lambda: len(receiver.requests) >= 4, 1.5, "four first deliveries")
        held = list(receiver.requests)
        # (A sender not found had already given up on its held delivery: timed out.)
        holders = {w for w in await senders_of(held, receiver, saq.workers) if w is not None}
        assert holders, "no worker was found holding a delivery"
        for worker in holders:
            await asyncio.to_thread(saq.kill, worker)  # SIGKILL, mid-delivery
        await saq.start(workers=len(holders))  # back to two workers

        runs = await shop.settled(set(ids), processes=saq)
        assert (await shop.logs())["meta"]["total"] == 4  # none lost, none made up
    all_succeeded(runs)
    delivered = by_delivery_id(receiver.requests)
    assert set(delivered) == {delivery_id(i) for i in ids}
    for execution_id in ids:
        requests = delivered[delivery_id(execution_id)]
        assert {r.headers["x-alloy-executionuuid"] for r in requests} == {execution_id}
        assert len({r.body for r in requests}) == 1  # the same payload each time
        if any(r.headers["webhook-id"] == delivery_id(execution_id) for r in held):
            # Never answered (its worker was killed): sent again, under the same id.
            assert len(requests) >= 2, "a killed attempt was not repeated"
            assert runs[execution_id]["attempt"] >= 2


@only_postgres
async def test_a_worker_stopped_with_sigterm_finishes_its_delivery_and_exits(
    saq: Processes, sandbox_process: SandboxProcess, receiver: Receiver
) -> None:
    receiver.answer = Answer(200, delay=2.0)
    async with shop_on(saq, sandbox_process) as shop:
        await shop.add_user("merchant", receiver.url())
        execution_id = await shop.fire("t1")
        await wait_until(lambda: len(receiver.requests) >= 1, 30, "the delivery")
        (worker,) = await senders_of(receiver.requests[:1], receiver, saq.workers)
        assert worker is not None
        saq.forget(worker)
        os.killpg(worker.pgid, signal.SIGTERM)
        code = await asyncio.to_thread(worker.process.wait, STOP_TIMEOUT)
        assert code == 0, worker.output()
        assert '"event": "worker stopping"' in worker.output()
        # The answer came during the grace period: recorded before the process exited.
        assert (await shop.logs())["data"][0]["status"] == "succeeded"
        await saq.start(workers=1)  # back to two workers
        (run,) = (await shop.settled({execution_id}, processes=saq)).values()
        assert run["attempt"] == 1
    assert len(receiver.requests) == 1


@only_postgres
async def test_500_timeout_429_and_410_across_worker_processes(
    saq: Processes, sandbox_process: SandboxProcess, receiver: Receiver
) -> None:
    moods = iter(
        [
            Answer(500),
            Answer(200, delay=DELIVERY_TIMEOUT + 2),  # no answer in time
            Answer(429, {"Retry-After": "2"}),
            Answer(200),
        ]
    )

    def answer(request: Received) -> Answer:
        return Answer(410) if request.path == "/gone" else next(moods)

    receiver.answer = answer
    async with shop_on(saq, sandbox_process) as shop:
        await shop.add_user("merchant", receiver.url())
        await shop.add_user("leaver", receiver.url("/gone"))

        moody = await shop.fire("m1")
        (run,) = (await shop.settled({moody}, processes=saq)).values()
        assert run["status"] == "succeeded" and run["attempt"] == 4
        attempts = [r for r in receiver.requests if r.path == "/hook"]
        assert len(attempts) == 4
        assert {r.headers["webhook-id"] for r in attempts} == {delivery_id(moody)}
        # Retry-After: 2 replaced the 0.3 s schedule; the retry came no sooner.
        assert attempts[3].at - attempts[2].at >= 2.0
        errors = await shop.call("GET", f"/workflows/{shop.workflow_id}/errors")
        messages = sorted(e["message"] for e in errors.json()["data"])
        assert len(messages) == 3, messages
        assert any("HTTP 500" in m for m in messages)
        assert any("HTTP 429" in m for m in messages)
        assert any(f"no answer within {DELIVERY_TIMEOUT} s" in m for m in messages)

        gone = await shop.fire("g1", user="leaver")
        (run,) = (await shop.settled({gone}, processes=saq)).values()
        assert run["status"] == "failed" and "410" in run["error"]
        # The next execution runs on either worker, which may not have seen the 410 itself:
        # it fails without sending anything.
        after = await shop.fire("g2", user="leaver", api=1)
        (run,) = (await shop.settled({after}, processes=saq)).values()
        assert run["status"] == "failed" and "disabled" in run["error"]
    assert len([r for r in receiver.requests if r.path == "/gone"]) == 1


@only_postgres
async def test_a_thousand_events_make_a_thousand_executions_all_delivered(
    saq: Processes, sandbox_process: SandboxProcess, receiver: Receiver
) -> None:
    await _thousand_events(saq, sandbox_process, receiver)


# --- the embedded default: the service runs executions itself ----------------------------


async def test_a_killed_service_loses_nothing_once_restarted(
    embedded: Processes, sandbox_process: SandboxProcess, receiver: Receiver
) -> None:
    receiver.answer = first_held(receiver)
    if not embedded.apis:
        await embedded.start(apis=1)
    async with shop_on(embedded, sandbox_process) as shop:
        await shop.add_user("merchant", receiver.url())
        ids = [await shop.fire(f"s{n}") for n in range(3)]
        await wait_until(lambda: len(receiver.requests) >= 3, 30, "three first deliveries")
        (service,) = embedded.apis
        senders = set(await senders_of(receiver.requests, receiver, [service]))
        assert senders - {None} == {service}  # (None: that one had timed out already)
        # SIGKILL the whole group: Granian's server and its worker process.
        await asyncio.to_thread(embedded.kill, service)

        await embedded.start(apis=1)
        shop.apis = [embedded.apis[0].url]
        runs = await shop.settled(set(ids), processes=embedded)
        assert (await shop.logs())["meta"]["total"] == 3
    all_succeeded(runs)
    delivered = by_delivery_id(receiver.requests)
    assert set(delivered) == {delivery_id(i) for i in ids}
    for execution_id in ids:
        requests = delivered[delivery_id(execution_id)]
        assert len(requests) >= 2 and runs[execution_id]["attempt"] >= 2
        assert {r.headers["x-alloy-executionuuid"] for r in requests} == {execution_id}


async def test_a_thousand_events_on_the_embedded_default(
    embedded: Processes, sandbox_process: SandboxProcess, receiver: Receiver
) -> None:
    if not embedded.apis:
        await embedded.start(apis=1)
    await _thousand_events(embedded, sandbox_process, receiver)


# --- load ---------------------------------------------------------------------------------

EVENTS = 1000
AT_ONCE = 20


async def _thousand_events(
    processes: Processes, sandbox: SandboxProcess, receiver: Receiver
) -> None:
    """1,000 `POST /run/event`, 20 at a time, spread over the API processes: exactly 1,000
    executions, every one delivered at least once; duplicates are reported (pytest -s)."""
    async with shop_on(processes, sandbox) as shop:
        await shop.add_user("merchant", receiver.url())
        slots = asyncio.Semaphore(AT_ONCE)

        async def one(n: int) -> str:
            async with slots:
                return await shop.fire(f"load-{n}", api=n)

        started = time.monotonic()
        ids = await asyncio.wait_for(
            asyncio.gather(*(one(n) for n in range(EVENTS))), SETTLE_TIMEOUT
        )
        fired = time.monotonic() - started
        assert len(set(ids)) == EVENTS
        wanted = {delivery_id(i) for i in ids}

        def all_delivered() -> bool:
            return wanted <= {r.headers["webhook-id"] for r in receiver.requests}

        await wait_until(all_delivered, SETTLE_TIMEOUT, f"{EVENTS} deliveries")
        delivered = time.monotonic() - started
        counts = await _statuses(shop.database_url, shop.workflow_id, SETTLE_TIMEOUT)
        assert counts == {"succeeded": EVENTS}, counts
        assert (await shop.logs(limit=1))["meta"]["total"] == EVENTS
        assert (await shop.logs(limit=1, error="true"))["meta"]["total"] == 0
    seen = Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert set(seen) == wanted  # nothing delivered that was not fired
    duplicates = {k: v for k, v in seen.items() if v > 1}
    print(  # the load report (pytest -s)
        f"{EVENTS} events accepted in {fired:.1f} s, all delivered after {delivered:.1f} s; "
        f"duplicates: {len(duplicates)} {duplicates}"
    )


async def _statuses(database_url: str, workflow_id: str, within: float) -> dict[str, int]:
    """Executions of the workflow per status, once none is queued or running (bounded)."""
    engine = create_engine(Settings(database_url=database_url))
    try:
        deadline = time.monotonic() + within
        while True:
            async with engine.connect() as connection:
                rows = await connection.execute(
                    select(Execution.status, func.count())
                    .where(Execution.workflow_id == workflow_id)
                    .group_by(Execution.status)
                )
                counts = {status: count for status, count in rows.all()}
            if not set(counts) - set(FINISHED) or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()
