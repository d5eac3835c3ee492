"""Issue 5's page benchmark: the server render of the integrations page's content
(``POST /modal/api/page``) for 50 integrations of 5 workflows, a user with 3 of each installed,
timed directly (queries + Jinja2) and through HTTP against a baseline measured in the same run
(``GET /health`` through the same app and test client);
and the page's weight, gzipped, without logos (shell + CSS + script + content; and the hosted
page's one response, shell and content together).

    uv run python bench/page.py [--requests 400]

Targets: render p99 at most 30 ms; weight at most 30 KB gzipped. In process (Litestar's test
client, no sockets), one request at a time: this measures the render, not the network.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import async_sessionmaker

from embedded_ui.app import create_app
from embedded_ui.catalog import load_catalog
from embedded_ui.integrations import InstallationService
from embedded_ui.integrations.cache import ReleasedCache
from embedded_ui.page import Filters, build_cards, render_content
from embedded_ui.paths import STATIC_DIR
from embedded_ui.settings import Settings
from embedded_ui.store import Scope, User, create_engine
from listing import INTEGRATIONS, WORKFLOWS_EACH, _seed

RENDER_P99_MS = 30.0
WEIGHT_KB = 30.0


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p99": round(ordered[int(len(ordered) * 0.99) - 1], 2),
    }


async def _time(n: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    for _ in range(20):  # warm-up
        await call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def _server_render(database_url: str, user_id: str, requests: int) -> list[float]:
    """The render itself: the page's queries (on the release cache, as in the service) and
    Jinja2, without HTTP."""
    engine = create_engine(Settings(database_url=database_url))
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            user = await session.get_one(User, user_id)
            scope = Scope(user.workspace_id, user.environment)
            service = InstallationService(session, scope, load_catalog(), "", ReleasedCache())

            async def render() -> str:
                filters = Filters()
                return render_content(await build_cards(session, service, user, filters), filters)

            return await _time(requests, render)
    finally:
        await engine.dispose()


async def measure(requests: int, work: Path) -> dict[str, Any]:
    database_url = f"sqlite+aiosqlite:///{work / 'page.sqlite3'}"
    key, user_id = await _seed(database_url, 1)
    # Development defaults (signing and vault keys) with a private database and no rate limit.
    settings = Settings.from_env(
        {
            "EMBEDDED_UI_DATABASE_URL": database_url,
            "EMBEDDED_UI_RATE_LIMIT_PER_MINUTE": "0",
            "EMBEDDED_UI_LOG_LEVEL": "WARNING",
        }
    )
    app = create_app(settings)
    async with AsyncTestClient(app) as client:
        token = (
            await client.get(
                f"/2024-03/users/{user_id}/token", headers={"Authorization": f"Bearer {key}"}
            )
        ).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}

        async def render() -> Any:
            response = await client.post("/modal/api/page", json={}, headers=headers)
            assert response.status_code == 200, response.text
            return response

        async def baseline() -> Any:
            return await client.get("/health")

        first = (await render()).json()
        assert first["shown"] == INTEGRATIONS, first["shown"]
        base = await _time(requests, baseline)
        page = await _time(requests, render)
        shell = await client.get("/page/bench/development")
        # The hosted page (a single-use link): the shell with the content inline.
        made = await client.get(
            f"/2024-03/users/{user_id}/integrations-page-url",
            headers={"Authorization": f"Bearer {key}"},
        )
        hosted = await client.get(urlsplit(made.json()["url"]).path)
        assert hosted.status_code == 200, hosted.text
    direct = await _server_render(database_url, user_id, requests)
    parts = {
        "shell": shell.content,
        "page.css": (STATIC_DIR / "page.css").read_bytes(),
        "page.js": (STATIC_DIR / "page.js").read_bytes(),
        "content": first["html"].encode(),
    }
    gzipped = {name: len(gzip.compress(body, 9)) for name, body in parts.items()}
    return {
        "integrations": INTEGRATIONS,
        "workflows_each": WORKFLOWS_EACH,
        "server_render_ms": _ms(direct),
        "baseline_http_ms": _ms(base),
        "page_http_ms": _ms(page),
        "weight_gzip_bytes": gzipped,
        "weight_gzip_total_kb": round(sum(gzipped.values()) / 1024, 1),
        # Shell and content in one response, plus the same page.css and page.js.
        "hosted_page_gzip_bytes": len(gzip.compress(hosted.content, 9)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=400)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="eui-bench-page-") as work:
        result = asyncio.run(measure(options.requests, Path(work)))
    for name, value in result.items():
        print(f"{name}: {value}")
    ok = (
        result["server_render_ms"]["p99"] <= RENDER_P99_MS
        and result["weight_gzip_total_kb"] <= WEIGHT_KB
    )
    print("targets:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
