"""OAuth endpoints: the consent page, the decision, the token endpoint, metadata, health."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error
from litestar import MediaType, Request, Response, get, post
from litestar.response import Stream

from embedded_ui.sandbox.consent import origin_of, page_headers, render_consent, render_error
from embedded_ui.sandbox.deps import OAuthServer, Sandbox
from embedded_ui.sandbox.oauth import RequestSnapshot

HUGE_BODY_BYTES = 10 * 1024 * 1024
_CHUNK = 64 * 1024
_HTML_INSTEAD_OF_JSON = """<!doctype html>
<html><head><title>Sign in</title></head>
<body><h1>Please sign in</h1><p>Your session has expired.</p></body></html>
"""


def _html(body: str, status_code: int, form_targets: tuple[str, ...] = ()) -> Response[str]:
    return Response(
        body, status_code=status_code, media_type=MediaType.HTML, headers=page_headers(form_targets)
    )


def _error_page(error: OAuth2Error) -> Response[str]:
    return _html(render_error(error.error or "invalid_request", error.description), 400)


async def _snapshot(request: Request[Any, Any, Any], *, with_form: bool) -> RequestSnapshot:
    form: list[tuple[str, str]] = []
    if with_form:
        form = [(k, v) for k, v in (await request.form()).multi_items() if isinstance(v, str)]
    return RequestSnapshot(
        method=request.method,
        url=str(request.url),
        headers=request.headers,
        query=list(request.query_params.multi_items()),
        form=form,
    )


@get("/oauth/authorize", include_in_schema=False)
async def authorize_page(
    request: Request[Any, Any, Any], sandbox: Sandbox, oauth: OAuthServer
) -> Response[Any]:
    """Validate the authorization request, then ask the account holder."""
    sandbox.stats.authorize_requests += 1
    snapshot = await _snapshot(request, with_form=False)
    try:
        grant = oauth.validate_authorization(snapshot)
    except OAuth2Error as error:
        return oauth.error_redirect(error) or _error_page(error)
    redirect_uri: str = grant.redirect_uri
    consent_id = sandbox.add_consent(snapshot.query)
    page = render_consent(
        client_name=sandbox.client.name,
        scope=grant.request.scope or "",
        accounts=list(sandbox.accounts.values()),
        consent_id=consent_id,
        redirect_uri=redirect_uri,
    )
    return _html(page, 200, form_targets=(origin_of(redirect_uri),))


@post("/oauth/authorize", include_in_schema=False, status_code=302)
async def authorize_decision(
    request: Request[Any, Any, Any], sandbox: Sandbox, oauth: OAuthServer
) -> Response[Any]:
    """Approve → redirect with code and state; Deny → redirect with error=access_denied."""
    form = await request.form()
    pending = sandbox.take_consent(str(form.get("consent") or ""))
    if pending is None:
        return _html(
            render_error("invalid_request", "This consent page expired or was already used."),
            400,
        )
    # The stored, already validated parameters are authoritative; the form only decides.
    snapshot = RequestSnapshot(
        method="GET", url=str(request.url), headers=request.headers, query=pending.params, form=[]
    )
    try:
        grant = oauth.validate_authorization(snapshot)
    except OAuth2Error as error:
        return oauth.error_redirect(error) or _error_page(error)
    if form.get("decision") == "approve":
        account = sandbox.accounts.get(str(form.get("account") or ""))
        if account is None:
            return _html(render_error("invalid_request", "Choose a store to connect."), 400)
        sandbox.stats.consents_approved += 1
        return oauth.decide(grant, account)
    sandbox.stats.consents_denied += 1
    return oauth.decide(grant, None)


@post("/oauth/token", include_in_schema=False, status_code=200)
async def token(
    request: Request[Any, Any, Any], sandbox: Sandbox, oauth: OAuthServer
) -> Response[Any]:
    """The token endpoint, unless a test switched it to misbehave."""
    snapshot = await _snapshot(request, with_form=True)
    grant_type = dict(snapshot.form).get("grant_type")
    sandbox.stats.token_requests += 1
    if grant_type == "refresh_token":
        sandbox.stats.refresh_requests += 1
    elif grant_type == "authorization_code":
        sandbox.stats.code_exchanges += 1

    mode = sandbox.behaviour.take_token_mode()
    if mode == "error500":
        return Response("Internal Server Error", status_code=500, media_type=MediaType.TEXT)
    if mode == "html":
        return Response(_HTML_INSTEAD_OF_JSON, status_code=200, media_type=MediaType.HTML)
    if mode == "huge":
        return Stream(_huge_body(), status_code=200, media_type=MediaType.JSON)
    if mode == "slow":
        await asyncio.sleep(sandbox.behaviour.slow_seconds)
    return oauth.token_response(snapshot)


async def _huge_body() -> AsyncIterator[bytes]:
    """10 MiB of valid JSON that looks like a token response, streamed without a length."""
    head = b'{"access_token":"sbxat_huge","token_type":"Bearer","expires_in":3600,"padding":"'
    tail = b'"}'
    remaining = HUGE_BODY_BYTES - len(head) - len(tail)
    yield head
    while remaining > 0:
        size = min(_CHUNK, remaining)
        yield b"x" * size
        remaining -= size
    yield tail


@get("/.well-known/oauth-authorization-server", include_in_schema=False)
async def metadata(oauth: OAuthServer) -> dict[str, Any]:
    return oauth.metadata()


@get("/health", include_in_schema=False)
async def health() -> dict[str, str]:
    return {"status": "ok"}


oauth_routes = [authorize_page, authorize_decision, token, metadata, health]
