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

__all__ = [
    "Action",
    "Api",
    "App",
    "AuthScheme",
    "CatalogError",
    "Field",
    "OptionSource",
    "Request",
    "Trigger",
    "load_app",
    "load_catalog",
    "placeholders",
]
