"""Basic and custom-field credentials through `POST /users/{userId}/credentials`: checked
against the fields' patterns, verified with the app's own verification request, saved only
when the app accepts it, and never repeated in a response.

The apps (ShipStation: HTTP basic; ShipEdge: custom fields in headers and in the host name)
are not reachable from tests, so doubles are mounted on the service's HTTP client the way
the suite mounts BigCommerce's: the service's real request-building code runs, and the
doubles record exactly what it sent."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from conftest import PUBLIC_URL, bigcommerce_double
from embedded_ui.app import create_app
from embedded_ui.settings import Settings

V = "/2024-03"


class AppDouble:
    """Answers like the app: 200 for the accepted values, the app's own 401 otherwise."""

    def __init__(self, accept: Any, refusal: dict[str, Any]) -> None:
        self.accept = accept
        self.refusal = refusal
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.accept(request):
            return httpx.Response(200, json={"ok": True})
        return httpx.Response(401, json=self.refusal)


SHIPSTATION_KEY = secrets.token_hex(16)
SHIPSTATION_SECRET = secrets.token_hex(16)
SHIPEDGE_KEY = "Se" + secrets.token_hex(12)


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def shipstation() -> AppDouble:
    expected = _basic(SHIPSTATION_KEY, SHIPSTATION_SECRET)
    return AppDouble(
        lambda request: request.headers.get("Authorization") == expected,
        {"Message": "Authorization has been denied for this request."},
    )


@pytest.fixture
def shipedge() -> AppDouble:
    return AppDouble(
        lambda request: (
            request.headers.get("AccountID") == "100" and request.headers.get("Key") == SHIPEDGE_KEY
        ),
        {"response": {"message": "Invalid AccountID or Key"}},
    )


@pytest.fixture
def app(settings: Settings, shipstation: AppDouble, shipedge: AppDouble) -> Litestar:
    created = create_app(settings)
    created.state.http = httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        mounts={
            "https://api.bigcommerce.com": httpx.MockTransport(bigcommerce_double),
            "https://ssapi.shipstation.com": httpx.MockTransport(shipstation),
            "https://*.shipedge.com": httpx.MockTransport(shipedge),
        },
    )
    return created


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app, base_url=PUBLIC_URL) as test_client:
        yield test_client


@pytest.fixture
async def user_id(client: AsyncTestClient[Litestar], tenant: Any) -> str:
    created = await client.post(f"{V}/users", json={"username": "3pl"}, headers=tenant.headers)
    assert created.status_code == 201, created.text
    found: str = created.json()["userId"]
    return found


async def save(
    client: AsyncTestClient[Litestar], tenant: Any, user_id: str, app: str, kind: str, data: Any
) -> httpx.Response:
    return await client.post(
        f"{V}/users/{user_id}/credentials",
        json={"app": app, "type": kind, "data": data},
        headers=tenant.headers,
    )


async def listed(client: AsyncTestClient[Litestar], tenant: Any, user_id: str) -> list[Any]:
    response = await client.get(f"{V}/users/{user_id}/credentials", headers=tenant.headers)
    assert response.status_code == 200, response.text
    data: list[Any] = response.json()["data"]
    return data


async def test_a_basic_credential_is_verified_with_basic_auth_and_saved(
    client: AsyncTestClient[Litestar], tenant: Any, user_id: str, shipstation: AppDouble
) -> None:
    data = {"api_key": SHIPSTATION_KEY, "api_secret": SHIPSTATION_SECRET}
    response = await save(client, tenant, user_id, "shipstation", "basic", data)
    assert response.status_code == 201, response.text

    (request,) = shipstation.requests
    assert request.method == "GET"
    assert str(request.url) == "https://ssapi.shipstation.com/stores"
    assert request.headers["Authorization"] == _basic(SHIPSTATION_KEY, SHIPSTATION_SECRET)
    assert request.headers["Accept"] == "application/json"

    body = response.json()
    assert body["app"] == "shipstation" and body["type"] == "basic"
    assert body["details"] == {}  # both fields are secret
    for secret in data.values():
        assert secret not in response.text
    (saved,) = await listed(client, tenant, user_id)
    assert saved["credentialId"] == body["credentialId"]
    assert SHIPSTATION_SECRET not in json.dumps(saved)


async def test_a_basic_credential_the_app_refuses_is_422_with_its_reason_and_saves_nothing(
    client: AsyncTestClient[Litestar], tenant: Any, user_id: str, shipstation: AppDouble
) -> None:
    wrong = secrets.token_hex(16)
    data = {"api_key": SHIPSTATION_KEY, "api_secret": wrong}
    response = await save(client, tenant, user_id, "shipstation", "basic", data)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "credential_rejected" and body["appStatus"] == 401
    assert "Authorization has been denied for this request." in body["message"]
    assert wrong not in response.text and SHIPSTATION_KEY not in response.text

    (request,) = shipstation.requests
    assert request.headers["Authorization"] == _basic(SHIPSTATION_KEY, wrong)
    assert await listed(client, tenant, user_id) == []


async def test_a_basic_credential_off_pattern_is_400_and_the_app_is_not_called(
    client: AsyncTestClient[Litestar], tenant: Any, user_id: str, shipstation: AppDouble
) -> None:
    data = {"api_key": SHIPSTATION_KEY, "api_secret": "not-hex-" + "z" * 24}
    response = await save(client, tenant, user_id, "shipstation", "basic", data)
    assert response.status_code == 400, response.text
    assert "data.api_secret" in response.json()["message"]
    assert data["api_secret"] not in response.text
    assert shipstation.requests == []
    assert await listed(client, tenant, user_id) == []


async def test_a_custom_field_credential_is_verified_with_its_fields_and_saved(
    client: AsyncTestClient[Litestar], tenant: Any, user_id: str, shipedge: AppDouble
) -> None:
    data = {"instance": "mywarehouse", "account_id": "100", "api_key": SHIPEDGE_KEY}
    response = await save(client, tenant, user_id, "shipedge", "custom", data)
    assert response.status_code == 201, response.text

    (request,) = shipedge.requests
    assert request.method == "POST"
    assert str(request.url) == "https://mywarehouse.shipedge.com/apirest/v4/oms/ping"
    assert request.headers["AccountID"] == "100"
    assert request.headers["Key"] == SHIPEDGE_KEY
    assert "Authorization" not in request.headers

    body = response.json()
    assert body["type"] == "custom"
    # The non-secret fields are shown; the key never is.
    assert body["details"] == {"instance": "mywarehouse", "account_id": "100"}
    assert SHIPEDGE_KEY not in response.text
    (saved,) = await listed(client, tenant, user_id)
    assert saved["details"] == body["details"]


async def test_a_custom_field_credential_the_app_refuses_saves_nothing(
    client: AsyncTestClient[Litestar], tenant: Any, user_id: str, shipedge: AppDouble
) -> None:
    data = {"instance": "mywarehouse", "account_id": "200", "api_key": SHIPEDGE_KEY}
    response = await save(client, tenant, user_id, "shipedge", "custom", data)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "credential_rejected" and body["appStatus"] == 401
    assert "Invalid AccountID or Key" in body["message"]
    assert SHIPEDGE_KEY not in response.text

    (request,) = shipedge.requests
    assert request.headers["AccountID"] == "200" and request.headers["Key"] == SHIPEDGE_KEY
    assert await listed(client, tenant, user_id) == []
