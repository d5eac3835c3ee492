"""Issue 6's engine benchmark: real processes on loopback, every number against a baseline
measured in the same run.

    uv run python bench/engine.py            # both setups, ~3 minutes
    uv run python bench/engine.py --quick    # shorter, ~1.5 minutes
    uv run python bench/engine.py --help

Setups (``--setups``):

- ``sqlite``: the embedded default. ``embedded-ui serve`` (Granian, ``--workers`` processes,
  each with its in-process worker) on a fresh SQLite file.
- ``postgres``: a fresh PostgreSQL database (created and dropped here), Redis with a queue
  name of its own, ``embedded-ui serve`` without in-process workers and ``--worker-processes``
  ``embedded-ui worker`` processes.

Each setup installs one Stream Data workflow (custom event ``Bench Event``) for one user,
delivering to ``bench/engine_receiver.py`` (its own process), then measures:

1. ``latency``: events one at a time; from just before ``POST /run/event`` to the receiver's
   arrival time of that execution's ``webhook-id``. Baseline: a POST to the bare Litestar
   ``/echo`` followed by a raw POST to the receiver (the least an accepted event and a
   delivery can cost).
2. ``run-event``: ``POST /run/event`` with wrk (32 connections), each request storing one
   execution that the workers then deliver; baseline: ``POST /echo`` on a bare Litestar app
   under the same Granian worker count, same body. Also reported: the executions still
   undelivered when the load ends, and how long they then took to deliver.
3. ``sustained``: N executions inserted as queued rows in one transaction; deliveries/s at the
   receiver from the first to the last unique ``webhook-id``. Baseline: a raw httpx POST loop
   (its own process, same concurrency as one worker process) to the same receiver.

Every process started here is stopped (by process group) whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from run import (
    BASELINE_TARGET,
    BENCH_DIR,
    CPUS,
    HOST,
    REPO,
    RESULTS_DIR,
    BenchError,
    Server,
    _code_under_test,
    _database,
    _free_port,
    _group_cpu_seconds,
    _group_pids,
    _machine_busy_seconds,
    _parse_wrk,
    _run_cli,
    _service_env,
    _stop,
    _wait_ready,
)

API = "/2024-03"
EVENT = "Bench Event"
BLOCK = "send"
DEFINITION = f"""
integration: {{key: engine-bench, app: sandbox, name: Engine bench}}
events:
  - name: {EVENT}
    schema:
      type: object
      required: [orderId]
      properties:
        orderId: {{type: string}}
workflows:
  - key: bench-stream
    name: Stream bench orders
    trigger: {{type: custom_event, event: {EVENT}}}
    blocks:
      - id: {BLOCK}
        type: stream_data
        name: Send to the receiver
        url:
          configurable: {{label: Receiver, type: url, default: "http://127.0.0.1:9/unused"}}
        data: {{order: "{{{{ trigger.orderId }}}}", who: "{{{{ user.username }}}}"}}
"""
USERNAME = "bench-merchant"

TARGET_RUN_EVENT_RATIO = 0.5
TARGET_LATENCY_P50_MS = 25.0
TARGET_DELIVERIES_PER_S = 500.0
NOISY_OTHER_PERCENT = 10.0
ENGINE_PROCESSES = ("service", "worker-")
"""The processes whose CPU time counts as the engine's (not the receiver's, not the
database server's)."""


# --------------------------------------------------------------------------- processes


def _spawn(name: str, command: list[str], env: dict[str, str], log_dir: Path, port: int) -> Server:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
    return Server(name, process, port, log_path)


class Processes:
    """Everything started here, stopped in reverse order on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Server] = []

    def start(self, name: str, command: list[str], env: dict[str, str], port: int = 0) -> Server:
        server = _spawn(name, command, env, self.log_dir, port)
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        while self.started:
            _stop(self.started.pop().process)

    def cpu_seconds(self, only: Sequence[str] = ()) -> float:
        """CPU time of every process group started here (or of those whose name starts with
        one of ``only``)."""
        return sum(
            _group_cpu_seconds(s.process.pid)
            for s in self.started
            if not only or s.name.startswith(tuple(only))
        )

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} log:\n{s.log_tail()}" for s in self.started)

    def check_alive(self) -> None:
        for server in self.started:
            if server.process.poll() is not None:
                raise BenchError(
                    f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}"
                )


def _wait_port(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"{server.name} exited:\n{server.log_tail()}")
        with suppress(httpx.HTTPError):
            httpx.get(f"{server.url}/_stats", timeout=1)
            return
        time.sleep(0.1)
    raise BenchError(f"{server.name} not ready after {timeout:.0f}s:\n{server.log_tail()}")


def _wait_log(server: Server, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"{server.name} exited:\n{server.log_tail()}")
        with suppress(OSError):
            if text in server.log_path.read_text(errors="replace"):
                return
        time.sleep(0.2)
    raise BenchError(f"{server.name}: no {text!r} after {timeout:.0f}s:\n{server.log_tail()}")


class Load:
    """The share of the machine used by processes not started here, over a window."""

    def __init__(self, processes: Processes) -> None:
        self._processes = processes
        self._busy = _machine_busy_seconds()
        self._ours = processes.cpu_seconds() + _own_cpu()
        self._started = time.monotonic()

    def other_percent(self) -> float:
        elapsed = max(1e-6, time.monotonic() - self._started)
        busy = _machine_busy_seconds() - self._busy
        ours = self._processes.cpu_seconds() + _own_cpu() - self._ours
        return max(0.0, busy - ours) / (elapsed * CPUS) * 100


def _own_cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    measurement: str
    setup: str
    value: str
    baseline: str
    ratio: float
    target: str
    met: bool | None
    other_load: float
    numbers: dict[str, Any] = field(default_factory=dict)


HEADER = (
    "| measurement | setup | result | baseline (same run) | ratio | target | met? | other load |"
)
RULE = "|---|---|---|---|--:|---|---|--:|"


def _format(row: Row) -> str:
    met = "-" if row.met is None else ("yes" if row.met else "NO")
    return (
        f"| {row.measurement} | {row.setup} | {row.value} | {row.baseline} | {row.ratio:.2f}x "
        f"| {row.target} | {met} | {row.other_load:.0f}% |"
    )


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# --------------------------------------------------------------------------- the service


@dataclass
class Setup:
    name: str
    label: str
    env: dict[str, str]
    service: Server
    baseline: Server
    receiver: Server
    key: str
    user_id: str
    database_url: str
    worker_processes: int
    concurrency: int
    processes: Processes

    @property
    def hook_url(self) -> str:
        return f"{self.receiver.url}/hook"

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def _install(service_url: str, key: str, hook_url: str) -> str:
    """Apply and release the bench integration, create the user, install it; the user's id."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=service_url + API, headers=headers, timeout=30) as client:

        def call(method: str, path: str, **kwargs: Any) -> Any:
            response = client.request(method, path, **kwargs)
            if response.status_code >= 300:
                raise BenchError(f"{method} {path}: {response.status_code} {response.text[:300]}")
            return response.json()

        files = [{"name": "engine-bench.yaml", "content": DEFINITION}]
        call("POST", "/manage/apply", json={"files": files, "release": True})
        user_id = call("POST", "/users", json={"username": USERNAME})["userId"]
        listing = call("GET", "/integrations", params={"userId": user_id})["data"]
        (integration,) = [i for i in listing if i["app"] == "sandbox"]
        (workflow,) = integration["workflows"]
        started = call(
            "POST",
            "/headless/startInstallation",
            json={"userId": user_id, "integrationId": integration["integrationId"]},
        )
        call(
            "POST",
            "/headless/completeInstallation",
            json={
                "installationId": started["installationId"],
                "data": [
                    {
                        "workflowId": workflow["workflowId"],
                        "blockId": BLOCK,
                        "fields": [{"name": "url", "value": hook_url}],
                    }
                ],
            },
        )
        return str(user_id)


def _event_body(user_id: str, order: str = "o-1") -> dict[str, Any]:
    return {"event": EVENT, "userId": user_id, "data": {"orderId": order}}


@contextmanager
def _setup(name: str, options: argparse.Namespace, log_dir: Path) -> Iterator[Setup]:
    processes = Processes(log_dir)
    redis_queue = f"eui-bench-{secrets.token_hex(4)}"
    with _database(name, options.postgres_url) as database:
        try:
            env = _service_env(database.url, options.env)
            env["EMBEDDED_UI_OUTBOUND_ALLOW"] = "127.0.0.0/8"
            env["EMBEDDED_UI_WORKER_CONCURRENCY"] = str(options.concurrency)
            # At most 2x this many connections per process: 4 processes stay far below a
            # shared PostgreSQL server's max_connections (100 by default).
            env["EMBEDDED_UI_DATABASE_POOL_SIZE"] = str(options.pool_size)
            if name == "postgres":
                env["EMBEDDED_UI_REDIS_URL"] = options.redis_url
                env["EMBEDDED_UI_QUEUE_NAME"] = redis_queue
            _run_cli(["workspace", "create", "bench", "--json"], env)
            key = _run_cli(
                [
                    "keys",
                    "create",
                    "--workspace",
                    "bench",
                    "--environment",
                    "development",
                    "--json",
                ],
                env,
            )["key"]
            env["EMBEDDED_UI_MIGRATE_ON_START"] = "false"  # done by the CLI above

            receiver_port = _free_port()
            receiver = processes.start(
                "receiver",
                [
                    sys.executable,
                    str(BENCH_DIR / "engine_receiver.py"),
                    "--port",
                    str(receiver_port),
                ],
                env,
                receiver_port,
            )
            baseline_port = _free_port()
            baseline = processes.start(
                "baseline",
                [
                    sys.executable,
                    "-m",
                    "granian",
                    "--interface",
                    "asgi",
                    "--factory",
                    BASELINE_TARGET,
                    "--host",
                    HOST,
                    "--port",
                    str(baseline_port),
                    "--workers",
                    str(options.workers),
                    "--no-ws",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                env,
                baseline_port,
            )
            service_port = _free_port()
            service_env = {
                **env,
                "EMBEDDED_UI_PUBLIC_URL": f"http://{HOST}:{service_port}",
            }
            service = processes.start(
                "service",
                [
                    sys.executable,
                    "-m",
                    "embedded_ui",
                    "serve",
                    "--host",
                    HOST,
                    "--port",
                    str(service_port),
                    "--workers",
                    str(options.workers),
                ],
                service_env,
                service_port,
            )
            worker_processes = 0
            if name == "postgres":
                for number in range(options.worker_processes):
                    processes.start(
                        f"worker-{number + 1}",
                        [sys.executable, "-m", "embedded_ui", "worker"],
                        {**env, "EMBEDDED_UI_LOG_LEVEL": "INFO"},
                    )
                worker_processes = options.worker_processes
            _wait_port(receiver, 30)
            _wait_ready(baseline, "/hello", options.startup_timeout)
            _wait_ready(service, "/health", options.startup_timeout)
            for server in processes.started:
                if server.name.startswith("worker-"):
                    _wait_log(server, "worker started", options.startup_timeout)
            user_id = _install(service.url, key, f"{receiver.url}/hook")
            if name == "sqlite":
                label = f"SQLite, serve x{options.workers} (in-process workers)"
            else:
                label = f"PostgreSQL + Redis, serve x{options.workers}, {worker_processes} workers"
            yield Setup(
                name,
                label,
                env,
                service,
                baseline,
                receiver,
                key,
                user_id,
                database.url,
                worker_processes or options.workers,
                options.concurrency,
                processes,
            )
        except BenchError as exc:
            raise BenchError(f"{name}: {exc}\n{processes.logs()}") from None
        finally:  # the processes go before their database does
            processes.stop_all()
            if name == "postgres":
                _drop_redis_queue(options.redis_url, redis_queue)


def _drop_redis_queue(url: str, queue: str) -> None:
    """Remove the SAQ keys of this run's queue name (only those)."""

    async def drop() -> None:
        from redis.asyncio import Redis

        client = Redis.from_url(url)
        try:
            keys = [k async for k in client.scan_iter(match=f"saq:{queue}:*", count=1000)]
            keys += [k async for k in client.scan_iter(match=f"*{queue}*", count=1000)]
            if keys:
                await client.delete(*set(keys))
        finally:
            await client.aclose()

    with suppress(Exception):
        asyncio.run(drop())


# --------------------------------------------------------------------------- database


def _db(url: str, work: Any) -> Any:
    """Run ``work(connection)`` in one transaction on the benchmark's database."""
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                return await work(connection)
        finally:
            await engine.dispose()

    # A shared PostgreSQL server can be out of connections for a moment (other test suites):
    # try a few times before giving up.
    for attempt in range(10):
        try:
            return asyncio.run(run())
        except Exception as exc:
            if "too many clients" not in str(exc) or attempt == 9:
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def _pending(url: str) -> int:
    from sqlalchemy import func, select

    from embedded_ui.store import Execution

    async def work(connection: Any) -> int:
        return int(
            await connection.scalar(
                select(func.count())
                .select_from(Execution)
                .where(Execution.status.in_(("queued", "running")))
            )
        )

    return int(_db(url, work))


def _drain(setup: Setup, within: float) -> None:
    """Wait (bounded) until no execution is queued or running."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _pending(setup.database_url) == 0:
            return
        time.sleep(0.5)
    raise BenchError(f"executions still pending after {within:.0f}s")


def _insert_queued(url: str, count: int) -> None:
    """``count`` queued copies of an execution of the bench workflow, in one transaction."""
    from sqlalchemy import insert, select

    from embedded_ui.store import Execution, new_id, utcnow

    async def work(connection: Any) -> None:
        template = (
            await connection.execute(
                select(
                    Execution.workspace_id,
                    Execution.environment,
                    Execution.user_id,
                    Execution.workflow_id,
                    Execution.installation_id,
                    Execution.version_number,
                ).limit(1)
            )
        ).one()
        now = utcnow()
        base = dict(template._mapping)
        rows = [
            {
                **base,
                "id": new_id(),
                "trigger_type": "custom_event",
                "trigger": {"orderId": f"s-{n}"},
                "status": "queued",
                "attempt": 0,
                "available_at": now,
                "results": [],
                "created_at": now,
            }
            for n in range(count)
        ]
        for start in range(0, count, 1000):
            await connection.execute(insert(Execution), rows[start : start + 1000])

    _db(url, work)


def _counts(url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from embedded_ui.store import Execution

    async def work(connection: Any) -> dict[str, int]:
        rows = await connection.execute(
            select(Execution.status, func.count()).group_by(Execution.status)
        )
        return {status: int(n) for status, n in rows}

    result: dict[str, int] = _db(url, work)
    return result


# --------------------------------------------------------------------------- measurements


def measure_latency(setup: Setup, count: int, processes: Processes) -> Row:
    gap = 0.02
    events: list[float] = []
    floor: list[float] = []
    body = _event_body(setup.user_id)
    load = Load(processes)
    with httpx.Client(timeout=30) as client:
        httpx.get(f"{setup.receiver.url}/_reset")
        for _ in range(5):  # warm-up: connections, caches
            client.post(setup.service.url + API + "/run/event", json=body, headers=setup.auth())
            client.post(setup.baseline.url + "/echo", json=body)
        _drain(setup, 30)
        for _ in range(count):
            started = time.monotonic()
            response = client.post(
                setup.service.url + API + "/run/event", json=body, headers=setup.auth()
            )
            if response.status_code != 202:
                raise BenchError(f"POST /run/event: {response.status_code} {response.text[:200]}")
            (execution_id,) = response.json()["executionIds"]
            arrived = client.get(
                f"{setup.receiver.url}/_wait",
                params={"id": f"msg_{execution_id}_{BLOCK}", "timeout": 20},
            ).json()["at"]
            if arrived is None:
                raise BenchError(f"execution {execution_id} not delivered within 20 s")
            events.append((arrived - started) * 1000)
            time.sleep(gap)
        for n in range(count):
            started = time.monotonic()
            client.post(setup.baseline.url + "/echo", json=body).raise_for_status()
            client.post(
                setup.hook_url,
                json={"order": "o-1", "who": USERNAME},
                headers={"webhook-id": f"floor-{n}"},
            ).raise_for_status()
            floor.append((time.monotonic() - started) * 1000)
            time.sleep(gap)
    p50, p95, p99 = (_percentile(events, q) for q in (50, 95, 99))
    b50, b95, b99 = (_percentile(floor, q) for q in (50, 95, 99))
    return Row(
        "event → delivered latency",
        setup.label,
        f"p50 {p50:.1f} ms, p95 {p95:.1f}, p99 {p99:.1f} (n={count})",
        f"p50 {b50:.1f} ms, p95 {b95:.1f}, p99 {b99:.1f}",
        p50 / b50 if b50 else 0.0,
        f"p50 ≤ {TARGET_LATENCY_P50_MS:g} ms" if setup.name == "sqlite" else "(SQLite only)",
        p50 <= TARGET_LATENCY_P50_MS if setup.name == "sqlite" else None,
        load.other_percent(),
        {
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "baseline_p50_ms": b50,
            "baseline_p95_ms": b95,
            "baseline_p99_ms": b99,
            "mean_ms": statistics.fmean(events),
        },
    )


def _wrk(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    seconds: float,
    connections: int,
    threads: int,
) -> tuple[dict[str, Any], str]:
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = [[{json.dumps(body)}]]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    command = [
        "wrk",
        "--latency",
        "-c",
        str(connections),
        "-t",
        str(threads),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        handle.name,
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(url)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish in {seconds + 30:.0f}s") from None
    finally:
        if process.poll() is None:
            _stop(process, grace=2)
        os.unlink(handle.name)
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise BenchError(f"wrk exited with {process.returncode}:\n{text}")
    requests, rps, p50, p99, non_2xx, socket_errors = _parse_wrk(text)
    return {
        "requests": requests,
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "non_2xx": non_2xx,
        "socket_errors": socket_errors,
    }, text


def measure_run_event(setup: Setup, options: argparse.Namespace, processes: Processes) -> Row:
    body = _event_body(setup.user_id)
    load = Load(processes)
    runs: dict[str, dict[str, Any]] = {}
    for name, server, path, headers in (
        ("baseline", setup.baseline, "/echo", {}),
        ("service", setup.service, API + "/run/event", setup.auth()),
    ):
        if options.warmup > 0:
            _wrk(server.url + path, body, headers, options.warmup, options.connections, 2)
        cpu_before = _group_cpu_seconds(server.process.pid)
        profile = options.profile if name == "service" else None
        with _profiling(setup, profile, options.duration, "run-event"):
            result, _ = _wrk(
                server.url + path, body, headers, options.duration, options.connections, 2
            )
        cpu = _group_cpu_seconds(server.process.pid) - cpu_before
        result["server_cpu_ms_per_request"] = cpu * 1000 / max(1, result["requests"])
        runs[name] = result
        if name == "service":
            # Not part of the throughput: how many of the executions the load stored were
            # still waiting when it ended, and how long their delivery took after it.
            result["backlog_at_end"] = _pending(setup.database_url)
            drain_started = time.monotonic()
            _drain(setup, options.drain_timeout)  # its executions delivered before going on
            result["drain_seconds"] = time.monotonic() - drain_started
    other = load.other_percent()
    service, baseline = runs["service"], runs["baseline"]
    ratio = service["rps"] / baseline["rps"] if baseline["rps"] else 0.0
    errors = service["non_2xx"] + service["socket_errors"]
    note = f", {errors} errors" if errors else ""
    return Row(
        f"POST /run/event, {options.connections} connections",
        setup.label,
        f"{service['rps']:,.0f} req/s, p50 {service['p50_ms']:.1f} ms, "
        f"p99 {service['p99_ms']:.1f} ms{note}; backlog at the end "
        f"{service['backlog_at_end']:,}, delivered {service['drain_seconds']:.1f} s later",
        f"POST /echo {baseline['rps']:,.0f} req/s",
        ratio,
        f"≥ {TARGET_RUN_EVENT_RATIO}x",
        ratio >= TARGET_RUN_EVENT_RATIO and not errors,
        other,
        {"service": service, "baseline": baseline},
    )


def _wait_unique(setup: Setup, count: int, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        stats = httpx.get(
            f"{setup.receiver.url}/_wait_unique",
            params={"n": count, "timeout": min(10.0, max(0.1, deadline - time.monotonic()))},
            timeout=30,
        ).json()
        if stats["unique"] >= count:
            return stats
    raise BenchError(f"only {stats.get('unique')} of {count} deliveries within {within:.0f}s")


def _worker_pids(setup: Setup) -> list[int]:
    """The processes that run executions: `embedded-ui worker`s, else Granian's workers."""
    workers = [s.process.pid for s in setup.processes.started if s.name.startswith("worker-")]
    if workers:
        return workers
    main = setup.service.process.pid
    return [pid for pid in _group_pids(main) if pid != main]


@contextmanager
def _profiling(setup: Setup, directory: Path | None, seconds: float, label: str) -> Iterator[None]:
    """py-spy samples of every worker process while the block runs (``--profile DIR``), for
    at most ``seconds``; the files are named ``{setup}-{label}-{pid}.txt``. Only the thread
    holding the GIL is sampled (``--gil``): the Python CPU time, which is what a process of
    the service runs short of, not threads waiting in the server or the database."""
    if directory is None:
        yield
        return
    from shutil import which

    spy = which("py-spy")
    if spy is None:
        raise BenchError("--profile needs py-spy: uv run --with py-spy python bench/engine.py ...")
    directory.mkdir(parents=True, exist_ok=True)
    spies = []
    for pid in _worker_pids(setup):
        output = directory / f"{setup.name}-{label}-{pid}.txt"
        command = [spy, "record", "-p", str(pid), "-r", "200", "-f", "raw", "-o", str(output)]
        command += ["--gil", "--nonblocking", "-d", str(max(5, round(seconds)))]
        spies.append(
            (
                output,
                subprocess.Popen(
                    command,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                ),
            )
        )
    try:
        yield
    finally:
        for _, process in spies:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)  # py-spy writes what it has on SIGINT
        for _, process in spies:
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=15)
            _stop(process, grace=2)
    _print_profile([output for output, _ in spies if output.exists()])


def _print_profile(files: Sequence[Path], top: int = 20) -> None:
    """Where the sampled time went: by package (leaf frame) and the heaviest leaf frames."""
    by_frame: dict[str, int] = {}
    by_package: dict[str, int] = {}
    total = 0
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, number = line.rpartition(" ")
            if not stack or not number.isdigit():
                continue
            samples = int(number)
            total += samples
            leaf = stack.rsplit(";", 1)[-1]
            by_frame[leaf] = by_frame.get(leaf, 0) + samples
            package = _package_of(stack)
            by_package[package] = by_package.get(package, 0) + samples
    if not total:
        print("   profile: no samples")
        return
    print(f"   profile ({total} samples over {len(files)} worker process(es)), by package:")
    for name, samples in sorted(by_package.items(), key=lambda kv: -kv[1])[:12]:
        print(f"     {samples / total * 100:5.1f}%  {name}")
    print("   heaviest frames (self time):")
    for name, samples in sorted(by_frame.items(), key=lambda kv: -kv[1])[:top]:
        print(f"     {samples / total * 100:5.1f}%  {name}")


def _package_of(stack: str) -> str:
    """The innermost embedded_ui frame's module, or the leaf's package when none is there."""
    frames = stack.split(";")
    leaf = frames[-1]
    where = leaf.rpartition("(")[2]
    library = where.split("/", 1)[0].split(".py", 1)[0] if "/" in where else "(stdlib)"
    for frame in reversed(frames):
        if "embedded_ui/" in frame:
            module = frame.rpartition("embedded_ui/")[2].split(".py", 1)[0].replace("/", ".")
            return f"{library} under embedded_ui.{module}"
    return library


def _httpx_baseline(setup: Setup, count: int, clients: int, within: float) -> float:
    """Deliveries/s of the raw httpx loop (its own process) at the receiver."""
    httpx.get(f"{setup.receiver.url}/_reset")
    loop = subprocess.run(
        [
            sys.executable,
            str(Path(__file__)),
            "_httpx-loop",
            "--url",
            setup.hook_url,
            "--count",
            str(count),
            "--concurrency",
            str(setup.concurrency),
            "--clients",
            str(clients),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=within,
        check=False,
    )
    if loop.returncode != 0:
        raise BenchError(f"the httpx loop failed:\n{loop.stderr[-2000:]}")
    stats = _wait_unique(setup, count, 30)
    return (count - 1) / max(1e-6, stats["last"] - stats["first"])


def measure_sustained(setup: Setup, options: argparse.Namespace, processes: Processes) -> Row:
    count = options.executions
    within = options.drain_timeout + count / 50
    # One execution through the API first: the template of the inserted ones, and warm caches.
    httpx.post(
        setup.service.url + API + "/run/event",
        json=_event_body(setup.user_id),
        headers=setup.auth(),
        timeout=30,
    ).raise_for_status()
    _drain(setup, options.drain_timeout)
    load = Load(processes)
    cpu_before = processes.cpu_seconds(ENGINE_PROCESSES)
    httpx.get(f"{setup.receiver.url}/_reset")
    _insert_queued(setup.database_url, count)
    inserted = time.monotonic()
    with _profiling(setup, options.profile, count / 200, "sustained"):
        stats = _wait_unique(setup, count, within)
    engine_cpu = processes.cpu_seconds(ENGINE_PROCESSES) - cpu_before
    engine_rate = (count - 1) / max(1e-6, stats["last"] - stats["first"])
    from_insert = stats["last"] - inserted
    _drain(setup, options.drain_timeout)
    statuses = _counts(setup.database_url)
    engine_count = stats["count"]

    plain = _httpx_baseline(setup, count, 1, within)
    sharded = _httpx_baseline(setup, count, max(1, setup.concurrency // 8), within)
    base_rate = max(plain, sharded)
    other = load.other_percent()
    duplicates = engine_count - count
    return Row(
        f"sustained delivery, {count:,} executions",
        setup.label,
        f"{engine_rate:,.0f} deliveries/s, {engine_cpu * 1000 / count:.2f} ms CPU each "
        f"({duplicates} duplicates, "
        f"{statuses.get('failed', 0)} failed, "
        f"{from_insert:.1f} s from insert to last)",
        f"httpx x{setup.concurrency}: one client {plain:,.0f}/s, "
        f"{max(1, setup.concurrency // 8)} clients {sharded:,.0f}/s",
        engine_rate / base_rate if base_rate else 0.0,
        f"≥ {TARGET_DELIVERIES_PER_S:g}/s",
        engine_rate >= TARGET_DELIVERIES_PER_S and not statuses.get("failed"),
        other,
        {
            "deliveries_per_s": engine_rate,
            "baseline_per_s": base_rate,
            "statuses": statuses,
            "received": engine_count,
            "seconds_insert_to_last": from_insert,
            "engine_cpu_ms_per_delivery": engine_cpu * 1000 / count,
        },
    )


# --------------------------------------------------------------------------- the httpx loop


def httpx_loop(url: str, count: int, concurrency: int, clients: int) -> None:
    """The baseline: ``count`` POSTs of a similar body and headers, ``concurrency`` at once,
    spread over ``clients`` ``httpx.AsyncClient`` pools (1: the plain loop)."""
    body = json.dumps({"order": "o-1", "who": USERNAME}, separators=(",", ":")).encode()

    async def run() -> None:
        per_client = max(1, concurrency // clients)
        limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
        pools = [
            httpx.AsyncClient(limits=limits, timeout=15, trust_env=False) for _ in range(clients)
        ]
        todo = iter(range(count))

        async def one_lane(client: httpx.AsyncClient) -> None:
            for n in todo:
                response = await client.post(
                    url,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "webhook-id": f"msg_loop_{n}",
                        "webhook-timestamp": str(int(time.time())),
                        "webhook-signature": "v1," + "A" * 44,
                    },
                )
                response.raise_for_status()

        try:
            lanes = [one_lane(pools[lane % clients]) for lane in range(concurrency)]
            await asyncio.wait_for(asyncio.gather(*lanes), 600)
        finally:
            for pool in pools:
                await pool.aclose()

    asyncio.run(run())


# --------------------------------------------------------------------------- the run


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure the workflow engine (issue 6, item 7) against same-run baselines.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="Short run: 1,000 executions, 60 events, 5 s of wrk."
    )
    parser.add_argument(
        "--setups", default="sqlite,postgres", help="Comma-separated: sqlite, postgres."
    )
    parser.add_argument(
        "--measure",
        default="latency,run-event,sustained",
        help="Comma-separated: latency, run-event, sustained.",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="Granian workers of `embedded-ui serve` (and of the baseline).",
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=2,
        help="`embedded-ui worker` processes of the postgres setup.",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="EMBEDDED_UI_WORKER_CONCURRENCY, and the httpx loop's.",
    )
    parser.add_argument(
        "--executions",
        type=int,
        default=5000,
        help="Executions queued for the sustained measurement.",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=200,
        help="Events sent one at a time for the latency measurement.",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="wrk seconds measured.")
    parser.add_argument("--warmup", type=float, default=2.0, help="wrk warm-up seconds.")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections.")
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="Admin connection to create and drop a database (loopback).",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--pool-size",
        type=int,
        default=5,
        help="EMBEDDED_UI_DATABASE_POOL_SIZE of every service and worker process.",
    )
    parser.add_argument("--startup-timeout", type=float, default=90.0)
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=120.0,
        help="Longest wait for queued executions to be delivered.",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "engine-latest.json")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="Sample the processes that run executions with py-spy during the sustained "
        "measurement and the service's POST /run/event load, and print where their time "
        "goes (raw stacks in DIR); needs `uv run --with py-spy`.",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="EMBEDDED_UI_NAME=VALUE",
        help="Extra setting for every service and worker process, for experiments (repeatable).",
    )
    parser.add_argument(
        "--check", action="store_true", help="Exit with status 3 when a target is missed."
    )
    options = parser.parse_args(argv)
    if options.quick:
        options.executions = min(options.executions, 1000)
        options.events = min(options.events, 60)
        options.duration = min(options.duration, 5.0)
        options.warmup = min(options.warmup, 1.0)
    options.setups = [s for s in options.setups.split(",") if s]
    options.measure = [m for m in options.measure.split(",") if m]
    if set(options.setups) - {"sqlite", "postgres"}:
        parser.error("--setups: sqlite, postgres")
    if set(options.measure) - {"latency", "run-event", "sustained"}:
        parser.error("--measure: latency, run-event, sustained")
    if options.executions < 10 or options.events < 5:
        parser.error("--executions at least 10, --events at least 5")
    return options


def run(options: argparse.Namespace) -> int:
    from shutil import which

    if "run-event" in options.measure and which("wrk") is None:
        print("bench: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    print(
        f"bench/engine: setups {', '.join(options.setups)}; serve x{options.workers}, "
        f"concurrency {options.concurrency}, {options.executions:,} executions, "
        f"{options.events} events, wrk {options.duration:g}s "
        f"(load average before: {os.getloadavg()[0]:.2f})",
        flush=True,
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="eui-engine-bench-") as logs:
        for name in options.setups:
            print(f"\n== {name}: starting", flush=True)
            with _setup(name, options, Path(logs)) as setup:
                for step in options.measure:
                    if step == "latency":
                        row = measure_latency(setup, options.events, setup.processes)
                    elif step == "run-event":
                        row = measure_run_event(setup, options, setup.processes)
                    else:
                        row = measure_sustained(setup, options, setup.processes)
                    rows.append(row)
                    print("   " + _format(row), flush=True)

    print(f"\nResults ({started:%Y-%m-%d %H:%M} UTC, {CPUS} CPUs):\n")
    print(HEADER)
    print(RULE)
    for row in rows:
        print(_format(row))
    noisy = [r for r in rows if r.other_load > NOISY_OTHER_PERCENT]
    if noisy:
        print(
            f"note: {len(noisy)} row(s) measured while other processes used more than "
            f"{NOISY_OTHER_PERCENT:g}% of the machine"
        )
    missed = [r for r in rows if r.met is False]
    print(f"\nTargets: {'all met' if not missed else f'{len(missed)} NOT met'}")
    report = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": _code_under_test(_service_env("sqlite+aiosqlite://", [])),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(options).items()},
        "results": [asdict(r) for r in rows],
    }
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Wrote {options.output}")
    return 3 if options.check and missed else 0


def _terminate(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["_httpx-loop"]:
        loop = argparse.ArgumentParser()
        loop.add_argument("--url", required=True)
        loop.add_argument("--count", type=int, required=True)
        loop.add_argument("--concurrency", type=int, required=True)
        loop.add_argument("--clients", type=int, default=1)
        parsed = loop.parse_args(args[1:])
        httpx_loop(parsed.url, parsed.count, parsed.concurrency, parsed.clients)
        return 0
    options = _parse_args(args)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        return run(options)
    except BenchError as exc:
        print(f"bench/engine: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench/engine: interrupted; every started process was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
