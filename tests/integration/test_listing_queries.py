"""The listing routes cost a fixed number of SQL statements, whatever the number of
integrations and of users (no N+1): counted with a ``before_cursor_execute`` listener on the
app's own engine and, on SQLite, a trace of the inline reader's connection (store/inline.py;
the hot path, api/hot.py, reads only there), for 1 integration and 1 user, then for 10
integrations and 200 users who all have installations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
import yaml
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from embedded_ui.catalog import load_catalog
from embedded_ui.integrations import InstallationService
from embedded_ui.settings import Settings
from embedded_ui.store import Scope, User, create_engine
from embedded_ui.workspaces.service import KEY_CACHE

V = "/2024-03"
EVENT = "Order Packed"
MANY_INTEGRATIONS = 10
MANY_USERS = 200


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No in-process worker here: it polls the same engine, and its statements are not the
    listing's (they made the count depend on timing)."""
    return replace(settings, inprocess_worker=False)


def events_file() -> dict[str, str]:
    schema = {"type": "object", "required": ["orderId"], "properties": {"orderId": {}}}
    return {
        "name": "events.yaml",
        "content": yaml.safe_dump({"events": [{"name": EVENT, "schema": schema}]}),
    }


def integration_file(n: int) -> dict[str, str]:
    """A sandbox integration with two workflows: one on a custom event (no credential needed),
    one on an app event."""
    document = {
        "integration": {"key": f"shop-{n}", "app": "sandbox", "name": f"Shop {n}"},
        "workflows": [
            {
                "key": f"shop-{n}-packed",
                "name": f"Packed orders {n}",
                "trigger": {"type": "custom_event", "event": EVENT},
                "blocks": [
                    {
                        "id": "forward",
                        "type": "stream_data",
                        "url": {
                            "configurable": {
                                "label": "Where to send",
                                "type": "url",
                                "default": f"https://hooks.example.com/{n}",
                            }
                        },
                    }
                ],
            },
            {
                "key": f"shop-{n}-customers",
                "name": f"New customers {n}",
                "trigger": {"type": "app_event", "event": "customer_created"},
                "blocks": [
                    {"id": "forward", "type": "stream_data", "url": "https://hooks.example.com/c"},
                    {
                        "id": "greet",
                        "type": "app_action",
                        "action": "create_customer",
                        "inputs": {"email": "{{ trigger.email }}"},
                    },
                ],
            },
        ],
    }
    return {"name": f"shop-{n}.yaml", "content": yaml.safe_dump(document, sort_keys=False)}


async def apply(client: Any, tenant: Any, count: int) -> None:
    files = [events_file(), *(integration_file(n) for n in range(count))]
    response = await client.post(
        f"{V}/manage/apply", json={"files": files, "release": True}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text


async def create_users(client: Any, tenant: Any, first: int, count: int) -> None:
    users = [{"username": f"user-{n:04d}"} for n in range(first, first + count)]
    response = await client.post(f"{V}/users/batch", json={"users": users}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["created"] == count, response.text


async def install_everything(app: Any, settings: Any, tenant: Any, credential_id: str) -> None:
    """Every user installs every custom-event workflow; user-0000 (the one listed) also the
    app-event ones, with its credential."""
    engine = create_engine(settings)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            service = InstallationService(
                session,
                Scope(tenant.workspace_id, tenant.environment),
                load_catalog(),
                settings.public_url,
            )
            released = await service.released()
            packed = [
                w.workflow_id for w in released if w.definition["trigger"]["type"] == "custom_event"
            ]
            every = [w.workflow_id for w in released]
            for user in await session.scalars(select(User).order_by(User.username)):
                if user.username == "user-0000":
                    await service.install(user, every, [credential_id], {})
                else:
                    await service.install(user, packed, [], {})
            await session.commit()
    finally:
        await engine.dispose()


@contextmanager
def statements(app: Any) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])  # (conn, cursor, statement, parameters, context, executemany)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    reader = app.state.inline_reader
    if reader is not None:
        # Queries only: the reader's BEGIN and COMMIT around a snapshot (one read transaction
        # for the reads of a request) are not statements that could grow with the data, and
        # the engine's own transaction control is not counted either.
        reader._connection.set_trace_callback(
            lambda sql: None if sql in ("BEGIN", "COMMIT", "ROLLBACK") else seen.append(sql)
        )
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
        if reader is not None:
            reader._connection.set_trace_callback(None)


async def statements_per_listing(
    client: Any, app: Any, tenant: Any, user_id: str
) -> dict[str, int]:
    listed = await client.get(f"{V}/integrations?userId={user_id}", headers=tenant.headers)
    integration_id = listed.json()["data"][0]["integrationId"]
    routes = {
        "integrations": f"{V}/integrations?userId={user_id}",
        "integration": f"{V}/integrations/{integration_id}?userId={user_id}",
        "workflows": f"{V}/workflows?userId={user_id}",
    }
    counts: dict[str, int] = {}
    for name, path in routes.items():
        await client.get(path, headers=tenant.headers)  # warm: connections, caches
        measured = []
        for _ in range(2):
            # Count the API-key lookup every time: a key cached (for up to a second) by an
            # earlier request would otherwise make the count depend on timing.
            KEY_CACHE.clear()
            with statements(app) as seen:
                response = await client.get(path, headers=tenant.headers)
            assert response.status_code == 200, response.text
            measured.append(len(seen))
        assert measured[0] == measured[1], f"{name}: {measured} statements on repeat"
        counts[name] = measured[0]
    return counts


async def test_listing_statements_do_not_grow_with_integrations_or_users(
    client: Any, app: Any, settings: Any, tenant: Any, sandbox: Any
) -> None:
    await apply(client, tenant, 1)
    await create_users(client, tenant, 0, 1)
    user_id = (await client.get(f"{V}/users/user-0000", headers=tenant.headers)).json()["userId"]
    credential = await client.post(
        f"{V}/users/{user_id}/credentials",
        json={"app": "sandbox", "type": "api_key", "data": {"access_token": sandbox.new_key()}},
        headers=tenant.headers,
    )
    assert credential.status_code == 201, credential.text
    credential_id = credential.json()["credentialId"]
    await install_everything(app, settings, tenant, credential_id)

    small = await statements_per_listing(client, app, tenant, user_id)
    listed = (await client.get(f"{V}/integrations?userId={user_id}", headers=tenant.headers)).json()
    assert len(listed["data"]) == 1
    assert all(w["installed"] for i in listed["data"] for w in i["workflows"])

    await apply(client, tenant, MANY_INTEGRATIONS)
    await create_users(client, tenant, 1, MANY_USERS - 1)
    await install_everything(app, settings, tenant, credential_id)

    large = await statements_per_listing(client, app, tenant, user_id)
    listed = (await client.get(f"{V}/integrations?userId={user_id}", headers=tenant.headers)).json()
    assert len(listed["data"]) == MANY_INTEGRATIONS
    workflows = [w for i in listed["data"] for w in i["workflows"]]
    assert len(workflows) == 2 * MANY_INTEGRATIONS
    assert all(w["installed"] and w["installedVersion"] == 1 for w in workflows)
    users = await client.get(
        f"{V}/workflows/{workflows[0]['workflowId']}/users", headers=tenant.headers
    )
    assert users.json()["meta"]["total"] == MANY_USERS

    assert large == small, f"1 integration, 1 user: {small}; 10 integrations, 200 users: {large}"
    assert max(small.values()) <= 6, small
    # The listing: the API key, the user, then the revision and the user's installations in
    # one statement (the released workflows and their JSON come from the per-process cache).
    # On SQLite all three run inline, on the hot path for the whole listing; counted too.
    assert small["integrations"] <= 3 and small["integration"] <= 3, small
