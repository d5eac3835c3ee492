"""Benchmark the service against a bare Litestar baseline, in one run, on loopback only.

    uv run python bench/run.py                      # the default: ~1 minute
    uv run python bench/run.py --server both --workers 1,2   # the comparison matrix

For every server configuration (ASGI server x worker count) this starts two servers with the
same server and worker count: ``bench/baseline_app.py`` (one ``GET /hello``) and the service
(``embedded_ui.app:create_app``) on a fresh database. It creates a workspace and a development
API key with the CLI, seeds one user, then drives each route with wrk (a warm-up, then the
measured run) and prints requests/s, p50 and p99 with each route's ratio to the baseline.
Results also go to ``bench/results/latest.json``. Every process started here is stopped, by
process group, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
POST_SCRIPT = BENCH_DIR / "post_users.lua"
HOST = "127.0.0.1"
API = "/2024-03"
SERVICE_TARGET = "embedded_ui.app:create_app"
BASELINE_TARGET = "baseline_app:create_app"  # importable through PYTHONPATH=bench/

# The requirement: every route at least half the baseline's throughput, p99 at most 15 ms.
TARGET_RATIO = 0.5
TARGET_P99_MS = 15.0
# Server settings measured best on the 2-core reference machine (see docs/benchmarks.md).
DEFAULT_SERVER = "granian"
DEFAULT_WORKERS = "2"
# Above this share of the machine's CPU used by processes that are neither wrk nor the
# servers under test, a measurement is flagged as disturbed.
NOISY_OTHER_PERCENT = 10.0

# `nice -n N` in front of every server and wrk command, when --nice is given.
_PRIORITY_PREFIX: list[str] = []
_PRIORITY: list[int] = []

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1


class BenchError(RuntimeError):
    """The benchmark cannot run or produced no valid measurement; the message says why."""


# --------------------------------------------------------------------------- processes


@dataclass
class Server:
    """One server process group started by this script."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _server_command(server: str, target: str, port: int, workers: int) -> list[str]:
    if server == "granian":
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--factory",
            target,
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-ws",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    if server == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            target,
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    raise BenchError(f"unknown server {server!r}")


def _start_server(
    name: str, server: str, target: str, workers: int, env: dict[str, str], log_dir: Path
) -> Server:
    port = _free_port()
    log_path = log_dir / f"{name}-{server}-{workers}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*_PRIORITY_PREFIX, *_server_command(server, target, port, workers)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
    _apply_session_priority(process.pid)
    return Server(name, process, port, log_path)


def _stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop a process and every process in its group: SIGTERM, then SIGKILL after ``grace``."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    # Workers may outlive their parent for a moment; make sure nothing of the group is left.
    deadline = time.monotonic() + grace
    while _group_pids(process.pid) and time.monotonic() < deadline:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        time.sleep(0.2)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _read_stat(int(entry.name))
        if stat is not None and int(stat[4]) == pgid and stat[2] != "Z":
            pids.append(int(entry.name))
    return pids


def _read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from the state on (index 2 = state, 4 = pgrp, 13/14 = times)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, rest = raw.rpartition(")")
    return [head.split(" ", 1)[0], head, *rest.split()]


def _group_cpu_seconds(pgid: int) -> float:
    ticks = 0
    for pid in _group_pids(pgid):
        stat = _read_stat(pid)
        if stat is not None:
            ticks += int(stat[13]) + int(stat[14])
    return ticks / CLOCK_TICKS


def _machine_busy_seconds() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _wait_ready(server: Server, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(
                f"{server.name} server exited with {server.process.returncode}:\n"
                + server.log_tail()
            )
        try:
            with urllib.request.urlopen(server.url + path, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    break
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    else:
        raise BenchError(
            f"{server.name} server not ready after {timeout:.0f}s:\n{server.log_tail()}"
        )
    # With several workers the first answer can come before the others have imported the app;
    # wait until the whole group is idle so no worker is still starting during a measurement.
    deadline = time.monotonic() + timeout
    previous = _group_cpu_seconds(server.process.pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        current = _group_cpu_seconds(server.process.pid)
        if current - previous < 0.05:
            return
        previous = current


def _wait_for_quiet(limit: float, pgids: Sequence[int]) -> float:
    """Wait (at most ``limit`` seconds) until other processes leave the machine nearly idle.

    Returns the share of the machine they used in the last one-second window, in percent.
    The servers under test are idle between measurements, so their CPU is not counted.
    """
    deadline = time.monotonic() + limit
    while True:
        busy_before = _machine_busy_seconds()
        ours_before = sum(_group_cpu_seconds(p) for p in pgids)
        time.sleep(1.0)
        ours = sum(_group_cpu_seconds(p) for p in pgids) - ours_before
        other = max(0.0, _machine_busy_seconds() - busy_before - ours) / CPUS * 100
        if other <= NOISY_OTHER_PERCENT or time.monotonic() >= deadline:
            return other
        print(f"   (waiting: other processes use {other:.0f}% of the machine)", flush=True)


def _run_cli(args: Sequence[str], env: dict[str, str]) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "embedded_ui", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"embedded-ui {' '.join(args)} failed:\n{result.stderr or result.stdout}")
    return json.loads(result.stdout)


def _http_json(
    url: str, method: str = "GET", body: dict[str, Any] | None = None, key: str = ""
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise BenchError(f"{method} {url} answered {exc.code}: {exc.read()[:300]!r}") from None


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    seconds: float
    server_cpu_ms_per_request: float
    other_cpu_percent: float
    """Share of the whole machine used meanwhile by processes other than wrk and the server."""


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _parse_wrk(output: str) -> tuple[int, float, float, float, int, int]:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    percentiles = {
        int(m.group(1)): float(m.group(2)) * _UNITS_MS[m.group(3)]
        for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    }
    if rps is None or total is None or 50 not in percentiles or 99 not in percentiles:
        raise BenchError(f"could not read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return (
        int(total.group(1)),
        float(rps.group(1)),
        percentiles[50],
        percentiles[99],
        int(non_2xx.group(1)) if non_2xx else 0,
        sum(int(v) for v in sockets.groups()) if sockets else 0,
    )


def _wrk(
    url: str,
    seconds: float,
    connections: int,
    threads: int,
    headers: Sequence[str],
    script_args: Sequence[str] | None,
    server: Server,
) -> WrkResult:
    command = [
        *_PRIORITY_PREFIX,
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
    ]
    for header in headers:
        command += ["-H", header]
    if script_args is not None:
        command += ["-s", str(POST_SCRIPT)]
    command.append(url)
    if script_args is not None:
        command += ["--", *script_args]

    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before = _machine_busy_seconds()
    server_before = _group_cpu_seconds(server.process.pid)
    started = time.monotonic()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    _apply_session_priority(process.pid)
    try:
        output, _ = process.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish in {seconds + 30:.0f}s") from None
    finally:
        if process.poll() is None:
            _stop(process, grace=2)
    elapsed = time.monotonic() - started
    server_cpu = _group_cpu_seconds(server.process.pid) - server_before
    busy = _machine_busy_seconds() - busy_before
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise BenchError(f"wrk exited with {process.returncode}:\n{text}")
    requests, rps, p50, p99, non_2xx, socket_errors = _parse_wrk(text)
    other = max(0.0, busy - server_cpu - wrk_cpu) / (elapsed * CPUS) * 100
    return WrkResult(
        requests=requests,
        rps=rps,
        p50_ms=p50,
        p99_ms=p99,
        non_2xx=non_2xx,
        socket_errors=socket_errors,
        seconds=elapsed,
        server_cpu_ms_per_request=server_cpu * 1000 / max(1, requests),
        other_cpu_percent=other,
    )


# --------------------------------------------------------------------------- databases


@dataclass
class Database:
    url: str
    cleanup_dir: Path | None = None
    postgres_admin: str | None = None
    postgres_name: str | None = None


def _require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise BenchError(f"only loopback databases are allowed, got host {host!r}")


def _asyncpg_dsn(url: str) -> str:
    scheme, _, rest = url.partition("://")
    if scheme not in ("postgres", "postgresql", "postgresql+asyncpg"):
        raise BenchError(f"expected a postgresql:// URL, got {url!r}")
    return f"postgresql://{rest}"


def _postgres_admin(dsn: str, statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on the admin database."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(
            "postgresql+asyncpg://" + dsn.partition("://")[2],
            isolation_level="AUTOCOMMIT",
            connect_args={"timeout": 10},
        )
        try:
            async with engine.connect() as connection:
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


@contextmanager
def _database(kind: str, postgres_admin_url: str) -> Iterator[Database]:
    if kind == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="eui-bench-"))
        try:
            yield Database(url=f"sqlite+aiosqlite:///{directory / 'bench.sqlite3'}")
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    _require_loopback(postgres_admin_url)
    admin = _asyncpg_dsn(postgres_admin_url)
    name = f"eui_bench_{secrets.token_hex(4)}"
    try:
        _postgres_admin(admin, f'CREATE DATABASE "{name}"')
    except Exception as exc:
        raise BenchError(
            f"cannot create a PostgreSQL database at {postgres_admin_url}: {exc}"
        ) from None
    parts = urlsplit(admin)
    url = f"postgresql+asyncpg://{parts.netloc}/{name}"
    try:
        yield Database(url=url, postgres_admin=admin, postgres_name=name)
    finally:
        try:
            _postgres_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as exc:
            print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)


# --------------------------------------------------------------------------- the run


@dataclass
class Row:
    route: str
    server: str
    workers: int
    rps: float
    p50_ms: float
    p99_ms: float
    ratio: float
    meets_target: bool | None
    requests: int
    non_2xx: int
    socket_errors: int
    server_cpu_ms_per_request: float
    other_cpu_percent: float
    notes: list[str] = field(default_factory=list)


def _service_env(database_url: str, extra: Sequence[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_UI_")}
    env.update(
        EMBEDDED_UI_DATABASE_URL=database_url,
        EMBEDDED_UI_RATE_LIMIT_PER_MINUTE="0",
        EMBEDDED_UI_LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join(p for p in (str(BENCH_DIR), env.get("PYTHONPATH", "")) if p),
    )
    for item in extra:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("EMBEDDED_UI_"):
            raise BenchError(f"--env expects EMBEDDED_UI_NAME=VALUE, got {item!r}")
        env[name] = value
    return env


def _measure_configuration(
    server_kind: str,
    workers: int,
    env: dict[str, str],
    key: str,
    options: argparse.Namespace,
    log_dir: Path,
) -> list[Row]:
    label = f"{server_kind} x{workers}"
    print(f"\n== {label}: starting the baseline and the service", flush=True)
    servers: list[Server] = []
    try:
        baseline = _start_server("baseline", server_kind, BASELINE_TARGET, workers, env, log_dir)
        servers.append(baseline)
        service = _start_server("service", server_kind, options.app, workers, env, log_dir)
        servers.append(service)
        _wait_ready(baseline, "/hello", options.startup_timeout)
        _wait_ready(service, "/health", options.startup_timeout)
        seeded = _http_json(
            f"{service.url}{API}/users",
            "POST",
            {"username": f"seed-{secrets.token_hex(4)}", "fullName": "Bench Seed"},
            key,
        )
        user_id = seeded["userId"]
        auth = [f"Authorization: Bearer {key}"]
        plan: list[tuple[str, Server, str, list[str], bool]] = [
            ("GET /hello (baseline)", baseline, "/hello", [], False),
            ("POST /users", service, f"{API}/users", auth, True),
            ("GET /users/{id}", service, f"{API}/users/{user_id}", auth, False),
            ("GET /users/{id}/token", service, f"{API}/users/{user_id}/token", auth, False),
        ]
        rows: list[Row] = []
        baseline_rps = 0.0
        for route, target, path, headers, is_post in plan:
            run_id = secrets.token_hex(3)
            if options.wait_quiet > 0:
                _wait_for_quiet(options.wait_quiet, [s.process.pid for s in servers])
            if options.warmup > 0:
                _wrk(
                    target.url + path,
                    options.warmup,
                    options.connections,
                    options.threads,
                    headers,
                    [f"w{run_id}"] if is_post else None,
                    target,
                )
            result = _wrk(
                target.url + path,
                options.duration,
                options.connections,
                options.threads,
                headers,
                [f"m{run_id}"] if is_post else None,
                target,
            )
            is_baseline = target is baseline
            if is_baseline:
                baseline_rps = result.rps
            ratio = result.rps / baseline_rps if baseline_rps else 0.0
            notes = []
            if result.non_2xx or result.socket_errors:
                notes.append(
                    f"{result.non_2xx} non-2xx responses, {result.socket_errors} socket errors"
                )
            if result.other_cpu_percent > NOISY_OTHER_PERCENT:
                notes.append(f"other processes used {result.other_cpu_percent:.0f}% of the machine")
            valid = not (result.non_2xx or result.socket_errors)
            meets = (
                None
                if is_baseline
                else valid and ratio >= TARGET_RATIO and result.p99_ms <= TARGET_P99_MS
            )
            row = Row(
                route=route,
                server=server_kind,
                workers=workers,
                rps=result.rps,
                p50_ms=result.p50_ms,
                p99_ms=result.p99_ms,
                ratio=ratio,
                meets_target=meets,
                requests=result.requests,
                non_2xx=result.non_2xx,
                socket_errors=result.socket_errors,
                server_cpu_ms_per_request=result.server_cpu_ms_per_request,
                other_cpu_percent=result.other_cpu_percent,
                notes=notes,
            )
            rows.append(row)
            print("   " + _format_row(row), flush=True)
        return rows
    except BenchError as exc:
        logs = "\n".join(f"--- {s.name} log:\n{s.log_tail()}" for s in servers)
        raise BenchError(f"{label}: {exc}\n{logs}") from None
    finally:
        for server in servers:
            _stop(server.process)


HEADER = (
    "| route | server | req/s | p50 ms | p99 ms | ratio to baseline | meets target? "
    "| server CPU ms/req | other load |"
)
RULE = "|---|---|--:|--:|--:|--:|---|--:|--:|"


def _format_row(row: Row) -> str:
    if row.meets_target is None:
        verdict = "(baseline)"
    elif row.meets_target:
        verdict = "yes"
    else:
        misses = []
        if row.ratio < TARGET_RATIO:
            misses.append(f"ratio < {TARGET_RATIO}")
        if row.p99_ms > TARGET_P99_MS:
            misses.append(f"p99 > {TARGET_P99_MS:g} ms")
        if row.non_2xx or row.socket_errors:
            misses.append("errors")
        verdict = "NO (" + ", ".join(misses) + ")"
    return (
        f"| {row.route} | {row.server} x{row.workers} | {row.rps:,.0f} | {row.p50_ms:.2f} "
        f"| {row.p99_ms:.2f} | {row.ratio:.2f}x | {verdict} | {row.server_cpu_ms_per_request:.2f} "
        f"| {row.other_cpu_percent:.0f}% |"
    )


def _versions() -> dict[str, str]:
    found = {}
    for name in ("litestar", "granian", "uvicorn", "uvloop", "sqlalchemy", "aiosqlite", "asyncpg"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    try:
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        found["wrk"] = (wrk.stdout or wrk.stderr).splitlines()[0].strip()
    except (OSError, IndexError):
        found["wrk"] = "unknown"
    return found


def _code_under_test(env: dict[str, str]) -> dict[str, str]:
    """Which embedded_ui the servers import (PYTHONPATH can point elsewhere) and the commit."""
    found = subprocess.run(
        [sys.executable, "-c", "import embedded_ui; print(embedded_ui.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "embedded_ui": found.stdout.strip() or found.stderr.strip()[-200:],
        "repo_head": head.stdout.strip() or "unknown",
        "repo_src_modified": "yes" if dirty.stdout.strip() else "no",
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def set_priority(nice: int) -> None:
    """Run servers and wrk at this nice value (negative: ahead of other processes; root only)."""
    _PRIORITY_PREFIX.clear()
    _PRIORITY.clear()
    if nice == 0:
        return
    if nice < 0 and os.geteuid() != 0:
        raise BenchError("a negative --nice needs root")
    _PRIORITY_PREFIX.extend(["nice", "-n", str(nice)])
    _PRIORITY.append(nice)


def _apply_session_priority(pid: int) -> None:
    """Give a new session's scheduler autogroup the --nice value too.

    With ``kernel.sched_autogroup_enabled`` every session (each server and wrk here is one)
    gets an equal share of the CPU whatever its processes' nice values, so a nice value only
    takes effect across sessions when it is set on the autogroup itself.
    """
    if not _PRIORITY:
        return
    with suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(_PRIORITY[0]))


def _parse_workers(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2, got {text!r}") from None
    if not values or any(v < 1 or v > 16 for v in values):
        raise argparse.ArgumentTypeError("worker counts must be from 1 to 16")
    return values


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure the service's routes against a bare Litestar baseline.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--server",
        choices=("granian", "uvicorn", "both"),
        default=DEFAULT_SERVER,
        help="ASGI server; 'both' measures granian and uvicorn in the same run.",
    )
    parser.add_argument(
        "--workers",
        type=_parse_workers,
        default=_parse_workers(DEFAULT_WORKERS),
        help="Worker processes, or a comma-separated list to compare (e.g. 1,2).",
    )
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="Admin connection used to create and drop a fresh database (loopback only).",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds measured per route.")
    parser.add_argument("--warmup", type=float, default=2.0, help="Warm-up seconds per route.")
    parser.add_argument("--connections", type=int, default=32, help="Concurrent connections.")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads.")
    parser.add_argument("--startup-timeout", type=float, default=90.0, help="Seconds per server.")
    parser.add_argument(
        "--app",
        default=SERVICE_TARGET,
        metavar="MODULE:FACTORY",
        help="The service's app factory; another one lets a candidate fix be measured.",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="Before each route, wait up to SECONDS for other processes to go (nearly) idle.",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="Nice value for the servers and wrk; e.g. -10 on a shared machine (needs root).",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="EMBEDDED_UI_NAME=VALUE",
        help="Extra service setting for experiments (repeatable).",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="Exit with status 3 when a route misses a target (for CI); default exits 0.",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR / "latest.json",
        help="Where to write the results as JSON.",
    )
    options = parser.parse_args(argv)
    if options.duration < 1 or options.warmup < 0:
        parser.error("--duration must be at least 1 and --warmup not negative")
    if options.connections < options.threads:
        parser.error("--connections must be at least --threads")
    return options


def run(options: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print(
            "bench: wrk is not installed. Install it with `apt-get install wrk` "
            "(Debian/Ubuntu; add sudo if not root) and run again.",
            file=sys.stderr,
        )
        return 2
    servers = ["granian", "uvicorn"] if options.server == "both" else [options.server]
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    print(
        f"bench: {', '.join(servers)} with workers {options.workers}, {options.database}, "
        f"{options.connections} connections, {options.warmup:g}s warm-up + "
        f"{options.duration:g}s per route (load average before: {load_before[0]:.2f})",
        flush=True,
    )
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="eui-bench-logs-") as logs,
        _database(options.database, options.postgres_url) as database,
    ):
        env = _service_env(database.url, options.env)
        code = _code_under_test(env)
        print(
            f"bench: code {code['embedded_ui']} (repo HEAD {code['repo_head']}, "
            f"src modified: {code['repo_src_modified']})",
            flush=True,
        )
        _run_cli(["workspace", "create", "bench", "--json"], env)
        key = _run_cli(
            ["keys", "create", "--workspace", "bench", "--environment", "development", "--json"],
            env,
        )["key"]
        for server_kind in servers:
            for workers in options.workers:
                rows += _measure_configuration(server_kind, workers, env, key, options, Path(logs))

    print(
        f"\nResults ({options.database}, {options.connections} connections, "
        f"{options.duration:g}s per route, {started:%Y-%m-%d %H:%M} UTC):\n"
    )
    print(HEADER)
    print(RULE)
    for row in rows:
        print(_format_row(row))
    notes = [f"{r.route} on {r.server} x{r.workers}: {n}" for r in rows for n in r.notes]
    for note in notes:
        print(f"note: {note}")

    service_rows = [r for r in rows if r.meets_target is not None]
    all_met = bool(service_rows) and all(r.meets_target for r in service_rows)
    print(
        f"\nTargets (>= {TARGET_RATIO}x baseline req/s and p99 <= {TARGET_P99_MS:g} ms "
        f"on every route): {'met' if all_met else 'NOT met'}"
    )
    report = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": _cpu_model(),
            "cpus": CPUS,
            "kernel": platform.release(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "code": code,
        "versions": _versions(),
        "options": {
            "server": options.server,
            "workers": options.workers,
            "database": options.database,
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "connections": options.connections,
            "threads": options.threads,
            "env": options.env,
            "app": options.app,
            "wait_quiet_s": options.wait_quiet,
            "nice": options.nice,
        },
        "targets": {"min_ratio": TARGET_RATIO, "max_p99_ms": TARGET_P99_MS, "met": all_met},
        "results": [asdict(r) for r in rows],
    }
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Wrote {options.output}")
    return 3 if options.check and not all_met else 0


def _terminate(signum: int, _: object) -> None:
    # Turn SIGTERM/SIGHUP into an exception so every ``finally`` runs and stops the servers.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        set_priority(options.nice)
        return run(options)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; every started process was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
