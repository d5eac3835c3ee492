"""``/apps`` (the catalog), ``/events`` (custom events), and the apps' icons."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter

from embedded_ui.api.auth import Principal
from embedded_ui.api.deps import SERVICES, Integrations, Users, resolve_user
from embedded_ui.api.schemas import error_responses
from embedded_ui.catalog import App
from embedded_ui.errors import NotFound


class AppOut(msgspec.Struct, rename="camel"):
    app: str
    name: str
    description: str
    categories: list[str]
    icon: str
    auth_types: list[str]
    manual_webhooks: bool
    triggers: list[dict[str, Any]]
    actions: list[dict[str, Any]]


class AppListOut(msgspec.Struct):
    data: list[AppOut]


class EventOut(msgspec.Struct):
    name: str
    schema: dict[str, Any]


class EventListOut(msgspec.Struct):
    data: list[EventOut]


def app_out(app: App, public_url: str) -> AppOut:
    return AppOut(
        app=app.key,
        name=app.name,
        description=app.description,
        categories=list(app.categories),
        icon=f"{public_url}/apps/{app.key}/icon.svg",
        auth_types=[scheme.type for scheme in app.auth],
        manual_webhooks=app.manual_webhooks,
        triggers=[
            {"key": t.key, "name": t.name, "events": list(t.events), "registration": t.registration}
            for t in app.triggers
        ],
        actions=[
            {
                "key": a.key,
                "name": a.name,
                "description": a.description,
                "inputSchema": a.input_schema,
            }
            for a in app.actions
        ],
    )


class CatalogController(Controller):
    path = "/"
    tags = ["Catalog"]
    dependencies = SERVICES

    @get("/apps", summary="List the apps in the catalog", responses=error_responses())
    async def list_apps(self, state: State) -> AppListOut:
        return AppListOut([app_out(app, state.settings.public_url) for app in state.apps.values()])

    @get(
        "/events",
        summary="List the custom events",
        description="Each event's name and the JSON Schema its `data` must match.",
        responses=error_responses(404),
    )
    async def list_events(
        self,
        request: Request[Principal, Any, Any],
        user_service: Users,
        integration_service: Integrations,
        user_id: Annotated[str | None, QueryParameter(name="userId")] = None,
    ) -> EventListOut:
        if user_id:
            await resolve_user(request.user, user_service, user_id)
        events = await integration_service.events()
        return EventListOut([EventOut(e.name, e.schema) for e in events])


@get(
    "/apps/{app_key:str}/icon.svg",
    summary="An app's icon",
    tags=["Catalog"],
    include_in_schema=False,
)
async def app_icon(app_key: FromPath[str], state: State) -> Response[str]:
    app = state.apps.get(app_key)
    if app is None:
        raise NotFound(f"No app {app_key!r} in the catalog.")
    return Response(
        app.icon_svg,
        media_type="image/svg+xml",
        headers={
            "Cache-Control": "public, max-age=86400",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )
