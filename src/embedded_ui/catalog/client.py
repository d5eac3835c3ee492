"""Calls to an app's API as its catalog file describes them: verification requests, option
sources and (later) actions, with a user's credential applied.

Every call has a timeout, follows no redirect (a 3xx is an answer, not an invitation) and
reads at most ``MAX_RESPONSE_BYTES``. Error reasons come from the app's own error message
(``error_message_path``) with every secret value of the credential scrubbed out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from embedded_ui.catalog.model import App, OptionSource, Request
from embedded_ui.catalog.templates import MissingValue, fill, fill_text, fill_url

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_RESPONSE_BYTES = 1_048_576
MAX_REASON = 300
MAX_OPTIONS = 500


class AppCallFailed(Exception):
    """The app refused or could not be reached. ``reason`` is safe to show to the user."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class AppResponse:
    status: int
    body: Any


def dig(value: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _scrub(text: str, secrets: Mapping[str, Any]) -> str:
    for value in secrets.values():
        if isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, "***")
    return text[:MAX_REASON]


def build_request(
    app: App, request: Request, values: Mapping[str, Any]
) -> tuple[str, str, dict[str, str], dict[str, str], Any, tuple[str, str] | None]:
    """``(method, url, headers, query, json body, basic auth)`` for one catalog request."""
    url = fill_url(app.api.base_url, request.path, values)
    headers = {name: fill_text(value, values) for name, value in app.api.headers.items()}
    query = {k: str(fill(v, values)) for k, v in {**app.api.query, **request.query}.items()}
    body = fill(request.body, values) if request.body is not None else None
    auth = None
    if app.api.basic_auth:
        auth = (
            fill_text(app.api.basic_auth.get("username", ""), values),
            fill_text(app.api.basic_auth.get("password", ""), values),
        )
    return request.method, url, headers, query, body, auth


async def call_app(
    http: httpx.AsyncClient,
    app: App,
    request: Request,
    secret: Mapping[str, Any],
    *,
    inputs: Mapping[str, Any] | None = None,
    service: Mapping[str, Any] | None = None,
) -> AppResponse:
    """Send one catalog request with a credential's values; raise :class:`AppCallFailed`
    on anything but a 2xx answer."""
    values = {**(service or {}), **(inputs or {}), **secret}
    try:
        method, url, headers, query, body, auth = build_request(app, request, values)
    except MissingValue as exc:
        raise AppCallFailed(f"The {app.name} credential lacks {exc.name!r}.") from None
    try:
        async with http.stream(
            method,
            url,
            headers={"Accept": "application/json", **headers},
            params=query or None,
            json=body,
            auth=auth,
            timeout=TIMEOUT,
            follow_redirects=False,
        ) as response:
            raw = bytearray()
            async for chunk in response.aiter_bytes():
                raw.extend(chunk)
                if len(raw) > MAX_RESPONSE_BYTES:
                    raise AppCallFailed(f"{app.name} sent an answer that is too large.")
    except httpx.TimeoutException:
        raise AppCallFailed(f"{app.name} did not answer in time.") from None
    except httpx.HTTPError:
        raise AppCallFailed(f"{app.name} could not be reached.") from None
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    if 200 <= response.status_code < 300:
        return AppResponse(response.status_code, parsed)
    message = dig(parsed, request.error_message_path) if request.error_message_path else None
    reason = str(message) if isinstance(message, str | int) and str(message) else None
    summary = reason or f"HTTP {response.status_code}"
    raise AppCallFailed(
        _scrub(f"{app.name} refused the request: {summary}", secret), response.status_code
    )


async def verify_credential(
    http: httpx.AsyncClient, app: App, secret: Mapping[str, Any], service: Mapping[str, Any]
) -> None:
    """Prove a credential works with the app's verification request."""
    await call_app(http, app, app.verification, secret, service=service)


async def load_options(
    http: httpx.AsyncClient,
    app: App,
    source: OptionSource,
    secret: Mapping[str, Any],
    service: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """An option source's ``[{label, value}]``, read from the app with the user's credential."""
    response = await call_app(http, app, source.request, secret, service=service)
    items = dig(response.body, source.items_path) if source.items_path else response.body
    if not isinstance(items, list):
        raise AppCallFailed(f"{app.name} answered with no list of options.")
    options = []
    for item in items[:MAX_OPTIONS]:
        value, label = dig(item, source.value), dig(item, source.label)
        if value is None:
            continue
        options.append({"label": str(label if label is not None else value), "value": value})
    return options
