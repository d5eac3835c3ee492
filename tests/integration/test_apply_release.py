"""Applying integration files and releasing versions, over HTTP (``/manage``) and from the CLI.

Apply is idempotent, a dry run writes nothing, a change makes a draft that only a release
turns into the next version, and a released version is never written again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from embedded_ui.errors import Conflict
from embedded_ui.store import CustomEvent, Integration, ParentWorkflow, WorkflowVersion

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "fulfillmently"
APPLY = "/2024-03/manage/apply"
RELEASE = "/2024-03/manage/release"
EXAMPLE_WORKFLOWS = {
    "bigcommerce-new-orders",
    "bigcommerce-fulfillment-updated",
    "sandbox-new-orders",
    "sandbox-fulfillment-updated",
}
CLI_TIMEOUT = 120


def example_files(*sandbox_edits: tuple[str, str]) -> list[dict[str, str]]:
    """The quickstart's files, with ``(old, new)`` text replacements made in sandbox.yaml."""
    files = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        content = path.read_text()
        for old, new in sandbox_edits if path.name == "sandbox.yaml" else ():
            assert old in content, f"{old!r} not in {path.name}"
            content = content.replace(old, new)
        files.append({"name": path.name, "content": content})
    return files


RENAMED = ("name: Create an internal order for each new Sandbox order", "name: New Sandbox orders")
NEW_URL = ("default: http://127.0.0.1:8000/demo/receiver", "default: http://127.0.0.1:9/in")
MORE_STATUSES = (
    "                - {label: Delivered, value: delivered}\n",
    "                - {label: Delivered, value: delivered}\n"
    "                - {label: Cancelled, value: cancelled}\n",
)


async def apply(client: Any, tenant: Any, files: list[dict[str, str]], **options: Any) -> Any:
    response = await client.post(APPLY, json={"files": files, **options}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"changed", "dryRun", "changes"}
    return body


def actions(body: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(c["action"], c["kind"], c["key"]) for c in body["changes"]}


@pytest.fixture
async def db(settings: Any) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(settings.database_url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


async def workflow_ids(db: async_sessionmaker[AsyncSession], tenant: Any) -> dict[str, str]:
    async with db() as session:
        rows = await session.execute(
            select(ParentWorkflow.key, ParentWorkflow.id).where(
                ParentWorkflow.workspace_id == tenant.workspace_id,
                ParentWorkflow.environment == tenant.environment,
            )
        )
        return {key: workflow_id for key, workflow_id in rows.all()}


async def stored_versions(
    db: async_sessionmaker[AsyncSession], workflow_id: str
) -> list[dict[str, Any]]:
    async with db() as session:
        rows = await session.scalars(
            select(WorkflowVersion)
            .where(WorkflowVersion.workflow_id == workflow_id)
            .order_by(WorkflowVersion.created_at, WorkflowVersion.id)
        )
        return [
            {
                "id": v.id,
                "number": v.number,
                "name": v.name,
                "definition": v.definition,
                "fields": v.fields,
                "content_hash": v.content_hash,
                "released_at": v.released_at,
            }
            for v in rows
        ]


async def versions(client: Any, tenant: Any, workflow_id: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"/2024-03/workflows/{workflow_id}/versions", headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def listing(client: Any, tenant: Any) -> list[dict[str, Any]]:
    user = await client.post("/2024-03/users", json={"username": "lister"}, headers=tenant.headers)
    assert user.status_code in (201, 409), user.text
    response = await client.get("/2024-03/integrations?userId=lister", headers=tenant.headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def listed_workflow(integrations: list[dict[str, Any]], workflow_id: str) -> dict[str, Any]:
    found = [w for i in integrations for w in i["workflows"] if w["workflowId"] == workflow_id]
    assert len(found) == 1, integrations
    return found[0]


# --- dry run and idempotence ----------------------------------------------------------------


async def test_dry_run_reports_everything_and_writes_nothing(
    client: Any, tenant: Any, db: async_sessionmaker[AsyncSession]
) -> None:
    body = await apply(client, tenant, example_files(), dryRun=True, release=True)
    assert body["dryRun"] is True
    assert body["changed"] is True
    expected = {
        ("create", "event", "Fulfillment Updated"),
        ("create", "integration", "bigcommerce"),
        ("create", "integration", "sandbox"),
        *{("draft", "workflow", key) for key in EXAMPLE_WORKFLOWS},
        *{("release", "workflow", key) for key in EXAMPLE_WORKFLOWS},
    }
    assert actions(body) == expected

    assert await workflow_ids(db, tenant) == {}
    async with db() as session:
        assert list(await session.scalars(select(Integration))) == []
        assert list(await session.scalars(select(CustomEvent))) == []
        assert list(await session.scalars(select(WorkflowVersion))) == []
    events = await client.get("/2024-03/events", headers=tenant.headers)
    assert events.json() == {"data": []}
    assert await listing(client, tenant) == []

    # The same dry run again still has everything to do.
    again = await apply(client, tenant, example_files(), dryRun=True)
    assert actions(again) == {a for a in expected if a[0] != "release"}


async def test_apply_twice_changes_nothing_the_second_time(
    client: Any, tenant: Any, db: async_sessionmaker[AsyncSession]
) -> None:
    first = await apply(client, tenant, example_files())
    assert first["changed"] is True and first["dryRun"] is False
    assert {("draft", "workflow", key) for key in EXAMPLE_WORKFLOWS} <= actions(first)
    ids = await workflow_ids(db, tenant)
    assert set(ids) == set(EXAMPLE_WORKFLOWS)
    before = {key: await stored_versions(db, wid) for key, wid in ids.items()}

    second = await apply(client, tenant, example_files())
    assert second["changed"] is False
    assert {c["action"] for c in second["changes"]} == {"unchanged"}
    assert {c["key"] for c in second["changes"]} == {
        "Fulfillment Updated",
        "bigcommerce",
        "sandbox",
        *EXAMPLE_WORKFLOWS,
    }
    assert {key: await stored_versions(db, wid) for key, wid in ids.items()} == before

    released = await apply(client, tenant, example_files(), release=True)
    assert actions(released) == {
        *{("unchanged", "workflow", k) for k in EXAMPLE_WORKFLOWS},
        ("unchanged", "event", "Fulfillment Updated"),
        ("unchanged", "integration", "bigcommerce"),
        ("unchanged", "integration", "sandbox"),
    }, "release=True only releases the drafts this apply made"
    nothing = await client.post(RELEASE, json={}, headers=tenant.headers)
    assert nothing.status_code == 200, nothing.text
    assert {c["key"] for c in nothing.json()["changes"]} == EXAMPLE_WORKFLOWS
    assert {c["detail"] for c in nothing.json()["changes"]} == {"version 1"}

    third = await apply(client, tenant, example_files(), release=True)
    assert third["changed"] is False
    empty = await client.post(RELEASE, json={}, headers=tenant.headers)
    assert empty.json() == {"changed": False, "dryRun": False, "changes": []}
    for workflow_id in ids.values():
        assert [v["version"] for v in await versions(client, tenant, workflow_id)] == [1]


# --- drafts and releases ----------------------------------------------------------------------


async def test_a_change_makes_a_draft_and_release_makes_the_next_version(
    client: Any, tenant: Any, db: async_sessionmaker[AsyncSession]
) -> None:
    await apply(client, tenant, example_files(), release=True)
    workflow_id = (await workflow_ids(db, tenant))["sandbox-new-orders"]
    (v1,) = await versions(client, tenant, workflow_id)
    assert v1["version"] == 1 and v1["status"] == "released" and v1["releasedAt"]

    renamed = await apply(client, tenant, example_files(RENAMED))
    assert actions(renamed) >= {("draft", "workflow", "sandbox-new-orders")}
    draft = next(c for c in renamed["changes"] if c["key"] == "sandbox-new-orders")
    assert draft["detail"] == "renamed"
    assert ("draft", "workflow", "sandbox-fulfillment-updated") not in actions(renamed)
    listed = await versions(client, tenant, workflow_id)
    assert [(v["version"], v["status"]) for v in listed] == [(1, "released"), (None, "draft")]
    assert set(listed[1]) == {
        "versionId",
        "version",
        "status",
        "name",
        "createdAt",
        "releasedAt",
        "configurableFields",
    }
    assert listed[1]["name"] == "New Sandbox orders" and listed[1]["releasedAt"] is None
    assert listed[0] == v1, "the released version reads back the same"

    # Users keep seeing the released version until the draft is released.
    shown = listed_workflow(await listing(client, tenant), workflow_id)
    assert (shown["name"], shown["version"]) == (v1["name"], 1)

    released = await client.post(
        RELEASE, json={"workflowIds": [workflow_id]}, headers=tenant.headers
    )
    assert released.status_code == 200, released.text
    assert actions(released.json()) == {("release", "workflow", "sandbox-new-orders")}
    assert released.json()["changes"][0]["detail"] == "version 2"
    listed = await versions(client, tenant, workflow_id)
    assert [(v["version"], v["status"]) for v in listed] == [(1, "released"), (2, "released")]
    assert listed[0] == v1
    shown = listed_workflow(await listing(client, tenant), workflow_id)
    assert (shown["name"], shown["version"]) == ("New Sandbox orders", 2)

    # A block change (a field's default) is a change too.
    assert (await apply(client, tenant, example_files(RENAMED)))["changed"] is False
    changed = await apply(client, tenant, example_files(RENAMED, NEW_URL), release=True)
    assert ("release", "workflow", "sandbox-new-orders") in actions(changed)
    assert [v["version"] for v in await versions(client, tenant, workflow_id)] == [1, 2, 3]


async def test_a_configurable_field_change_is_named_in_the_draft(
    client: Any, tenant: Any, db: async_sessionmaker[AsyncSession]
) -> None:
    await apply(client, tenant, example_files(), release=True)
    body = await apply(client, tenant, example_files(MORE_STATUSES))
    (draft,) = [c for c in body["changes"] if c["action"] == "draft"]
    assert draft["key"] == "sandbox-fulfillment-updated"
    assert "update_order_status.status" in draft["detail"]
    workflow_id = (await workflow_ids(db, tenant))["sandbox-fulfillment-updated"]
    released, pending = await versions(client, tenant, workflow_id)
    values = [
        [o["value"] for o in v["configurableFields"][0]["options"]] for v in (released, pending)
    ]
    assert values == [["shipped", "delivered"], ["shipped", "delivered", "cancelled"]]


async def test_going_back_to_the_released_content_discards_the_draft(
    client: Any, tenant: Any, db: async_sessionmaker[AsyncSession]
) -> None:
    await apply(client, tenant, example_files(), release=True)
    workflow_id = (await workflow_ids(db, tenant))["sandbox-new-orders"]
    await apply(client, tenant, example_files(RENAMED))
    assert len(await versions(client, tenant, workflow_id)) == 2

    back = await apply(client, tenant, example_files())
    assert ("update", "workflow", "sandbox-new-orders") in actions(back)
    assert [(v["version"], v["status"]) for v in await versions(client, tenant, workflow_id)] == [
        (1, "released")
    ]
    assert (await apply(client, tenant, example_files()))["changed"] is False


async def test_release_by_workflow_id_releases_only_those(
    client: Any, tenant: Any, db: async_sessionmaker[AsyncSession]
) -> None:
    await apply(client, tenant, example_files())
    ids = await workflow_ids(db, tenant)
    one = ids["bigcommerce-new-orders"]
    response = await client.post(RELEASE, json={"workflowIds": [one]}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert actions(response.json()) == {("release", "workflow", "bigcommerce-new-orders")}
    for key, workflow_id in ids.items():
        statuses = [v["status"] for v in await versions(client, tenant, workflow_id)]
        assert statuses == (["released"] if key == "bigcommerce-new-orders" else ["draft"])

    unknown = await client.post(
        RELEASE, json={"workflowIds": [one, "0" * 24]}, headers=tenant.headers
    )
    assert unknown.status_code == 404, unknown.text
    assert [v["status"] for v in await versions(client, tenant, ids["sandbox-new-orders"])] == [
        "draft"
    ]
    missing = await client.get(f"/2024-03/workflows/{'0' * 24}/versions", headers=tenant.headers)
    assert missing.status_code == 404


# --- released versions are immutable ----------------------------------------------------------


async def test_the_orm_refuses_to_change_or_delete_a_released_version(
    client: Any, tenant: Any, db: async_sessionmaker[AsyncSession]
) -> None:
    await apply(client, tenant, example_files(), release=True)
    await apply(client, tenant, example_files(RENAMED))  # a draft
    workflow_id = (await workflow_ids(db, tenant))["sandbox-new-orders"]
    before = await stored_versions(db, workflow_id)
    released_id = next(v["id"] for v in before if v["number"] == 1)
    draft_id = next(v["id"] for v in before if v["number"] is None)

    changes = {
        "definition": {"trigger": {"type": "custom_event", "event": "x"}, "blocks": []},
        "name": "Tampered",
        "fields": [],
        "content_hash": "0" * 64,
        "number": 7,
        "released_at": None,
    }
    for attribute, value in changes.items():
        async with db() as session:
            version = await session.get_one(WorkflowVersion, released_id)
            setattr(version, attribute, value)
            with pytest.raises(Conflict, match="released"):
                await session.flush()
            await session.rollback()
    async with db() as session:
        await session.delete(await session.get_one(WorkflowVersion, released_id))
        with pytest.raises(Conflict, match="released"):
            await session.flush()
        await session.rollback()

    # A draft may still change (that is what apply does).
    async with db() as session:
        draft = await session.get_one(WorkflowVersion, draft_id)
        draft.name = "Still a draft"
        await session.commit()
    after = await stored_versions(db, workflow_id)
    assert [v for v in after if v["number"] == 1] == [v for v in before if v["number"] == 1]
    assert next(v["name"] for v in after if v["number"] is None) == "Still a draft"


async def test_reapplying_old_content_makes_a_new_version_and_leaves_version_1_alone(
    client: Any, tenant: Any, db: async_sessionmaker[AsyncSession]
) -> None:
    await apply(client, tenant, example_files(), release=True)
    workflow_id = (await workflow_ids(db, tenant))["sandbox-new-orders"]
    (v1,) = await stored_versions(db, workflow_id)

    await apply(client, tenant, example_files(RENAMED), release=True)
    back = await apply(client, tenant, example_files(), release=True)
    assert ("release", "workflow", "sandbox-new-orders") in actions(back)

    stored = await stored_versions(db, workflow_id)
    assert [v["number"] for v in stored] == [1, 2, 3]
    assert stored[0] == v1, "version 1 is exactly as released"
    assert stored[2]["content_hash"] == v1["content_hash"]
    assert stored[2]["definition"] == v1["definition"]
    assert stored[2]["id"] != v1["id"]
    assert stored[1]["content_hash"] != v1["content_hash"]


# --- the management API is the ISV's ------------------------------------------------------


async def test_management_routes_need_the_api_key(client: Any, tenant: Any) -> None:
    body = {"files": example_files()}
    assert (await client.post(APPLY, json=body)).status_code == 401
    bad = {"Authorization": "Bearer not-a-key"}
    assert (await client.post(APPLY, json=body, headers=bad)).status_code == 401
    assert (await client.post(RELEASE, json={})).status_code == 401

    user = await client.post("/2024-03/users", json={"username": "u"}, headers=tenant.headers)
    token = await client.get(
        f"/2024-03/users/{user.json()['userId']}/token", headers=tenant.headers
    )
    as_user = {"x-alloy-user-token": token.json()["token"]}
    assert (await client.post(APPLY, json=body, headers=as_user)).status_code == 401
    bearer_user = {"Authorization": f"Bearer {token.json()['token']}"}
    assert (await client.post(APPLY, json=body, headers=bearer_user)).status_code == 401
    assert (await client.post(RELEASE, json={}, headers=as_user)).status_code == 401
    # Nothing was applied by any of them.
    assert (await apply(client, tenant, example_files(), dryRun=True))["changed"] is True
    events = await client.get("/2024-03/events", headers=tenant.headers)
    assert events.json() == {"data": []}


# --- the CLI ----------------------------------------------------------------------------------


def run_cli(settings: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_UI_")}
    env.update(
        EMBEDDED_UI_DATABASE_URL=settings.database_url,
        EMBEDDED_UI_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "embedded_ui", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=CLI_TIMEOUT,
        check=False,
    )


def cli_json(settings: Any, *args: str) -> Any:
    done = run_cli(settings, *args, "--json")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


async def test_cli_apply_dry_run_release_and_idempotence(
    client: Any, make_tenant: Any, settings: Any, db: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await make_tenant("fulfillmently", "development")
    where = ("examples/fulfillmently", "-w", "fulfillmently", "-e", "development")

    dry = cli_json(settings, "apply", *where, "--dry-run")
    assert dry["dryRun"] is True and dry["changed"] is True
    assert {("draft", "workflow", k) for k in EXAMPLE_WORKFLOWS} <= actions(dry)
    assert await workflow_ids(db, tenant) == {}

    released = cli_json(settings, "apply", *where, "--release")
    assert released["dryRun"] is False
    assert {("release", "workflow", k) for k in EXAMPLE_WORKFLOWS} <= actions(released)
    ids = await workflow_ids(db, tenant)
    assert set(ids) == EXAMPLE_WORKFLOWS

    again = cli_json(settings, "apply", *where)
    assert again["changed"] is False
    assert {c["action"] for c in again["changes"]} == {"unchanged"}

    # What the CLI applied is what the API serves, and the API agrees nothing changed.
    integrations = await listing(client, tenant)
    assert {i["app"] for i in integrations} == {"bigcommerce", "sandbox"}
    assert {w["workflowId"] for i in integrations for w in i["workflows"]} == set(ids.values())
    assert {w["version"] for i in integrations for w in i["workflows"]} == {1}
    assert (await apply(client, tenant, example_files()))["changed"] is False

    # The other environment of the same workspace saw none of it.
    production = await make_tenant("fulfillmently", "production")
    assert await workflow_ids(db, production) == {}


def test_cli_apply_refuses_an_invalid_file_naming_it(settings: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        (EXAMPLES / "sandbox.yaml").read_text().replace("action: update_order_status", "action: x")
    )
    done = run_cli(settings, "apply", str(broken), "-w", "nobody", "-e", "development")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "broken.yaml" in done.stderr and "workflows[1].blocks[0].action" in done.stderr
