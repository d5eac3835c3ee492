"""The drop-in integrations page: a server-rendered page the SDK mounts into the ISV's element
(or an ISV frames itself), with its content rendered for the user whose token it is handed."""

from __future__ import annotations

from embedded_ui.page.content import Filters, RunSummary, build_cards, last_runs, render_content
from embedded_ui.page.routes import (
    PageController,
    hosted_page,
    integrations_page,
    theme_stylesheet,
)
from embedded_ui.page.theme import parse_theme, theme_css

__all__ = [
    "Filters",
    "PageController",
    "RunSummary",
    "build_cards",
    "hosted_page",
    "integrations_page",
    "last_runs",
    "parse_theme",
    "render_content",
    "theme_css",
    "theme_stylesheet",
]
