"""The modal's pages (an iframe shell, and the hosted install link as a full page) and the one
JSON route its script calls for every step (``POST /modal/api/step``, user token only)."""

from __future__ import annotations

import json
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath, JSONBody
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.api.auth import Principal
from embedded_ui.api.deps import (
    SERVICES,
    Credentials,
    Installations,
    Users,
    service_values,
    token_user,
)
from embedded_ui.modal.flow import ModalFlow, Params, State
from embedded_ui.modal.links import InstallLinkService
from embedded_ui.oauth import fresh_secret_for
from embedded_ui.store import ENVIRONMENTS
from embedded_ui.templating import render

# The modal's own assets only; inline scripts and styles are refused. `frame-ancestors` is
# appended per environment.
MODAL_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; object-src 'none'; "
    "frame-ancestors {ancestors}"
)


def framed_html(
    html: str, ancestors: str, status_code: int = 200, *, frames_self: bool = False
) -> Response[str]:
    """An HTML page of the modal or the integrations page: its own assets only, framed only
    by ``ancestors``, never cached, no referrer. ``frames_self``: the page may frame the
    service's own pages (the hosted integrations page opens the modal)."""
    csp = MODAL_CSP.format(ancestors=ancestors)
    if frames_self:
        csp = f"frame-src 'self'; {csp}"
    return Response(
        html,
        status_code=status_code,
        media_type=MediaType.HTML,
        headers={
            "Content-Security-Policy": csp,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


@get("/modal/{workspace_id:str}/{environment:str}", include_in_schema=False)
async def modal_page(
    request: Request[Any, Any, Any], workspace_id: FromPath[str], environment: FromPath[str]
) -> Response[str]:
    """The iframe shell. Whether it may be framed depends on the environment the URL names:
    an unknown one gets the empty policy (``'none'``), so nothing about it is revealed. The
    service's own pages may frame it too (``'self'``): the hosted integrations page opens the
    modal inside itself."""
    policy = await request.app.state.origin_policies.policy(workspace_id, environment)
    if environment not in ENVIRONMENTS:
        return framed_html(render("modal/not_found.html"), "'none'", 404)
    html = render("modal/shell.html", mode="frame", init=None)
    return framed_html(html, modal_ancestors(policy.frame_ancestors))


def modal_ancestors(ancestors: str) -> str:
    """The environment's origins and the service's own (``'self'``)."""
    return "'self'" if ancestors == "'none'" else f"'self' {ancestors}"


@get("/install/{token:str}", include_in_schema=False)
async def hosted_install(
    request: Request[Any, Any, Any], token: FromPath[str], db_session: NamedDependency[AsyncSession]
) -> Response[str]:
    """A hosted install link: used once, then gone. The page gets a user token inline (never in
    a URL) and runs the same steps as the modal, as a full page that refuses framing."""
    state = request.app.state
    link = await InstallLinkService(db_session).redeem(token)
    if link is None:
        return framed_html(render("modal/not_found.html", expired=True), "'none'", 404)
    user_token, _ = state.tokens.issue(
        user_id=link.user_id, workspace_id=link.workspace_id, environment=link.environment
    )
    init = {
        "token": user_token,
        "operation": "install",
        "params": {"integrationId": link.integration_id},
    }
    # JSON inside <script type="application/json"> is not HTML-decoded: keep it as is, but
    # never let it close the element.
    inline = Markup(json.dumps(init).replace("<", "\\u003c"))  # noqa: S704 - escaped above
    html = render("modal/shell.html", mode="page", init=inline)
    return framed_html(html, "'none'")


class ModalController(Controller):
    path = "/"
    dependencies = SERVICES

    @post("/step", status_code=200)
    async def step(
        self,
        data: JSONBody[dict[str, Any]],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        user_service: Users,
        installation_service: Installations,
        credential_service: Credentials,
    ) -> dict[str, Any]:
        principal = request.user
        state = request.app.state
        flow = ModalFlow(
            db_session,
            await token_user(principal, user_service),
            installation_service,
            credential_service,
            state.apps,
            state.http,
            service_values(state.settings),
            fresh_oauth_secret=lambda credential_id, force: fresh_secret_for(
                state, principal.scope, credential_id, force=force
            ),
        )
        params = Params.parse(data.get("operation"), data.get("params"))
        given = data.get("input") or {}
        result = await flow.handle(
            params,
            State.parse(data.get("state")),
            str(data.get("action", "start")),
            given if isinstance(given, dict) else {},
        )
        return result.dump()
