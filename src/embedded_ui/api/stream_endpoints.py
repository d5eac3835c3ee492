"""``/stream-endpoints``: the URLs Stream Data blocks and the error URL deliver to, each with
its own Standard Webhooks signing secret, which the ISV needs to verify what it receives. An
endpoint is created at its first delivery, or ahead of it with ``POST``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody

from embedded_ui.api.auth import Principal
from embedded_ui.api.schemas import error_responses
from embedded_ui.engine.endpoints import Endpoint
from embedded_ui.errors import InvalidRequest, NotFound
from embedded_ui.store import iso_ms


class EndpointIn(msgspec.Struct, forbid_unknown_fields=True):
    url: str


class EndpointOut(msgspec.Struct, rename="camel"):
    id: str
    url: str
    secret: str
    """`whsec_…`: verify `webhook-signature` with it (docs/engine.md)."""
    disabled: bool
    disabled_at: str | None
    disabled_reason: str | None


class EndpointListOut(msgspec.Struct):
    data: list[EndpointOut]


def _out(endpoint: Endpoint) -> EndpointOut:
    return EndpointOut(
        endpoint.id,
        endpoint.url,
        endpoint.secret,
        endpoint.disabled_at is not None,
        iso_ms(endpoint.disabled_at) if endpoint.disabled_at else None,
        endpoint.disabled_reason,
    )


class StreamEndpointsController(Controller):
    path = "/stream-endpoints"
    tags = ["Engine"]

    @get("/", summary="List Stream Data endpoints and their secrets", responses=error_responses())
    async def list_endpoints(self, request: Request[Principal, Any, Any]) -> EndpointListOut:
        endpoints = await request.app.state.runtime.endpoints.list(request.user.scope)
        return EndpointListOut([_out(e) for e in endpoints])

    @post(
        "/",
        summary="Register a Stream Data endpoint ahead of its first delivery",
        description="Idempotent: an existing endpoint is returned as it is.",
        status_code=200,
        responses=error_responses(400),
    )
    async def register(
        self, data: JSONBody[EndpointIn], request: Request[Principal, Any, Any]
    ) -> EndpointOut:
        parts = urlsplit(data.url)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(data.url) > 2048:
            raise InvalidRequest("url: expected an absolute http(s) URL.", field="url")
        runtime = request.app.state.runtime
        return _out(await runtime.endpoints.get_or_create(request.user.scope, data.url))

    @post(
        "/{endpoint_id:str}/enable",
        summary="Enable an endpoint a 410 answer disabled",
        status_code=200,
        responses=error_responses(404),
    )
    async def enable(
        self, endpoint_id: FromPath[str], request: Request[Principal, Any, Any]
    ) -> EndpointListOut:
        runtime = request.app.state.runtime
        if not await runtime.endpoints.enable(request.user.scope, endpoint_id):
            raise NotFound(f"No stream endpoint {endpoint_id!r} in this environment.")
        endpoints = await runtime.endpoints.list(request.user.scope)
        return EndpointListOut([_out(e) for e in endpoints if e.id == endpoint_id])
