"""Database destinations: row inserts on SQLite and PostgreSQL, the sealed URL through the
API and the CLI (never shown or logged in full), tenant isolation, and the data blocks."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from conftest import every_row_as_text
from embedded_ui.engine.blocks import render_inputs
from embedded_ui.engine.data_blocks import run_database, run_filter
from embedded_ui.engine.destination_inserts import DestinationPool, insert_rows
from embedded_ui.engine.destinations import DestinationError, DestinationService
from embedded_ui.engine.mapping import MappingError
from embedded_ui.settings import Settings
from embedded_ui.store import Scope, create_engine

API = "/2024-03/destinations"
CANARY = "canary-pw-" + secrets.token_hex(6)


# --- a target database with an `orders` table, per backend -----------------------------------


@dataclass(frozen=True)
class Target:
    url: str
    """As the ISV would give it: postgresql:// or sqlite:/// (normalised on use)."""
    table: str

    async def rows(self) -> list[tuple[Any, ...]]:
        engine = create_async_engine(_async(self.url))
        try:
            async with engine.connect() as connection:
                result = await connection.execute(
                    text(f"SELECT ref, qty, placed_at, meta FROM {self.table} ORDER BY id")  # noqa: S608
                )
                return [tuple(row) for row in result.all()]
        finally:
            await engine.dispose()


def _async(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://").replace(
        "sqlite://", "sqlite+aiosqlite://"
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Resolved outside the event loop: ``postgres_database`` runs its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.sqlite3'}"
    # The test process's private database (conftest), with a password PostgreSQL's trust
    # authentication ignores: a canary that must never show up in a message.
    database: str = request.getfixturevalue("postgres_database")
    return database.replace("postgresql+asyncpg://postgres@", f"postgresql://postgres:{CANARY}@")


@pytest.fixture
async def target(target_url: str) -> AsyncIterator[Target]:
    table, url = f"orders_{secrets.token_hex(4)}", target_url
    if url.startswith("sqlite"):
        ddl = (
            f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, ref VARCHAR(40) NOT NULL, "
            "qty INTEGER, placed_at TIMESTAMP, meta JSON)"
        )
    else:
        ddl = (
            f"CREATE TABLE {table} (id SERIAL PRIMARY KEY, ref VARCHAR(40) NOT NULL, "
            "qty INTEGER, placed_at TIMESTAMP, meta JSONB)"
        )
    engine = create_async_engine(_async(url))
    try:
        async with engine.begin() as connection:
            await connection.execute(text(ddl))
        yield Target(url, table)
        async with engine.begin() as connection:
            await connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
    finally:
        await engine.dispose()


@pytest.fixture
async def pool() -> AsyncIterator[DestinationPool]:
    destinations = DestinationPool(max_engines=2)
    yield destinations
    await destinations.aclose()


# --- inserts ----------------------------------------------------------------------------------


async def test_rows_land_with_their_values_converted_to_the_column_types(
    target: Target, pool: DestinationPool
) -> None:
    rows = [
        {"ref": "A-1", "qty": 2, "placed_at": "2024-05-01T10:30:00Z", "meta": {"vip": True}},
        {"ref": 12, "qty": "3"},  # a number into a text column, digits into an integer one
    ]
    assert await pool.insert(target.url, target.table, rows) == 2
    stored = await target.rows()
    assert [row[:2] for row in stored] == [("A-1", 2), ("12", 3)]
    assert str(stored[0][2]).startswith("2024-05-01 10:30:00")
    meta = stored[0][3]
    assert (json.loads(meta) if isinstance(meta, str) else meta) == {"vip": True}
    assert stored[1][2] is None and stored[1][3] is None  # missing keys are NULL


async def test_insert_rows_on_its_own_engine(target: Target) -> None:
    assert await insert_rows(target.url, target.table, [{"ref": "solo"}]) == 1
    assert await insert_rows(target.url, target.table, []) == 0
    assert [row[0] for row in await target.rows()] == ["solo"]


@pytest.mark.parametrize(
    ("table", "rows", "needles"),
    [
        ("no_such_table", [{"ref": "x"}], ("'no_such_table' does not exist",)),
        (None, [{"ref": "x"}, {"bogus": 1}], ("has no column 'bogus'", "ref", "qty")),
        ("orders; DROP TABLE orders", [{"ref": "x"}], ("expected a name",)),
        ('orders" --', [{"ref": "x"}], ("expected a name",)),
        (None, [{"ref": "x"}, {"ref) VALUES ('y'); --": 1}], ("is not a column name",)),
        (None, [{"ref": "x"}, {"ref": None}], ("ref",)),  # NOT NULL: the database says no
        (None, [{"ref": "x"}, {"ref": "y", "placed_at": "yesterday"}], ("'placed_at'",)),
        (None, [{"ref": "x"}, ["not", "an", "object"]], ("rows[1]", "expected an object")),
    ],
)
async def test_a_bad_insert_is_a_clear_error_and_inserts_nothing(
    target: Target,
    pool: DestinationPool,
    table: str | None,
    rows: list[Any],
    needles: tuple[str, ...],
) -> None:
    with pytest.raises(DestinationError) as raised:
        await pool.insert(target.url, table or target.table, rows)
    message = raised.value.message
    for needle in needles:
        assert needle in message, message
    assert CANARY not in message and "postgres:" not in message
    assert await target.rows() == []  # the first, valid row was rolled back with the rest


async def test_an_unreachable_database_is_an_error_without_the_password(
    pool: DestinationPool,
) -> None:
    url = f"postgresql://someone:{CANARY}@127.0.0.1:1/nothing"
    with pytest.raises(DestinationError) as raised:
        await pool.insert(url, "orders", [{"ref": "x"}])
    assert CANARY not in raised.value.message


async def test_the_pool_keeps_a_bounded_number_of_engines(tmp_path: Path) -> None:
    pool = DestinationPool(max_engines=2)
    urls = []
    for index in range(3):
        path = tmp_path / f"db{index}.sqlite3"
        urls.append(f"sqlite:///{path}")
        engine = create_async_engine(_async(urls[-1]))
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (v TEXT)"))
        await engine.dispose()
        assert await pool.insert(urls[-1], "t", [{"v": str(index)}]) == 1
    assert list(pool._engines) == urls[1:]
    await pool.aclose()
    assert not pool._engines


# --- the blocks -------------------------------------------------------------------------------

CONTEXT = {
    "trigger": {
        "orderId": "A-7",
        "lines": [{"sku": "x", "n": 1}, {"sku": "y", "n": 4}],
        "paid": True,
    },
    "blocks": {},
}


async def test_the_data_blocks(target: Target, pool: DestinationPool) -> None:
    transform = {"id": "shape", "type": "transform", "output": {"ref": "{{ trigger.orderId }}"}}
    assert await render_inputs(transform, CONTEXT) == {"output": {"ref": "A-7"}}
    assert run_filter({"condition": "trigger.paid"}, CONTEXT) is True
    assert run_filter({"condition": "{{ trigger.lines[?n > `9`] }}"}, CONTEXT) is False

    async def insert(block: dict[str, Any]) -> dict[str, Any]:
        inputs = await render_inputs(block, CONTEXT)
        return await run_database(block, inputs, target.url, pool)

    one = {
        "id": "store",
        "type": "database",
        "destination": "warehouse",
        "table": target.table,
        "row": {"ref": "{{ trigger.orderId }}"},
    }
    assert await insert(one) == {"inserted": 1, "table": target.table}
    many = {
        "id": "store",
        "type": "database",
        "destination": "warehouse",
        "table": target.table,
        "rows": "{{ trigger.lines[*].{ref: sku, qty: n} }}",
    }
    assert (await insert(many))["inserted"] == 2
    assert [(r[0], r[1]) for r in await target.rows()] == [("A-7", None), ("x", 1), ("y", 4)]

    with pytest.raises(MappingError, match="list of objects"):
        await insert({**many, "rows": "{{ trigger.orderId }}"})
    with pytest.raises(DestinationError) as raised:
        await insert({**one, "table": "missing"})
    assert raised.value.message.startswith("destination 'warehouse': table 'missing'")
    assert CANARY not in raised.value.message


# --- the service, through the API -------------------------------------------------------------


async def test_set_list_delete_through_the_api_never_showing_the_password(
    client: Any,
    make_tenant: Callable[..., Any],
    database_url: str,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    acme = await make_tenant("acme")
    url = f"postgresql://loader:{CANARY}@93.184.216.34:5432/warehouse"
    saved = await client.put(f"{API}/warehouse", json={"url": url}, headers=acme.headers)
    assert saved.status_code == 200, saved.text
    masked = "postgresql+asyncpg://loader:***@93.184.216.34:5432/warehouse"
    assert saved.json()["name"] == "warehouse" and saved.json()["url"] == masked
    assert set(saved.json()) == {"name", "url", "createdAt", "updatedAt"}

    again = await client.put(
        "/2023-03/destinations/warehouse",  # an older dated prefix reaches the same handler
        json={"url": f"{url}?ssl=require"},
        headers=acme.headers,
    )
    assert again.status_code == 200, again.text
    listed = await client.get(API, headers=acme.headers)
    assert listed.status_code == 200, listed.text
    assert [(d["name"], d["url"]) for d in listed.json()["data"]] == [
        ("warehouse", f"{masked}?ssl=require")
    ]

    # The runner opens the full URL from the sealed row.
    engine = create_engine(settings)
    try:
        async with async_sessionmaker(engine)() as session:
            service = DestinationService(
                session, Scope(acme.workspace_id, "development"), client.app.state.vault
            )
            assert await service.url("warehouse") == (
                f"postgresql+asyncpg://loader:{CANARY}@93.184.216.34:5432/warehouse?ssl=require"
            )
    finally:
        await engine.dispose()

    deleted = await client.delete(f"{API}/warehouse", headers=acme.headers)
    assert deleted.status_code == 200, deleted.text
    gone = await client.delete(f"{API}/warehouse", headers=acme.headers)
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"

    logged = "\n".join(r.getMessage() for r in caplog.records) + capsys.readouterr().out
    stored = await every_row_as_text(database_url)
    for text_seen in (saved.text, again.text, listed.text, logged, stored):
        assert CANARY not in text_seen


@pytest.mark.parametrize(
    ("name", "url", "needle"),
    [
        ("warehouse", "mysql+pymysql://u:p@h/db", "mysql+pymysql is not supported"),
        ("warehouse", "postgresql+psycopg://u:p@h/db", "is not supported"),
        ("warehouse", "not a url", "not a database URL"),
        ("warehouse", "sqlite://", "needs a file path"),
        ("warehouse", "sqlite:///:memory:", "needs a file path"),
        ("warehouse", "", "expected 1 to"),
        ("Bad Name", "sqlite:///x.db", "name: expected lowercase"),
        # Not for a tenant to reach (attack case 18, for databases): internal addresses,
        # names that resolve to them, socket paths, names that do not resolve.
        ("warehouse", "postgresql://u:p@10.0.0.5/db", "10.0.0.5 is a private (RFC 1918) address"),
        ("warehouse", "postgresql://u:p@169.254.169.254/db", "169.254.169.254 is a link-local"),
        ("warehouse", "postgresql://u:p@localhost/db", "localhost resolves to"),
        ("warehouse", "postgresql://u:p@[::1]/db", "::1 is a loopback"),
        ("warehouse", "postgresql://u:p@/db?host=/var/run/postgresql", "needs a host name"),
        ("warehouse", "postgresql://u:p@nowhere.invalid/db", "could not be resolved"),
    ],
)
async def test_bad_urls_and_names_are_400(
    client: Any, tenant: Any, name: str, url: str, needle: str
) -> None:
    response = await client.put(f"{API}/{name}", json={"url": url}, headers=tenant.headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_request" and needle in body["message"], body
    assert (await client.get(API, headers=tenant.headers)).json() == {"data": []}


async def test_the_service_own_database_is_refused(
    client: Any, tenant: Any, database_url: str
) -> None:
    own = database_url.replace("+aiosqlite", "").replace("+asyncpg", "")
    response = await client.put(f"{API}/mine", json={"url": own}, headers=tenant.headers)
    assert response.status_code == 400, response.text
    assert "own database" in response.json()["message"]


async def test_another_tenant_cannot_see_or_delete_a_destination(
    client: Any, make_tenant: Callable[..., Any]
) -> None:
    acme = await make_tenant("acme")
    saved = await client.put(
        f"{API}/warehouse", json={"url": "sqlite:///w.db"}, headers=acme.headers
    )
    assert saved.status_code == 200, saved.text
    for other in (await make_tenant("globex"), await make_tenant("acme", "production")):
        assert (await client.get(API, headers=other.headers)).json() == {"data": []}
        response = await client.delete(f"{API}/warehouse", headers=other.headers)
        assert response.status_code == 404, response.text
    assert len((await client.get(API, headers=acme.headers)).json()["data"]) == 1
    assert (await client.get(API)).status_code == 401


# --- apply refuses a bad template ---------------------------------------------------------------


async def test_apply_refuses_a_bad_template_naming_file_workflow_and_block(
    client: Any, tenant: Any
) -> None:
    document = {
        "integration": {"key": "shop", "app": "sandbox"},
        "workflows": [
            {
                "key": "shop-orders",
                "name": "Orders to the warehouse",
                "trigger": {"type": "app_event", "event": "order_created"},
                "blocks": [
                    {"id": "paid", "type": "filter", "condition": "trigger.paid"},
                    {"id": "shape", "type": "transform", "output": {"ref": "{{ trigger.[ }}"}},
                    {
                        "id": "store",
                        "type": "database",
                        "destination": "warehouse",
                        "table": "orders",
                        "rows": "{{ [blocks.shape] }}",
                    },
                ],
            }
        ],
    }
    files = [{"name": "shop.yaml", "content": yaml.safe_dump(document)}]
    response = await client.post(
        "/2024-03/manage/apply", json={"files": files}, headers=tenant.headers
    )
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert message.startswith("shop.yaml: workflows[0].blocks[1].output.ref: {{ trigger.[ }}")
    assert "(workflow 'shop-orders', block 'shape')" in message

    document["workflows"][0]["blocks"][1]["output"] = {"ref": "{{ trigger.id }}"}  # type: ignore[index]
    files = [{"name": "shop.yaml", "content": yaml.safe_dump(document)}]
    response = await client.post(
        "/2024-03/manage/apply", json={"files": files}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text


# --- the CLI ------------------------------------------------------------------------------------


def _cli(database_url: str, cwd: Path, *args: str, stdin: str | None = None) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_UI_")}
    env.update({"EMBEDDED_UI_DATABASE_URL": database_url, "EMBEDDED_UI_LOG_LEVEL": "WARNING"})
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "embedded_ui", *args],
        input=stdin,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_destinations_cli_set_list_delete(database_url: str, tmp_path: Path) -> None:
    def cli(*args: str, stdin: str | None = None) -> Any:
        return _cli(database_url, tmp_path, *args, stdin=stdin)

    assert cli("workspace", "create", "acme").returncode == 0
    tenant = ("--workspace", "acme", "--environment", "development")
    url = f"postgresql://loader:{CANARY}@93.184.216.34/warehouse"
    saved = cli("destinations", "set", "warehouse", url, *tenant, "--json")
    assert saved.returncode == 0, saved.stderr
    assert (
        json.loads(saved.stdout)["url"] == "postgresql+asyncpg://loader:***@93.184.216.34/warehouse"
    )
    from_stdin = cli(
        "destinations", "set", "archive", "-", *tenant, stdin=f"sqlite:///{tmp_path}/a.db\n"
    )
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout.startswith("Destination archive saved (development): sqlite+aiosqlite")

    listed = cli("destinations", "list", *tenant, "--json")
    assert [d["name"] for d in json.loads(listed.stdout)] == ["archive", "warehouse"]
    as_text = cli("destinations", "list", *tenant)
    assert "loader:***@93.184.216.34" in as_text.stdout

    bad = cli("destinations", "set", "warehouse", "mysql://u:p@h/db", *tenant)
    assert bad.returncode == 1 and "not supported" in bad.stderr and "Traceback" not in bad.stderr
    deleted = cli("destinations", "delete", "warehouse", *tenant, "--json")
    assert json.loads(deleted.stdout) == {"name": "warehouse", "deleted": True}
    again = cli("destinations", "delete", "warehouse", *tenant)
    assert again.returncode == 1 and "No destination 'warehouse'" in again.stderr
    for result in (saved, listed, as_text, deleted, again):
        assert CANARY not in result.stdout + result.stderr
