"""The commerce REST API under /api: who am I, customers, orders, statuses, webhooks.

Every route wants ``Authorization: Bearer <access token or API key>``. An access token carries
scopes (`orders`, `customers`); an API key may do everything its account may. Data belongs to
one account: another account's ids are simply not found.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from litestar import Request, Response, Router, delete, get, post, put
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery

from embedded_ui.sandbox import webhooks
from embedded_ui.sandbox.deps import Sandbox
from embedded_ui.sandbox.errors import SandboxError, read_json_object
from embedded_ui.sandbox.store import EVENTS, ORDER_STATUSES, Account, SandboxState, now_iso

STATUS_KEYS = tuple(key for key, _ in ORDER_STATUSES)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True, slots=True)
class Principal:
    account: Account
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise SandboxError(
                403,
                f"This access token lacks the {scope} scope.",
                {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )


Authenticated = NamedDependency[Principal]


def _unauthorized(message: str, error: str = "invalid_token") -> SandboxError:
    return SandboxError(401, message, {"WWW-Authenticate": f'Bearer error="{error}"'})


async def authenticate(request: Request[Any, Any, Any], sandbox: Sandbox) -> Principal:
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise SandboxError(
            401,
            "Missing credentials: send Authorization: Bearer <access token or API key>.",
            {"WWW-Authenticate": "Bearer"},
        )
    if credential.startswith("sbx_"):
        account = sandbox.account_by_api_key(credential)
        if account is None:
            raise _unauthorized("Invalid API key.")
        return Principal(account, frozenset(("orders", "customers")))
    token = sandbox.tokens_by_access.get(credential)
    if token is None or token.access_revoked:
        raise _unauthorized("Invalid access token.")
    if token.access_expired():
        raise _unauthorized("The access token expired.")
    account = sandbox.accounts.get(token.account_id)
    if account is None:
        raise _unauthorized("Invalid access token.")
    return Principal(account, frozenset(token.scope.split()))


async def _count_call(request: Request[Any, Any, Any]) -> None:
    state: SandboxState = request.app.state.sandbox
    state.stats.api_calls += 1


def _optional_text(body: dict[str, Any], name: str, limit: int = 200) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise SandboxError(422, f"{name} must be a string of at most {limit} characters.")
    return value.strip() or None


def _with_events(
    content: dict[str, Any], status_code: int, sandbox: Sandbox, deliveries: list[Any]
) -> Response[dict[str, Any]]:
    background = BackgroundTask(webhooks.send, sandbox, deliveries) if deliveries else None
    return Response(content, status_code=status_code, background=background)


# who am I ------------------------------------------------------------------------------------


@get("/me")
async def me(principal: Authenticated) -> dict[str, str]:
    return principal.account.public()


# customers -----------------------------------------------------------------------------------


@get("/customers")
async def list_customers(
    principal: Authenticated, sandbox: Sandbox, email: FromQuery[str | None] = None
) -> dict[str, Any]:
    principal.require("customers")
    account_id = principal.account.id
    found = [
        c.public()
        for c in sandbox.customers.values()
        if c.account_id == account_id and (email is None or c.email.lower() == email.lower())
    ]
    return {"data": found}


@get("/customers/{customer_id:str}")
async def get_customer(
    principal: Authenticated, sandbox: Sandbox, customer_id: FromPath[str]
) -> dict[str, Any]:
    principal.require("customers")
    customer = sandbox.owned(sandbox.customers, customer_id, principal.account.id)
    if customer is None:
        raise SandboxError(404, f"No customer {customer_id}.")
    return customer.public()


@post("/customers")
async def create_customer(
    request: Request[Any, Any, Any], principal: Authenticated, sandbox: Sandbox
) -> Response[dict[str, Any]]:
    principal.require("customers")
    body = await read_json_object(request)
    email = _optional_text(body, "email", 254)
    if email is None or not _EMAIL.match(email):
        raise SandboxError(422, "email is required and must be an email address.")
    account_id = principal.account.id
    if any(
        c.account_id == account_id and c.email.lower() == email.lower()
        for c in sandbox.customers.values()
    ):
        raise SandboxError(409, f"A customer with email {email} already exists.")
    customer = sandbox.add_customer(account_id, email, _optional_text(body, "name"))
    data = customer.public()
    deliveries = webhooks.prepare_event(sandbox, account_id, "customer.created", data)
    return _with_events(data, 201, sandbox, deliveries)


# orders --------------------------------------------------------------------------------------


@get("/orders")
async def list_orders(
    principal: Authenticated, sandbox: Sandbox, status: FromQuery[str | None] = None
) -> dict[str, Any]:
    principal.require("orders")
    if status is not None and status not in STATUS_KEYS:
        raise SandboxError(422, f"status must be one of {', '.join(STATUS_KEYS)}.")
    account_id = principal.account.id
    found = [
        o.public()
        for o in sandbox.orders.values()
        if o.account_id == account_id and (status is None or o.status == status)
    ]
    return {"data": found}


def _total(body: dict[str, Any]) -> str:
    raw = body.get("total", "0")
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise SandboxError(422, "total must be a number such as 19.99.")
    try:
        amount = Decimal(str(raw))
    except InvalidOperation:
        raise SandboxError(422, "total must be a number such as 19.99.") from None
    if not amount.is_finite() or amount < 0 or amount > Decimal("1e9"):
        raise SandboxError(422, "total must be between 0 and 1000000000.")
    return str(amount.quantize(Decimal("0.01")))


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    items = body.get("items", [])
    if not isinstance(items, list) or len(items) > 100:
        raise SandboxError(422, "items must be a list of at most 100 objects.")
    if not all(isinstance(item, dict) for item in items):
        raise SandboxError(422, "items must be a list of at most 100 objects.")
    return items


def _status(body: dict[str, Any], default: str | None = None) -> str:
    status = body.get("status", default)
    if status not in STATUS_KEYS:
        raise SandboxError(
            422, f"status must be one of {', '.join(STATUS_KEYS)}; got {json.dumps(status)}."
        )
    return str(status)


@post("/orders")
async def create_order(
    request: Request[Any, Any, Any], principal: Authenticated, sandbox: Sandbox
) -> Response[dict[str, Any]]:
    principal.require("orders")
    body = await read_json_object(request)
    account_id = principal.account.id
    customer_id = _optional_text(body, "customer_id")
    if customer_id is not None and not sandbox.owned(sandbox.customers, customer_id, account_id):
        raise SandboxError(422, f"customer_id {customer_id} is not one of your customers.")
    currency = (_optional_text(body, "currency", 3) or "USD").upper()
    if not _CURRENCY.match(currency):
        raise SandboxError(422, "currency must be a three-letter code such as USD.")
    order = sandbox.add_order(
        account_id,
        customer_id,
        _status(body, "pending"),
        _total(body),
        currency,
        _items(body),
    )
    data = order.public()
    deliveries = webhooks.prepare_event(sandbox, account_id, "order.created", data)
    return _with_events(data, 201, sandbox, deliveries)


@get("/orders/{order_id:str}")
async def get_order(
    principal: Authenticated, sandbox: Sandbox, order_id: FromPath[str]
) -> dict[str, Any]:
    principal.require("orders")
    order = sandbox.owned(sandbox.orders, order_id, principal.account.id)
    if order is None:
        raise SandboxError(404, f"No order {order_id}.")
    return order.public()


@put("/orders/{order_id:str}/status")
async def update_order_status(
    request: Request[Any, Any, Any],
    principal: Authenticated,
    sandbox: Sandbox,
    order_id: FromPath[str],
) -> Response[dict[str, Any]]:
    principal.require("orders")
    order = sandbox.owned(sandbox.orders, order_id, principal.account.id)
    if order is None:
        raise SandboxError(404, f"No order {order_id}.")
    status = _status(await read_json_object(request))
    previous = order.status
    deliveries: list[Any] = []
    if status != previous:
        order.status, order.updated_at = status, now_iso()
        data = {**order.public(), "previous_status": previous}
        deliveries = webhooks.prepare_event(sandbox, order.account_id, "order.updated", data)
    return _with_events(order.public(), 200, sandbox, deliveries)


@get("/order-statuses")
async def order_statuses(principal: Authenticated) -> dict[str, Any]:
    principal.require("orders")
    return {"data": [{"key": key, "name": name} for key, name in ORDER_STATUSES]}


# webhook subscriptions -----------------------------------------------------------------------


@post("/webhooks", status_code=201)
async def create_webhook(
    request: Request[Any, Any, Any], principal: Authenticated, sandbox: Sandbox
) -> dict[str, Any]:
    body = await read_json_object(request)
    url = _optional_text(body, "url", 2048)
    parts = urlsplit(url or "")
    if url is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SandboxError(422, "url must be an absolute http(s) URL.")
    event = body.get("event")
    if event not in EVENTS:
        raise SandboxError(422, f"event must be one of {', '.join(EVENTS)}.")
    subscription = webhooks.subscribe(sandbox, principal.account.id, url, str(event))
    # The signing secret is shown only in this response.
    return {**subscription.public(), "secret": subscription.secret}


@get("/webhooks")
async def list_webhooks(principal: Authenticated, sandbox: Sandbox) -> dict[str, Any]:
    account_id = principal.account.id
    return {
        "data": [s.public() for s in sandbox.subscriptions.values() if s.account_id == account_id]
    }


@delete("/webhooks/{webhook_id:str}", status_code=204)
async def delete_webhook(
    principal: Authenticated, sandbox: Sandbox, webhook_id: FromPath[str]
) -> None:
    if sandbox.owned(sandbox.subscriptions, webhook_id, principal.account.id) is None:
        raise SandboxError(404, f"No webhook subscription {webhook_id}.")
    del sandbox.subscriptions[webhook_id]


api_router = Router(
    path="/api",
    route_handlers=[
        me,
        list_customers,
        get_customer,
        create_customer,
        list_orders,
        create_order,
        get_order,
        update_order_status,
        order_statuses,
        create_webhook,
        list_webhooks,
        delete_webhook,
    ],
    dependencies={"principal": Provide(authenticate)},
    before_request=_count_call,
    include_in_schema=False,
)
