"""Where a request's time goes: sample the service's worker with py-spy while wrk drives a route.

    uv run --with py-spy python bench/profile_routes.py       # all three routes, ~1 minute
    uv run --with py-spy python bench/profile_routes.py --route token --duration 15

Starts the service alone (one worker, so one process to sample) on a fresh SQLite or
PostgreSQL database, seeds a key and a user like ``bench/run.py``, and for each route records
py-spy samples of the threads holding the GIL (``--gil``: Python CPU time, not idle waits)
while wrk keeps 32 connections busy. It prints, per route, the worker's CPU per request,
the share of samples by package (leaf frame) and the heaviest frames (inclusive), and keeps
the raw stacks under ``bench/results/profile-<route>.txt`` for a flame graph.
Numbers under py-spy are slowed by the sampling itself; use ``bench/run.py`` for throughput.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from run import (
    API,
    RESULTS_DIR,
    SERVICE_TARGET,
    BenchError,
    Server,
    _database,
    _group_pids,
    _http_json,
    _read_stat,
    _run_cli,
    _service_env,
    _start_server,
    _stop,
    _wait_ready,
    _wrk,
    set_priority,
)

ROUTES = ("post", "get", "token")
# Leaf frames are attributed to the first package whose path fragment they contain.
PACKAGES = (
    ("embedded_ui", "embedded_ui/"),
    ("sqlalchemy", "sqlalchemy/"),
    ("advanced_alchemy", "advanced_alchemy/"),
    ("aiosqlite", "aiosqlite/"),
    ("asyncpg", "asyncpg/"),
    ("litestar", "litestar/"),
    ("msgspec", "msgspec/"),
    ("jwt/cryptography", "jwt/"),
    ("structlog/logging", "structlog/"),
    ("structlog/logging", "logging/"),
    ("granian", "granian/"),
    ("uvicorn", "uvicorn/"),
    ("asyncio", "asyncio/"),
    ("sqlite3", "sqlite3/"),
    ("greenlet", "greenlet"),
    ("threading/queue", "threading.py"),
    ("threading/queue", "queue.py"),
)


def _package(frame: str) -> str:
    for name, fragment in PACKAGES:
        if fragment in frame:
            return name
    return "other (native, stdlib)"


# A sample belongs to the first of these found walking from the leaf frame to the root.
# SQLAlchemy runs each ORM call in a greenlet whose frames do not chain to the caller's, so
# those samples are labelled by the Session method the greenlet runs.
PHASES = (
    ("authenticate_key", "auth: API-key lookup (authenticate_key)"),
    ("UserService.exists", "auth: user-token user lookup"),
    ("UserService.get", "handler: user lookup (UserService.get)"),
    ("UserService.create", "handler: user insert (UserService.create)"),
    ("UserTokens.issue", "handler: token signing (UserTokens.issue)"),
    ("_connection_worker_thread", "aiosqlite worker thread (sqlite3 calls, queue)"),
    ("autocommit_handler_maker", "before_send: commit + close (advanced_alchemy)"),
    ("Session.commit", "greenlet: Session.commit"),
    ("Session.close", "greenlet: Session.close (connection reset, pool return)"),
    ("Session.flush", "greenlet: Session.flush"),
    # Today's code calls Session.scalar only in UserService.get/exists and Session.execute
    # only in authenticate_key on these routes; the labels say so, check them when that changes.
    ("Session.scalar", "greenlet: Session.scalar (ORM query; here the user lookup)"),
    ("Session.execute", "greenlet: Session.execute (ORM query; here the API-key lookup)"),
    ("AuthMiddleware.handle", "auth middleware, other"),
    ("litestar/", "Litestar: routing, DI, validation, serialization, hooks"),
    ("granian/", "ASGI server"),
    ("uvicorn/", "ASGI server"),
    ("asyncio/", "event loop"),
    ("uvloop", "event loop"),
)


def _phase(frames: list[str]) -> str:
    for frame in reversed(frames):
        for marker, label in PHASES:
            if marker in frame:
                return label
    return "other"


def _strip_line(frame: str) -> str:
    """``f (file.py:123)`` -> ``f (file.py)``, so a function's lines count as one frame."""
    head, sep, tail = frame.rpartition(":")
    return head + ")" if sep and tail.rstrip(")").isdigit() else frame


def summarise(raw: Path, top: int) -> str:
    """Text summary of py-spy's raw (collapsed) output: by phase, package, heaviest frames."""
    by_phase: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_strip_line(frame) for frame in stack.split(";")]
        total += count
        by_phase[_phase(frames)] += count
        by_package[_package(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return "no samples (is the worker busy? is py-spy allowed to attach?)"
    lines = [f"{total} samples with the GIL held", "", "by phase:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_phase.most_common()]
    lines += ["", "self time by package (leaf frame):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_package.most_common()]
    lines += ["", f"heaviest frames, inclusive (top {top}):"]
    # Frames that merely start the worker or the loop contain everything; skip those.
    skipped = (
        "_bootstrap",
        "Thread.run",
        "<module>",
        "run_forever",
        "_run_once",
        "Handle._run",
        "runpy",
        "click/",
        "multiprocessing/",
        "granian/cli.py",
        "granian/server/",
    )
    shown = 0
    for frame, n in inclusive.most_common():
        if any(s in frame for s in skipped):
            continue
        lines.append(f"  {100 * n / total:5.1f}%  {frame}")
        shown += 1
        if shown >= top:
            break
    return "\n".join(lines)


def _busiest_worker(server: Server) -> int:
    """The process of the group that used the most CPU: the worker serving the requests."""

    def cpu(pid: int) -> int:
        stat = _read_stat(pid)
        return int(stat[13]) + int(stat[14]) if stat else -1

    pids = _group_pids(server.process.pid)
    if not pids:
        raise BenchError("the service has no processes left")
    return max(pids, key=cpu)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--route", choices=(*ROUTES, "all"), default="all")
    parser.add_argument("--server", choices=("granian", "uvicorn"), default="granian")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds sampled per route.")
    parser.add_argument("--rate", type=int, default=250, help="Samples per second.")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--top", type=int, default=40, help="Frames listed per route.")
    parser.add_argument("--env", action="append", default=[], metavar="EMBEDDED_UI_NAME=VALUE")
    parser.add_argument("--nice", type=int, default=0, help="As bench/run.py --nice.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse_args(argv)
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        print(
            "profile: py-spy is missing; run `uv run --with py-spy python bench/profile_routes.py`",
            file=sys.stderr,
        )
        return 2
    if shutil.which("wrk") is None:
        print("profile: wrk is missing; install it with `apt-get install wrk`", file=sys.stderr)
        return 2
    routes = ROUTES if options.route == "all" else (options.route,)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    try:
        set_priority(options.nice)
        with (
            tempfile.TemporaryDirectory(prefix="eui-profile-") as logs,
            _database(options.database, options.postgres_url) as database,
        ):
            env = _service_env(database.url, options.env)
            _run_cli(["workspace", "create", "bench", "--json"], env)
            key = _run_cli(["keys", "create", "-w", "bench", "-e", "development", "--json"], env)[
                "key"
            ]
            service = _start_server("service", options.server, SERVICE_TARGET, 1, env, Path(logs))
            try:
                _wait_ready(service, "/health", 90)
                user_id = _http_json(
                    f"{service.url}{API}/users", "POST", {"username": "profile-seed"}, key
                )["userId"]
                paths = {
                    "post": f"{API}/users",
                    "get": f"{API}/users/{user_id}",
                    "token": f"{API}/users/{user_id}/token",
                }
                auth = [f"Authorization: Bearer {key}"]
                for route in routes:
                    _profile_route(route, paths[route], service, auth, py_spy, options)
            finally:
                _stop(service.process)
    except BenchError as exc:
        print(f"profile: {exc}", file=sys.stderr)
        return 1
    return 0


def _profile_route(
    route: str,
    path: str,
    service: Server,
    auth: list[str],
    py_spy: str,
    options: argparse.Namespace,
) -> None:
    is_post = route == "post"
    url = service.url + path
    _wrk(
        url,
        2,
        options.connections,
        2,
        auth,
        [f"pw{secrets.token_hex(3)}"] if is_post else None,
        service,
    )
    worker = _busiest_worker(service)
    raw = RESULTS_DIR / f"profile-{route}.txt"
    sampler = subprocess.Popen(
        [
            py_spy,
            "record",
            "--gil",
            "--nonblocking",  # do not pause the worker for each sample
            "--pid",
            str(worker),
            "--rate",
            str(options.rate),
            "--duration",
            str(round(options.duration)),
            "--format",
            "raw",
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        time.sleep(0.5)  # let py-spy attach before the load starts
        load = _wrk(
            url,
            options.duration,
            options.connections,
            2,
            auth,
            [f"pm{secrets.token_hex(3)}"] if is_post else None,
            service,
        )
        _, errors = sampler.communicate(timeout=options.duration + 30)
    finally:
        if sampler.poll() is None:
            _stop(sampler, grace=5)
    print(f"\n=== {route}: {path}")
    print(
        f"under sampling: {load.rps:,.0f} req/s, p50 {load.p50_ms:.1f} ms, "
        f"p99 {load.p99_ms:.1f} ms, worker CPU {load.server_cpu_ms_per_request:.2f} ms/request"
    )
    if sampler.returncode != 0 or not raw.exists():
        print(f"py-spy failed ({sampler.returncode}): {errors.decode(errors='replace')[-500:]}")
        return
    print(summarise(raw, options.top))
    print(f"raw stacks: {raw}")


if __name__ == "__main__":
    sys.exit(main())
