"""Inbound app webhooks: ``POST /webhooks/{parentWorkflowId}/{userId}`` and
``POST /webhooks/{userId}``. No API key: apps call these. Each delivery is verified,
deduplicated and queued before the 202 (see :mod:`embedded_ui.engine.inbound`). The body
size is capped by the service's request limit (413 above it)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, post
from litestar.params import FromPath

from embedded_ui.api.schemas import error_responses


class WebhookAcceptedOut(msgspec.Struct, rename="camel"):
    message: str
    execution_ids: list[str]
    duplicate: bool = False


async def _accept(
    request: Request[Any, Any, Any], user_id: str, workflow_id: str | None
) -> WebhookAcceptedOut:
    runtime = request.app.state.runtime
    body = await request.body()
    _, ids, duplicate = await runtime.inbound.accept(
        user_id, workflow_id, dict(request.headers), body
    )
    if duplicate:
        return WebhookAcceptedOut("Already received; not queued again.", [], True)
    await runtime.queued(ids)
    return WebhookAcceptedOut(f"Queued {len(ids)} execution(s).", ids)


@post(
    "/webhooks/{workflow_id:str}/{user_id:str}",
    summary="Receive an app's webhook for one installed workflow",
    status_code=202,
    tags=["Webhooks"],
    responses=error_responses(401, 404, 413),
    security=[],
)
async def workflow_webhook(
    request: Request[Any, Any, Any], workflow_id: FromPath[str], user_id: FromPath[str]
) -> WebhookAcceptedOut:
    return await _accept(request, user_id, workflow_id)


@post(
    "/webhooks/{user_id:str}",
    summary="Receive an app's webhook for every installed workflow of a user",
    description="For apps that take one URL per account (Yotpo Loyalty, for example).",
    status_code=202,
    tags=["Webhooks"],
    responses=error_responses(401, 404, 413),
    security=[],
)
async def user_webhook(
    request: Request[Any, Any, Any], user_id: FromPath[str]
) -> WebhookAcceptedOut:
    return await _accept(request, user_id, None)
