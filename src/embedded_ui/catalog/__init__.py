"""The apps users connect to, as data: one YAML file per app, validated at start."""

from __future__ import annotations

from embedded_ui.catalog.loader import CatalogError, load_app, load_catalog, placeholders
from embedded_ui.catalog.model import (
    Action,
    Api,
    App,
    AuthScheme,
    Field,
    OptionSource,
    Request,
    Trigger,
)
from embedded_ui.catalog.templates import MissingValue, fill, fill_text, fill_url

__all__ = [
    "Action",
    "Api",
    "App",
    "AuthScheme",
    "CatalogError",
    "Field",
    "MissingValue",
    "OptionSource",
    "Request",
    "Trigger",
    "fill",
    "fill_text",
    "fill_url",
    "load_app",
    "load_catalog",
    "placeholders",
]
