"""What each step of a request costs, measured in-process, one request at a time.

    uv run python bench/phases.py                    # SQLite, ~20 seconds
    uv run python bench/phases.py --database postgres

No HTTP server and no concurrency: each step of the three benchmarked routes is run
``--iterations`` times in a loop on one event loop; its median wall time and its mean CPU time
(all threads of the process) are printed in microseconds, from whole requests called straight
through the ASGI app (the baseline app's ``/hello`` shows what bare Litestar costs) down to
single database round trips.
The database is a fresh temporary SQLite file, or a fresh PostgreSQL database that is dropped
afterwards. Use ``bench/run.py`` for throughput and latency under load; this script explains
where the per-request time of those numbers goes.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from itertools import count
from typing import Any

import uvloop
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from baseline_app import create_app as create_baseline
from embedded_ui.app import create_app
from embedded_ui.security import UserTokens, api_keys
from embedded_ui.settings import Settings
from embedded_ui.store import Scope, User, create_engine, migrate
from embedded_ui.users import NewUser, UserService
from embedded_ui.workspaces import WorkspaceService, authenticate_key
from run import API, BenchError, _database

Step = Callable[[], Awaitable[Any]]


def _quiet() -> None:
    """Litestar's default logging config sets the root logger to INFO when an app starts;
    keep the migration's chatter out of the output."""
    for name in ("alembic",):
        logging.getLogger(name).setLevel(logging.WARNING)


async def _call(
    app: Any,
    method: str,
    path: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    expect: int = 200,
) -> bytes:
    """One HTTP request straight through an ASGI app; fails unless the status is ``expect``."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    received = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            return {"type": "http.disconnect"}
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    if status != expect:
        raise BenchError(f"{method} {path} answered {status}: {b''.join(chunks)[:300]!r}")
    return b"".join(chunks)


async def _time(step: Step, iterations: int) -> tuple[float, float]:
    """Median wall microseconds per call, and CPU microseconds per call (all threads of this
    process, so aiosqlite's worker threads count too), after a short warm-up."""
    for _ in range(min(50, iterations)):
        await step()
    samples = []
    cpu_started = time.process_time_ns()
    for _ in range(iterations):
        started = time.perf_counter_ns()
        await step()
        samples.append((time.perf_counter_ns() - started) / 1000)
    cpu = (time.process_time_ns() - cpu_started) / 1000 / iterations
    return statistics.median(samples), cpu


async def measure(
    database_url: str, iterations: int, rounds: int
) -> list[tuple[str, float, float]]:
    settings = Settings.from_env(
        {
            "EMBEDDED_UI_DATABASE_URL": database_url,
            "EMBEDDED_UI_RATE_LIMIT_PER_MINUTE": "0",
            "EMBEDDED_UI_LOG_LEVEL": "WARNING",
        }
    )
    _quiet()
    engine = create_engine(settings)
    await migrate(engine)
    make_session = async_sessionmaker(engine, expire_on_commit=False)
    async with make_session() as session:
        service = WorkspaceService(session)
        workspace = await service.create("phases")
        issued = await service.create_key(workspace, "development")
        await session.commit()
    key = issued.plaintext
    environment, key_hash = api_keys.parse(key)
    scope = Scope(workspace.id, "development")
    async with make_session() as session:
        user = await UserService(session, scope, actor="bench").create(NewUser("phases-seed"))
        await session.commit()
    user_id = user.id
    tokens = UserTokens(settings.signing_keys, settings.public_url, settings.user_token_ttl)
    token, _ = tokens.issue(user_id=user_id, workspace_id=workspace.id, environment=environment)
    numbers = count()
    steps: list[tuple[str, Step]] = []

    def add(name: str, step: Step) -> None:
        steps.append((name, step))

    # Whole requests through the ASGI apps, called directly on this loop (no network, no
    # server, no client library): what the app itself costs per request.
    auth = [(b"authorization", f"Bearer {key}".encode())]
    baseline = create_baseline()
    app = create_app(settings)
    async with AsyncExitStack() as running:
        await running.enter_async_context(baseline.lifespan())
        await running.enter_async_context(app.lifespan())
        _quiet()

        async def hello() -> None:
            await _call(baseline, "GET", "/hello")

        async def get_user() -> None:
            await _call(app, "GET", f"{API}/users/{user_id}", auth)

        async def get_token() -> None:
            await _call(app, "GET", f"{API}/users/{user_id}/token", auth)

        async def post_user() -> None:
            body = json.dumps({"username": f"p-{next(numbers)}"}).encode()
            await _call(app, "POST", f"{API}/users", auth, body, expect=201)

        async def jwks() -> None:
            await _call(app, "GET", "/.well-known/jwks.json")

        async def health() -> None:
            await _call(app, "GET", "/health")

        add("request: baseline GET /hello (bare Litestar)", hello)
        add("request: GET /users/{id}", get_user)
        add("request: GET /users/{id}/token", get_token)
        add("request: POST /users", post_user)
        add("request: GET /.well-known/jwks.json (no database)", jwks)
        add("request: GET /health (one Core SELECT 1)", health)

        # The steps those requests are made of.
        async def parse_key() -> None:
            api_keys.parse(key)

        async def empty_session() -> None:
            async with make_session() as session:
                await session.commit()

        async def raw_round_trip() -> None:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        async def auth_query() -> None:
            async with make_session() as session:
                await authenticate_key(session, environment, key_hash)
                await session.commit()

        async def get_scoped() -> None:
            async with make_session() as session:
                await UserService(session, scope, actor="bench").get(user_id)
                await session.commit()

        async def get_unscoped() -> None:
            async with make_session() as session:
                await session.scalar(select(User).where(User.id == user_id))
                await session.commit()

        async def core_get() -> None:
            async with engine.connect() as connection:
                await connection.execute(
                    select(User.__table__).where(
                        User.id == user_id,
                        User.workspace_id == scope.workspace_id,
                        User.environment == scope.environment,
                    )
                )

        async def auth_and_get_one_session() -> None:
            async with make_session() as session:
                principal = await authenticate_key(session, environment, key_hash)
                await UserService(session, principal.scope, actor="bench").get(user_id)
                await session.commit()

        async def auth_and_get_no_commit() -> None:
            async with make_session() as session:
                principal = await authenticate_key(session, environment, key_hash)
                await UserService(session, principal.scope, actor="bench").get(user_id)

        async def create_user() -> None:
            async with make_session() as session:
                await UserService(session, scope, actor="bench").create(
                    NewUser(f"s-{next(numbers)}")
                )
                await session.commit()

        async def issue_token() -> None:
            tokens.issue(user_id=user_id, workspace_id=workspace.id, environment=environment)

        async def verify_token() -> None:
            tokens.verify(token)

        add("api_keys.parse (regex, CRC32, SHA-256)", parse_key)
        add("session open + commit + close, no query", empty_session)
        add("Core connection + SELECT 1", raw_round_trip)
        add("ORM session: authenticate_key + commit", auth_query)
        add("ORM session: UserService.get (tenant loader criteria) + commit", get_scoped)
        add("ORM session: select(User) by id, no loader criteria + commit", get_unscoped)
        add("Core: select user row by id and tenant, no ORM", core_get)
        add("ORM session: authenticate_key + UserService.get + commit", auth_and_get_one_session)
        add("ORM session: the same, closed without commit (rollback)", auth_and_get_no_commit)
        add("ORM session: UserService.create + commit (INSERT)", create_user)
        add("UserTokens.issue (Ed25519 JWT sign)", issue_token)
        add("UserTokens.verify", verify_token)

        # Several rounds, keeping each step's best: other processes on a shared machine only
        # ever make a step slower, so the minimum is the closest to its own cost.
        best: dict[str, tuple[float, float]] = {}
        for round_number in range(rounds):
            print(f"  round {round_number + 1}/{rounds}", file=sys.stderr, flush=True)
            for name, step in steps:
                wall, cpu = await _time(step, iterations)
                old = best.get(name, (wall, cpu))
                best[name] = (min(old[0], wall), min(old[1], cpu))
    await engine.dispose()
    print(f"  {'wall µs':>9} {'CPU µs':>9}  step (best of {rounds} rounds of {iterations} runs)")
    rows = [(name, *best[name]) for name, _ in steps]
    for name, wall, cpu in rows:
        print(f"  {wall:9.0f} {cpu:9.0f}  {name}")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Per-step costs of the benchmarked routes.")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--iterations", type=int, default=300, help="Runs per step and round.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds; each step's best is kept.")
    options = parser.parse_args(argv)
    try:
        with _database(options.database, options.postgres_url) as database:
            print(f"phases on {options.database}:")
            # The servers run on uvloop (installed with litestar[standard]); so does this.
            uvloop.run(measure(database.url, options.iterations, options.rounds))
    except BenchError as exc:
        print(f"phases: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
