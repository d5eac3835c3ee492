"""The integrations page: an iframe shell (``GET /page/{workspace}/{environment}``), its theme
stylesheet (``GET /page/theme.css``) and the one JSON route its script calls with the user
token (``POST /modal/api/page``: filters and an optional action → the rendered content)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.api.auth import Principal
from embedded_ui.api.deps import SERVICES, Installations, Users, token_user
from embedded_ui.errors import InvalidRequest
from embedded_ui.integrations import InstallationService
from embedded_ui.modal.routes import framed_html
from embedded_ui.page.content import Filters, build_cards, render_content
from embedded_ui.page.theme import parse_theme, theme_css
from embedded_ui.store import ENVIRONMENTS
from embedded_ui.templating import render

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
            render("page/shell.html", theme=None, error=exc.message, **chosen), "'none'"
        )
    html = render("page/shell.html", theme=urlencode(theme) if theme else None, error="", **chosen)
    return framed_html(html, policy.frame_ancestors)


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
