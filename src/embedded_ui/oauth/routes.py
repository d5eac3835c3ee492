"""HTTP for OAuth: the modal's flow routes (``/modal/api/oauth/flows``, user token) and the
popup's two public pages (``/oauth/start/{flowId}``, ``/oauth/callback/{app}``).

The popup pages answer with HTML and redirect only to the provider's authorize URL built from
the catalog: no route takes a ``return_to`` or ``redirect_uri`` from the query.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.api.auth import Principal
from embedded_ui.oauth.flows import (
    SECURE_COOKIE,
    OAuthFlowService,
    OAuthPopup,
    PopupRejected,
    binding_cookie_name,
    describe_flow,
)
from embedded_ui.oauth.page import HEADERS, render_page
from embedded_ui.settings import Settings

AnyRequest = Request[Any, Any, State]


class FlowIn(msgspec.Struct, forbid_unknown_fields=True):
    app: str
    purpose: str
    connection: dict[str, Any] = msgspec.field(default_factory=dict)


class FlowCreatedOut(msgspec.Struct, rename="camel"):
    flow_id: str
    start_url: str


class FlowStatusOut(msgspec.Struct, rename="camel", omit_defaults=True):
    status: str
    credential_id: str | None = None
    message: str | None = None


def _status(body: dict[str, Any]) -> FlowStatusOut:
    return msgspec.convert(body, FlowStatusOut)


def provide_flow_service(
    db_session: NamedDependency[AsyncSession], request: AnyRequest
) -> OAuthFlowService:
    state = request.app.state
    principal: Principal = request.user
    return OAuthFlowService(db_session, principal.scope, state.vault, state.apps, state.settings)


Flows = NamedDependency[OAuthFlowService]


def _user_id(principal: Principal) -> str:
    assert principal.user_id is not None  # the router takes user tokens only
    return principal.user_id


class OAuthFlowsController(Controller):
    """Mounted under ``/modal/api`` (user token only)."""

    path = "/oauth/flows"
    dependencies = {"flow_service": Provide(provide_flow_service, sync_to_thread=False)}

    @post("/", status_code=201)
    async def create_flow(
        self, data: JSONBody[FlowIn], principal: NamedDependency[Principal], flow_service: Flows
    ) -> FlowCreatedOut:
        flow = await flow_service.create(
            _user_id(principal), data.app, data.purpose, data.connection
        )
        return FlowCreatedOut(flow_id=flow.id, start_url=flow_service.start_url(flow))

    @get("/{flow_id:str}")
    async def read_flow(
        self, flow_id: FromPath[str], principal: NamedDependency[Principal], flow_service: Flows
    ) -> FlowStatusOut:
        return _status(describe_flow(await flow_service.get(_user_id(principal), flow_id)))

    @post("/{flow_id:str}/cancel", status_code=200)
    async def cancel_flow(
        self, flow_id: FromPath[str], principal: NamedDependency[Principal], flow_service: Flows
    ) -> FlowStatusOut:
        return _status(describe_flow(await flow_service.cancel(_user_id(principal), flow_id)))


# the popup ----------------------------------------------------------------------------------


def _popup(request: AnyRequest, db_session: AsyncSession) -> OAuthPopup:
    state = request.app.state
    return OAuthPopup(db_session, state.vault, state.apps, state.settings)


def _page(
    settings: Settings,
    *,
    ok: bool,
    message: str,
    flow_id: str | None,
    cookies: list[Cookie] | None = None,
) -> Response[str]:
    return Response(
        render_page(ok=ok, message=message, origin=settings.public_origin, flow_id=flow_id),
        status_code=200 if ok else 400,
        media_type=MediaType.HTML,
        headers=HEADERS,
        cookies=cookies or [],
    )


def _cookie(settings: Settings, value: str, max_age: int) -> Cookie:
    """HttpOnly, SameSite=Lax (sent on the provider's top-level redirect back), Path=/, and
    Secure with the ``__Host-`` name whenever the service is on https."""
    name = binding_cookie_name(settings)
    return Cookie(
        key=name,
        value=value,
        max_age=max_age,
        path="/",
        secure=name == SECURE_COOKIE,
        httponly=True,
        samesite="lax",
    )


@get("/oauth/start/{flow_id:str}", include_in_schema=False)
async def oauth_start(
    flow_id: FromPath[str], request: AnyRequest, db_session: NamedDependency[AsyncSession]
) -> Response[Any]:
    """The popup's first page: set the binding cookie, then off to the provider."""
    settings: Settings = request.app.state.settings
    try:
        started = await _popup(request, db_session).start(flow_id)
    except PopupRejected as exc:
        return _page(settings, ok=False, message=exc.message, flow_id=None)
    return Response(
        content=b"",
        status_code=302,
        headers={**HEADERS, "Location": started.location},
        cookies=[_cookie(settings, started.cookie_value, max_age=600)],
    )


@get("/oauth/callback/{app_key:str}", include_in_schema=False)
async def oauth_callback(
    app_key: FromPath[str], request: AnyRequest, db_session: NamedDependency[AsyncSession]
) -> Response[Any]:
    """Where the provider sends the popup back: check, exchange, store, and say so."""
    settings: Settings = request.app.state.settings
    pairs = list(request.query_params.multi_items())
    params = dict(pairs)
    if len(params) != len(pairs):
        return _page(
            settings, ok=False, message="The sign-in response repeats a parameter.", flow_id=None
        )
    binding = request.cookies.get(binding_cookie_name(settings))
    spent = _cookie(settings, "", max_age=0)  # one flow per cookie: forget it either way
    try:
        flow = await _popup(request, db_session).finish(app_key, params, binding)
    except PopupRejected as exc:
        return _page(settings, ok=False, message=exc.message, flow_id=exc.flow_id, cookies=[spent])
    app = request.app.state.apps.get(flow.app)
    return _page(
        settings,
        ok=True,
        message=f"{app.name if app else flow.app} is connected.",
        flow_id=flow.id,
        cookies=[spent],
    )


POPUP_HANDLERS = [oauth_start, oauth_callback]
