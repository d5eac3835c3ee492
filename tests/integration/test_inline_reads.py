"""The hot GETs on SQLite read users and installations inline (store/inline.py), outside the
request's session: they must see every committed change at once, keep the tenant filter,
never write, and fall back to the engine when SQLite cannot answer at once."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event

from embedded_ui.settings import Settings
from embedded_ui.store.inline import InlineReader
from embedded_ui.users.service import _USER_BY_ID
from embedded_ui.workspaces.service import KEY_CACHE

V = "/2024-03"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No in-process worker here: it polls the same engine, and its statements are not the
    request's."""
    return replace(settings, inprocess_worker=False)


def engine_statements(app: Any) -> tuple[list[str], Any]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    return seen, record


async def test_reads_see_every_committed_change_at_once(
    client: Any, app: Any, tenant: Any, make_tenant: Any
) -> None:
    reader = app.state.inline_reader
    if reader is None:
        pytest.skip("PostgreSQL: no inline reads")
    created = await client.post(f"{V}/users", json={"username": "ada"}, headers=tenant.headers)
    user_id = created.json()["userId"]
    shown = await client.get(f"{V}/users/{user_id}", headers=tenant.headers)
    assert shown.json() == created.json()  # same values as the engine gave (createdAt included)
    renamed = await client.put(
        f"{V}/users/{user_id}", json={"username": "ada-l"}, headers=tenant.headers
    )
    assert renamed.status_code == 200, renamed.text
    assert (await client.get(f"{V}/users/ada-l", headers=tenant.headers)).json()["userId"] == (
        user_id
    )
    assert (await client.get(f"{V}/users/ada", headers=tenant.headers)).status_code == 404
    # Another environment's key sees nothing of it.
    other = await make_tenant("acme", "production")
    assert (await client.get(f"{V}/users/{user_id}", headers=other.headers)).status_code == 404
    deleted = await client.delete(f"{V}/users/{user_id}", headers=tenant.headers)
    assert deleted.status_code == 200, deleted.text
    assert (await client.get(f"{V}/users/{user_id}", headers=tenant.headers)).status_code == 404
    token = await client.get(f"{V}/users/{user_id}/token", headers=tenant.headers)
    assert token.status_code == 404


async def test_a_cached_get_runs_no_statement_on_the_engine(
    client: Any, app: Any, tenant: Any
) -> None:
    if app.state.inline_reader is None:
        pytest.skip("PostgreSQL: no inline reads")
    created = await client.post(f"{V}/users", json={"username": "grace"}, headers=tenant.headers)
    user_id = created.json()["userId"]
    seen, record = engine_statements(app)
    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        for path in (f"{V}/users/{user_id}", f"{V}/users/{user_id}/token"):
            await client.get(path, headers=tenant.headers)  # the key is now cached
            seen.clear()
            response = await client.get(path, headers=tenant.headers)
            assert response.status_code == 200, response.text
            assert seen == [], f"{path}: {seen}"
        # Nor when the key is looked up again (its cache entry expired): inline too.
        KEY_CACHE.clear()
        await client.get(f"{V}/users/{user_id}", headers=tenant.headers)
        assert seen == []
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_the_reader_never_writes_and_gives_way_when_sqlite_is_busy(
    client: Any, app: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader: InlineReader | None = app.state.inline_reader
    if reader is None:
        pytest.skip("PostgreSQL: no inline reads")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader._connection.execute("DELETE FROM end_user")
    created = await client.post(f"{V}/users", json={"username": "linus"}, headers=tenant.headers)
    user_id = created.json()["userId"]
    params = _user_by_id(tenant, user_id)
    assert reader.rows(_USER_BY_ID, params) is not None

    # It never waits for a lock (busy timeout 0): when SQLite cannot answer at once, or the
    # reader fails in any way, the route takes the engine's path and answers the same.
    assert reader._connection.execute("PRAGMA busy_timeout").fetchone()[0] == 0
    shown = await client.get(f"{V}/users/{user_id}", headers=tenant.headers)
    monkeypatch.setattr(reader, "_connection", _Failing())
    assert reader.rows(_USER_BY_ID, params) is None
    again = await client.get(f"{V}/users/{user_id}", headers=tenant.headers)
    assert again.status_code == 200, again.text
    assert again.json() == shown.json()


def _user_by_id(tenant: Any, user_id: str) -> dict[str, str]:
    """The parameters of ``_USER_BY_ID`` for one of the tenant's users."""
    return {
        "workspace_id": tenant.workspace_id,
        "environment": tenant.environment,
        "reference": user_id,
    }


class _Failing:
    def execute(self, *_: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")


async def test_reads_in_a_snapshot_see_one_moment_and_end_with_it(
    client: Any, app: Any, tenant: Any
) -> None:
    reader: InlineReader | None = app.state.inline_reader
    if reader is None:
        pytest.skip("PostgreSQL: no inline reads")
    created = await client.post(f"{V}/users", json={"username": "grace"}, headers=tenant.headers)
    user_id = created.json()["userId"]
    params = _user_by_id(tenant, user_id)

    def username() -> str:
        rows = reader.rows(_USER_BY_ID, params)
        assert rows is not None
        return str(rows[0][1])

    with reader.snapshot():
        assert username() == "grace"
        # A change committed meanwhile, by another connection (the engine's)...
        renamed = await client.put(
            f"{V}/users/{user_id}", json={"username": "grace-h"}, headers=tenant.headers
        )
        assert renamed.status_code == 200, renamed.text
        assert username() == "grace"  # ...is not seen inside the snapshot,
        assert reader._connection.in_transaction
    assert not reader._connection.in_transaction
    assert username() == "grace-h"  # and is at once after it.

    # A block that fails still ends its transaction (it would hold back checkpoints).
    with pytest.raises(RuntimeError), reader.snapshot():
        assert username() == "grace-h"
        raise RuntimeError("the block failed")
    assert not reader._connection.in_transaction
