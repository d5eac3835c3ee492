"""The integrations page: an iframe shell (``GET /page/{workspace}/{environment}``), the hosted
page a single-use link opens (``GET /integrations-page/{token}``, content rendered in the first
response), its theme stylesheet (``GET /page/theme.css``) and the one JSON route its script
calls with the user token (``POST /modal/api/page``: filters and an optional action → the
rendered content)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.api.auth import Principal
from embedded_ui.api.deps import SERVICES, Installations, Users, token_user
from embedded_ui.errors import InvalidRequest
from embedded_ui.integrations import InstallationService
from embedded_ui.modal.links import InstallLinkService
from embedded_ui.modal.routes import framed_html
from embedded_ui.page.content import MAX_FILTER, Filters, build_cards, render_content
from embedded_ui.page.theme import parse_theme, theme_css
from embedded_ui.store import ENVIRONMENTS, Scope
from embedded_ui.templating import render
from embedded_ui.users import UserService

ACTIONS = ("activate", "deactivate", "upgrade", "uninstall")


@get("/page/{workspace_id:str}/{environment:str}", include_in_schema=False)
async def integrations_page(
    request: Request[Any, Any, Any], workspace_id: FromPath[str], environment: FromPath[str]
) -> Response[str]:
    """The page's shell: framed only by the environment's allowed origins. Its content needs
    the user, whose token arrives by postMessage, so the shell holds only the loading state.
    Query parameters (for a plain iframe): the theme options (``accent=...``, ``dark.text=...``,
    ``scheme=dark``) and ``integrations``/``categories`` (comma-separated)."""
    policy = await request.app.state.origin_policies.policy(workspace_id, environment)
    if environment not in ENVIRONMENTS:
        return framed_html(render("modal/not_found.html"), "'none'", 404)
    query = dict(request.query_params)
    chosen = {k: query.pop(k, "") for k in ("integrations", "categories")}
    try:
        # The environment's theme, then the mount call's (or the plain iframe's) on top.
        theme = {**policy.theme, **parse_theme(query)}
    except InvalidRequest as exc:
        return framed_html(
            render("page/shell.html", theme=None, error=exc.message, **NOTHING, **chosen), "'none'"
        )
    html = render(
        "page/shell.html",
        theme=urlencode(theme) if theme else None,
        error="",
        **NOTHING,
        **chosen,
    )
    return framed_html(html, policy.frame_ancestors)


NOTHING: dict[str, Any] = {"content": None, "init": None}


@get("/integrations-page/{token:str}", include_in_schema=False)
async def hosted_page(
    request: Request[Any, Any, Any], token: FromPath[str], db_session: NamedDependency[AsyncSession]
) -> Response[str]:
    """A hosted integrations-page link: used once, then gone. The first response holds the
    user's content (useful with JavaScript off) and a user token inline, never in a URL. It may
    be framed only by the environment's allowed origins (a plain iframe), like the SDK's shell.
    Query parameters: the theme options and ``integrations``/``categories``, as for the shell;
    they are checked before the link is spent."""
    state = request.app.state
    links = InstallLinkService(db_session)
    query = dict(request.query_params)
    chosen = {k: query.pop(k, "") for k in ("integrations", "categories")}
    try:
        asked = parse_theme(query)
    except InvalidRequest as exc:
        html = render("page/shell.html", theme=None, error=exc.message, **NOTHING, **chosen)
        return framed_html(html, "'none'", 400)
    link = await links.redeem(token, page=True)
    if link is None:
        # Framed like the live page was, so a plain iframe shows why rather than a refusal.
        known = await links.environment_of(token)
        ancestors = "'none'"
        if known is not None:
            ancestors = (await state.origin_policies.policy(*known)).frame_ancestors
        return framed_html(render("modal/not_found.html", expired="page"), ancestors, 404)
    scope = Scope(link.workspace_id, link.environment)
    policy = await state.origin_policies.policy(link.workspace_id, link.environment)
    user = await UserService(db_session, scope, actor="page_link").get(link.user_id)
    installations = InstallationService(
        db_session,
        scope,
        state.apps,
        state.settings.public_url,
        state.released_cache,
        state.runtime.webhooks,
    )
    filters = Filters(
        integrations=_listed(chosen["integrations"]), categories=_listed(chosen["categories"])
    )
    cards = await build_cards(db_session, installations, user, filters)
    user_token, _ = state.tokens.issue(
        user_id=user.id, workspace_id=link.workspace_id, environment=link.environment
    )
    init = {"token": user_token, "workspace": link.workspace_id, "environment": link.environment}
    theme = {**policy.theme, **asked}
    html = render(
        "page/shell.html",
        theme=urlencode(theme) if theme else None,
        error="",
        content=Markup(render_content(cards, filters)),  # noqa: S704 - rendered by Jinja2
        # JSON inside <script type="application/json"> is not HTML-decoded: keep it as is, but
        # never let it close the element.
        init=Markup(json.dumps(init).replace("<", "\\u003c")),  # noqa: S704 - escaped
        **chosen,
    )
    return framed_html(html, policy.frame_ancestors, frames_self=True)


def _listed(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split(",") if 0 < len(v) <= MAX_FILTER)[:MAX_FILTER]


@get("/page/theme.css", include_in_schema=False, media_type="text/css; charset=utf-8")
async def theme_stylesheet(request: Request[Any, Any, Any]) -> Response[str]:
    """The theme's custom properties, from the query (each value checked; 400 otherwise)."""
    try:
        css = theme_css(parse_theme(dict(request.query_params)))
    except InvalidRequest as exc:
        return Response(
            f"/* {exc.message.replace('*/', '')} */\n",
            status_code=400,
            media_type="text/css; charset=utf-8",
        )
    return Response(
        css,
        media_type="text/css; charset=utf-8",
        headers={"Cache-Control": "public, max-age=86400"},
    )


class PageController(Controller):
    path = "/page"
    dependencies = SERVICES

    @post("/", status_code=200)
    async def content(
        self,
        data: JSONBody[dict[str, Any]],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        user_service: Users,
        installation_service: Installations,
    ) -> dict[str, Any]:
        """``{integrations?, categories?, q?, category?, action?: {type, workflowId}}`` →
        ``{html, shown, event?}``. An action runs first (activate, deactivate, upgrade,
        uninstall), then the content is rendered as it is after it."""
        principal = request.user
        user = await token_user(principal, user_service)
        installations = installation_service
        filters = Filters.parse(data)
        event, notice = await _act(installations, user, data.get("action"))
        if event is not None:
            await db_session.flush()
        cards = await build_cards(db_session, installations, user, filters)
        return {
            "html": render_content(cards, filters, notice),
            "shown": sum(card.visible for card in cards),
            "event": event,
        }


async def _act(
    installations: InstallationService, user: Any, action: Any
) -> tuple[dict[str, Any] | None, str]:
    if action is None:
        return None, ""
    if (
        not isinstance(action, dict)
        or action.get("type") not in ACTIONS
        or not isinstance(action.get("workflowId"), str)
    ):
        raise InvalidRequest(
            f"action: expected {{type: {' | '.join(ACTIONS)}, workflowId: string}}.",
            field="action",
        )
    kind, workflow_id = action["type"], action["workflowId"]
    workflow = await installations.workflow(workflow_id)
    event: dict[str, Any] = {
        "type": kind,
        "workflowId": workflow_id,
        "integrationId": workflow.integration_id,
    }
    if kind == "upgrade":
        installation, previous = await installations.upgrade(user, workflow_id)
        event |= {"previousVersion": previous, "installedVersion": installation.version_number}
        return event, f"{workflow.name} updated to version {installation.version_number}."
    if kind == "uninstall":
        await installations.uninstall(user, workflow_id)
        return event, f"{workflow.name} uninstalled."
    await installations.set_active(user, workflow_id, kind == "activate")
    word = "activated" if kind == "activate" else "deactivated"
    return event, f"{workflow.name} {word}."
