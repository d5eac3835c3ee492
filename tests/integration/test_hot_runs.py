"""``POST /run/event`` on the hot path (api/hot.py, api/runs.py's ``run_event_inline``).

As in test_hot_path.py, each request goes to an instance with the hot path on and to one
with it off, over the same database, and a spy tells which requests the hot path answered.
A success must store the same executions the ordinary path stores, answer with the same
status, headers and body shape, and wake the workers (the executions are delivered); every
other request must get the ordinary answer, with nothing written by the hot path.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

# The modules this one builds on, and their fixtures (``x as x``: re-exported for pytest).
from test_engine_runs import EVENT, Shop, V, install
from test_engine_runs import receiver as receiver
from test_hot_path import Spy, _comparable_headers
from test_hot_path import pair as pair

from conftest import SandboxProcess, Tenant
from embedded_ui.settings import Settings
from embedded_ui.store import Execution
from receiver import Receiver

RUN_EVENT = f"{V}/run/event"
Pair = tuple[AsyncTestClient[Litestar], AsyncTestClient[Litestar], Spy]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Loopback receivers allowed, as in test_engine_runs.py."""
    return replace(settings, outbound_allow=("127.0.0.0/8",))


@pytest.fixture
async def shop(
    client: Any, tenant: Tenant, sandbox: SandboxProcess, receiver: Receiver, pair: Pair
) -> Shop:
    return await install(client, tenant, sandbox, receiver)


async def _executions(database_url: str) -> list[dict[str, Any]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(Execution.__table__).order_by("created_at"))
            return [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()


async def _count(database_url: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(Execution)) or 0)
    finally:
        await engine.dispose()


async def _post(client: AsyncTestClient[Litestar], body: Any, headers: dict[str, str]) -> Response:
    if isinstance(body, bytes):
        return await client.post(RUN_EVENT, content=body, headers=headers)
    return await client.post(RUN_EVENT, json=body, headers=headers)


def _stored(row: dict[str, Any]) -> dict[str, Any]:
    """What an execution row says apart from its id and times."""
    varying = {"id", "available_at", "created_at", "started_at", "stopped_at", "lease_until"}
    return {k: v for k, v in row.items() if k not in varying and k not in ("status", "results")}


async def test_an_event_is_stored_answered_and_delivered_by_the_hot_path(
    pair: Pair, shop: Shop, database_url: str
) -> None:
    hot, ordinary, spy = pair
    order_id = shop.new_order()
    body = {"event": EVENT, "userId": shop.user_id, "data": {"orderId": order_id}}
    spy.answered.clear()
    fast = await _post(hot, body, shop.headers)
    assert spy.answered == [(RUN_EVENT, True)]
    slow = await _post(ordinary, {**body, "userId": "merchant"}, shop.headers)
    assert fast.status_code == slow.status_code == 202, fast.text
    assert _comparable_headers(fast) == _comparable_headers(slow)
    assert fast.json()["message"] == slow.json()["message"] == "Queued 2 executions."
    assert fast.json().keys() == slow.json().keys() == {"message", "executionIds"}
    # Byte for byte, but for the ids themselves.
    fast_ids, slow_ids = fast.json()["executionIds"], slow.json()["executionIds"]
    assert (
        fast.content.replace(fast_ids[0].encode(), slow_ids[0].encode()).replace(
            fast_ids[1].encode(), slow_ids[1].encode()
        )
        == slow.content
    )

    # The same rows, stored before the answer; the workers were woken and deliver them.
    delivered = await shop.receiver.wait_for(2)
    assert [r.json() for r in delivered] == [{"order": order_id, "who": "merchant"}] * 2
    rows = {row["id"]: row for row in await _executions(database_url)}
    assert rows.keys() == set(fast_ids) | set(slow_ids)
    by_hot = sorted((_stored(rows[i]) for i in fast_ids), key=lambda r: r["workflow_id"])
    by_ordinary = sorted((_stored(rows[i]) for i in slow_ids), key=lambda r: r["workflow_id"])
    assert by_hot == by_ordinary
    assert by_hot[0]["trigger"] == {"orderId": order_id}
    assert by_hot[0]["trigger_type"] == "custom_event"
    stream = await replace(shop, client=hot).settled("stream", 2)
    assert {r["executionId"] for r in stream} <= set(fast_ids) | set(slow_ids)
    assert all(r["status"] == "succeeded" for r in stream)


async def test_a_user_without_matching_workflows_gets_the_same_empty_answer(
    pair: Pair, shop: Shop, database_url: str
) -> None:
    hot, ordinary, spy = pair
    created = await hot.post(f"{V}/users", json={"username": "idle"}, headers=shop.headers)
    body = {"event": EVENT, "userId": created.json()["userId"], "data": {"orderId": "1"}}
    spy.answered.clear()
    fast, slow = await _post(hot, body, shop.headers), await _post(ordinary, body, shop.headers)
    assert spy.answered == [(RUN_EVENT, True)]
    assert fast.status_code == slow.status_code == 202
    assert fast.content == slow.content == b'{"message":"Queued 0 executions.","executionIds":[]}'
    assert _comparable_headers(fast) == _comparable_headers(slow)
    assert await _count(database_url) == 0


async def test_everything_else_falls_through_with_nothing_written(
    pair: Pair, shop: Shop, database_url: str
) -> None:
    hot, ordinary, spy = pair
    ok = {"event": EVENT, "userId": shop.user_id, "data": {"orderId": "1"}}
    json_type = {**shop.headers, "Content-Type": "application/json"}
    cases: list[tuple[str, Any, dict[str, str], int]] = [
        ("data refused by the schema", {**ok, "data": {"orderId": 7}}, shop.headers, 422),
        ("required field missing", {**ok, "data": {}}, shop.headers, 422),
        ("unknown event", {**ok, "event": "Nope"}, shop.headers, 404),
        ("unknown user", {**ok, "userId": "nobody"}, shop.headers, 404),
        ("invalid JSON", b'{"event": ', json_type, 400),
        ("unknown field", {**ok, "extra": 1}, shop.headers, 400),
        ("missing userId", {"event": EVENT}, shop.headers, 400),
        ("wrong type", {**ok, "userId": 5}, shop.headers, 400),
        ("no key", ok, {}, 401),
        ("CORS", ok, {**shop.headers, "Origin": "https://isv.example"}, 202),
    ]
    for name, body, headers, status in cases:
        spy.answered.clear()
        fast, slow = await _post(hot, body, headers), await _post(ordinary, body, headers)
        assert fast.status_code == slow.status_code == status, (name, fast.text, slow.text)
        assert all(not answered for _, answered in spy.answered), name
        if status >= 400:
            assert fast.content == slow.content, name
            assert _comparable_headers(fast) == _comparable_headers(slow), name
            assert await _count(database_url) == 0, name


async def test_an_idempotency_key_keeps_the_ordinary_path(
    pair: Pair, shop: Shop, database_url: str
) -> None:
    hot, ordinary, spy = pair
    body = {"event": EVENT, "userId": shop.user_id, "data": {"orderId": "i-1"}}
    headers = {**shop.headers, "Idempotency-Key": "hot-1"}
    spy.answered.clear()
    first = await _post(hot, body, headers)
    assert first.status_code == 202, first.text
    assert spy.answered == []  # not even tried: the route is left to Litestar
    again = await _post(ordinary, body, headers)
    assert again.content == first.content  # the ordinary path remembered the first answer
    assert _comparable_headers(again) == _comparable_headers(first)
    conflict = await _post(hot, {**body, "data": {"orderId": "other"}}, headers)
    assert conflict.status_code == 409
    assert await _count(database_url) == 2
