"""Issue 3's listing benchmark: `GET /integrations?userId=` for an environment with 50
integrations of 5 workflows, at 1,000 and at 100,000 users who all have installations.

    uv run python bench/listing.py [--users 1000,100000] [--duration 10] [--workers 2] [--nice -19]

Targets: p99 at most 20 ms at 32 connections, and the latency at 100,000 users within 1.2x of
that at 1,000 users. Reuses bench/run.py's server, wrk and clean-up helpers.

The same run also measures bench/run.py's baseline (a bare Litestar ``GET /hello`` under the
same server and workers), so that a busy, shared machine can be told apart from the service:
compare each row's req/s ratio to the baseline, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import async_sessionmaker

from embedded_ui.catalog import load_catalog
from embedded_ui.integrations import InstallationService, IntegrationService, parse_documents
from embedded_ui.settings import Settings
from embedded_ui.store import Installation, Scope, User, create_engine, migrate, new_id, utcnow
from embedded_ui.workspaces import WorkspaceService
from run import (
    BASELINE_TARGET,
    BenchError,
    WrkResult,
    _service_env,
    _start_server,
    _stop,
    _wait_ready,
    _wrk,
    set_priority,
)

INTEGRATIONS, WORKFLOWS_EACH, INSTALLED_EACH = 50, 5, 3


def _integration_file(number: int) -> tuple[str, str]:
    workflows = "\n".join(
        f"""  - key: i{number}-w{index}
    name: Workflow {index} of integration {number}
    trigger: {{type: app_event, event: order_created}}
    blocks:
      - id: stream
        type: stream_data
        url: {{configurable: {{label: Where to send orders, type: url}}}}"""
        for index in range(WORKFLOWS_EACH)
    )
    text = f"integration:\n  key: int-{number}\n  app: sandbox\nworkflows:\n{workflows}\n"
    return f"int-{number}.yaml", text


async def _seed(database_url: str, users: int) -> tuple[str, str]:
    """Return (API key, the listed user's id)."""
    engine = create_engine(Settings(database_url=database_url))
    try:
        await migrate(engine)
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            service = WorkspaceService(session, actor="bench")
            workspace = await service.create("bench")
            key = (await service.create_key(workspace, "development")).plaintext
            scope = Scope(workspace.id, "development")
            files = [_integration_file(n) for n in range(INTEGRATIONS)]
            await IntegrationService(session, scope).apply(
                parse_documents(files, load_catalog()), release=True
            )
            released = await InstallationService(session, scope, load_catalog(), "").released()
            await session.commit()
        chosen = released[:INSTALLED_EACH]
        user_ids = [new_id() for _ in range(users)]
        now = utcnow()
        async with engine.begin() as connection:
            for start in range(0, users, 5000):
                batch = user_ids[start : start + 5000]
                owned = {"workspace_id": workspace.id, "environment": "development"}
                await connection.execute(
                    insert(User),
                    [{**owned, "id": u, "username": f"user-{u}", "created_at": now} for u in batch],
                )
                await connection.execute(
                    insert(Installation),
                    [
                        {
                            **owned,
                            "id": new_id(),
                            "user_id": u,
                            "workflow_id": w.workflow_id,
                            "version_id": w.version_id,
                            "version_number": w.version,
                            "active": True,
                            "values": {"stream.url": "https://example.com/orders"},
                            "credential_ids": {},
                            "created_at": now,
                            "updated_at": now,
                        }
                        for u in batch
                        for w in chosen
                    ],
                )
        return key, user_ids[users // 2]
    finally:
        await engine.dispose()


def _measure(users: int, options: argparse.Namespace, work: Path) -> dict[str, float]:
    database_url = f"sqlite+aiosqlite:///{work / f'listing-{users}.sqlite3'}"
    key, user_id = asyncio.run(_seed(database_url, users))
    env = _service_env(database_url, [])
    server = _start_server(
        f"listing-{users}", "granian", "embedded_ui.app:create_app", options.workers, env, work
    )
    try:
        _wait_ready(server, "/health", 90)
        url = f"{server.url}/2024-03/integrations?userId={user_id}"
        headers = [f"Authorization: Bearer {key}"]
        _wrk(url, 2, options.connections, 2, headers, None, server)  # warm-up
        result = _wrk(url, options.duration, options.connections, 2, headers, None, server)
    finally:
        _stop(server.process)
    if result.non_2xx or result.socket_errors:
        raise BenchError(f"{users} users: {result.non_2xx} non-2xx, {result.socket_errors} errors")
    return _row(result)


def _row(result: WrkResult) -> dict[str, float]:
    return {
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "other": result.other_cpu_percent,
    }


def _measure_baseline(options: argparse.Namespace, work: Path) -> dict[str, float]:
    env = _service_env(f"sqlite+aiosqlite:///{work / 'unused.sqlite3'}", [])
    server = _start_server("baseline", "granian", BASELINE_TARGET, options.workers, env, work)
    try:
        _wait_ready(server, "/hello", 90)
        url = f"{server.url}/hello"
        _wrk(url, 2, options.connections, 2, [], None, server)  # warm-up
        result = _wrk(url, options.duration, options.connections, 2, [], None, server)
    finally:
        _stop(server.process)
    return _row(result)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--users", default="1000,100000")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="Run the servers and wrk at this nice value (as bench/run.py --nice; negative: "
        "ahead of other processes on a shared machine, root only).",
    )
    options = parser.parse_args(argv)
    counts = [int(part) for part in options.users.split(",")]
    set_priority(options.nice)
    with tempfile.TemporaryDirectory(prefix="eui-listing-") as temporary:
        baseline = _measure_baseline(options, Path(temporary))
        rows = {users: _measure(users, options, Path(temporary)) for users in counts}
    print(
        f"{'users':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>7} {'other':>6}  "
        "p99 <= 20 ms"
    )
    print(
        f"{'baseline':>8} {baseline['rps']:>8.0f} {baseline['p50_ms']:>8.2f} "
        f"{baseline['p99_ms']:>8.2f} {1:>6.2f}x {baseline['other']:>5.0f}%  "
        "(GET /hello, bare Litestar)"
    )
    for users, row in rows.items():
        ok = "yes" if row["p99_ms"] <= 20 else "no"
        ratio = row["rps"] / baseline["rps"]
        print(
            f"{users:>8} {row['rps']:>8.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
            f"{ratio:>6.3f}x {row['other']:>5.0f}%  {ok}"
        )
    print("other: the share of the machine used meanwhile by processes other than these")
    if len(rows) >= 2:
        low, high = rows[counts[0]], rows[counts[-1]]
        ratio = high["p99_ms"] / low["p99_ms"]
        print(f"p99 at {counts[-1]} users / at {counts[0]} users: {ratio:.2f}x (target <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
