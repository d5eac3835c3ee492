"""One function per block type. Each takes the block (from the released definition, with the
user's configured values already put in place of ``configurable`` markers), its inputs as
:func:`render_inputs` rendered them (once: the runner logs the same values), the template
context, and the worker's shared tools; it returns the block's output or raises
:class:`BlockFailed` (retryable or not) or :class:`StopExecution` (a filter said no)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from embedded_ui.catalog import App
from embedded_ui.catalog.client import AppCallFailed, call_app
from embedded_ui.credentials.vault import Vault
from embedded_ui.engine import data_blocks
from embedded_ui.engine.delivery import Deliverer
from embedded_ui.engine.destination_inserts import DestinationPool
from embedded_ui.engine.destinations import (
    DestinationError,
    DestinationService,
    check_reachable,
    normalise_url,
)
from embedded_ui.engine.endpoints import Endpoints
from embedded_ui.engine.mapping import MappingError, render
from embedded_ui.engine.triggers import validator_for
from embedded_ui.errors import InvalidRequest, NotFound
from embedded_ui.oauth.refresh import CredentialBroken, ProviderUnavailable, fresh_secret
from embedded_ui.settings import Settings
from embedded_ui.store import Scope

MAX_OUTPUT_BYTES = 65_536
"""A block's output kept in the logs; larger outputs are cut to a note."""


class BlockFailed(Exception):
    def __init__(
        self, message: str, *, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class StopExecution(Exception):
    """A filter's condition was false: the rest of the workflow is skipped."""


class Destinations:
    """Opens a destination's URL by name for `database` blocks (one row read each time, so a
    changed URL applies to the next run)."""

    def __init__(self, engine: AsyncEngine, vault: Vault, settings: Settings) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._vault = vault
        self._settings = settings

    async def url_for(self, scope: Scope, name: str) -> str:
        """The destination's URL, checked again (its host may resolve elsewhere by now)."""
        async with self._sessions() as session:
            url = await DestinationService(session, scope, self._vault, actor="engine").url(name)
        try:
            await check_reachable(normalise_url(url), self._settings)
        except InvalidRequest as exc:
            raise BlockFailed(
                f"Destination {name!r}: {exc.message.removeprefix('url: ')}"
            ) from None
        return url


@dataclass(frozen=True, slots=True)
class Tools:
    """What blocks share within one worker process."""

    engine: AsyncEngine
    settings: Settings
    vault: Vault
    apps: Mapping[str, App]
    http: httpx.AsyncClient
    deliverer: Deliverer
    endpoints: Endpoints
    destinations: Destinations
    destination_pool: DestinationPool
    service_values: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Job:
    """The execution a block runs in."""

    execution_id: str
    scope: Scope
    user_id: str
    workflow_id: str
    app: str
    credential_ids: Mapping[str, str]


_NOT_INPUTS = ("id", "type", "name")
_RENDERED_IN_A_THREAD = ("transform", "database")
"""Blocks whose templates may build large values (a row per item of a big trigger): they are
rendered in a worker thread, and the event loop keeps serving meanwhile."""


async def render_inputs(block: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """The block's fields but ``id``, ``type`` and ``name``, with their templates evaluated
    against the context: what the block runs with and what its log entry shows, rendered
    once. A filter's fields are returned as written: its condition is an expression that
    the filter evaluates itself (``truthy``), and the log shows it as the ISV wrote it."""
    fields = {key: value for key, value in block.items() if key not in _NOT_INPUTS}
    if block["type"] == "filter":
        return fields
    try:
        if block["type"] in _RENDERED_IN_A_THREAD:
            return await asyncio.to_thread(render, fields, context)
        rendered: dict[str, Any] = render(fields, context)
    except MappingError as exc:
        raise BlockFailed(exc.message) from None
    return rendered


async def run_block(
    block: Mapping[str, Any],
    inputs: Mapping[str, Any],
    context: Mapping[str, Any],
    job: Job,
    tools: Tools,
) -> Any:
    kind = block["type"]
    try:
        if kind == "stream_data":
            return await stream_data(block, inputs, context, job, tools)
        if kind == "app_action":
            return await app_action(block, inputs, job, tools)
        if kind == "transform":
            return inputs["output"]
        if kind == "filter":
            if not data_blocks.run_filter(block, context):
                raise StopExecution
            return {"passed": True}
        if kind == "database":
            url = await tools.destinations.url_for(job.scope, str(block["destination"]))
            return await data_blocks.run_database(block, inputs, url, tools.destination_pool)
    except (MappingError, DestinationError) as exc:
        raise BlockFailed(exc.message) from None
    except NotFound as exc:
        raise BlockFailed(exc.message) from None
    raise BlockFailed(f"Unknown block type {kind!r}.")


async def stream_data(
    block: Mapping[str, Any],
    inputs: Mapping[str, Any],
    context: Mapping[str, Any],
    job: Job,
    tools: Tools,
) -> Any:
    url = inputs["url"]
    if not isinstance(url, str) or not url:
        raise BlockFailed("The Stream Data URL is empty.")
    # Without ``data`` the trigger is sent as it came: a "{{ }}" in it is the sender's text.
    data = inputs["data"] if "data" in inputs else context["trigger"]
    body = msgspec.json.encode(data)  # compact UTF-8, as json.dumps(separators, no ASCII escapes)
    endpoint = await tools.endpoints.get_or_create(job.scope, url)
    if endpoint.disabled_at is not None:
        raise BlockFailed(
            f"The endpoint {url} is disabled ({endpoint.disabled_reason}); enable it again "
            "with POST /stream-endpoints/{id}/enable."
        )
    outcome = await tools.deliverer.post(
        url,
        body,
        secret=endpoint.secret,
        msg_id=f"msg_{job.execution_id}_{block['id']}",
        extra_headers={
            "X-Alloy-WorkflowId": job.workflow_id,
            "X-Alloy-UserId": job.user_id,
            "X-Alloy-ExecutionUuid": job.execution_id,
        },
    )
    if outcome.kind == "delivered":
        return {"url": url, "status": outcome.status, "durationMs": outcome.duration_ms}
    if outcome.kind == "gone":
        reason = f"{url} answered 410 Gone"
        await tools.endpoints.disable(job.scope, endpoint.id, reason)
        raise BlockFailed(f"{reason}: the endpoint is now disabled.")
    described = outcome.error or f"HTTP {outcome.status}"
    raise BlockFailed(
        f"Delivery to {url} failed: {described}.",
        retryable=outcome.kind == "retry",
        retry_after=outcome.retry_after,
    )


async def app_action(
    block: Mapping[str, Any], rendered: Mapping[str, Any], job: Job, tools: Tools
) -> Any:
    app = tools.apps.get(job.app)
    action = app.action(str(block["action"])) if app else None
    if app is None or action is None:
        raise BlockFailed(f"The app {job.app!r} has no action {block['action']!r}.")
    inputs = dict(rendered.get("inputs", {}))
    problems = sorted(
        validator_for(action.input_schema).iter_errors(inputs),
        key=lambda e: list(e.path),
    )
    if problems:
        where = "/".join(str(p) for p in problems[0].path) or "inputs"
        raise BlockFailed(f"{action.name}: {where}: {problems[0].message}")
    credential_id = job.credential_ids.get(app.key)
    if credential_id is None:
        raise BlockFailed(f"No {app.name} connection for this installation: reconnect it.")

    async def attempt(force: bool) -> Any:
        secret = await fresh_secret(
            tools.engine,
            job.scope,
            credential_id,
            vault=tools.vault,
            apps=tools.apps,
            settings=tools.settings,
            force=force,
        )
        response = await call_app(
            tools.http, app, action.request, secret, inputs=inputs, service=tools.service_values
        )
        return response.body

    try:
        try:
            return await attempt(force=False)
        except AppCallFailed as exc:
            if exc.status != 401:
                raise
            return await attempt(force=True)  # one refresh, one retry
    except CredentialBroken as exc:
        raise BlockFailed(str(exc)) from None
    except ProviderUnavailable as exc:
        raise BlockFailed(str(exc), retryable=True) from None
    except AppCallFailed as exc:
        retryable = exc.status is None or exc.status in (408, 425, 429) or exc.status >= 500
        raise BlockFailed(exc.reason, retryable=retryable) from None
