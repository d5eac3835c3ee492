"""Load and validate the catalog: JSON Schema first, then the checks a schema cannot express
(file name equals key, icons exist, every placeholder can be filled, patterns compile)."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from embedded_ui.catalog.model import (
    Action,
    Api,
    App,
    AuthScheme,
    Field,
    OptionSource,
    Request,
    Trigger,
    Webhooks,
)

CATALOG_DIR = Path(__file__).parent
SCHEMA_PATH = CATALOG_DIR / "app.schema.json"
# libyaml's loader is ten times faster than the pure-Python one; both are the safe loader.
YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SERVICE_VARIABLES = frozenset({"sandbox_url"})
"""Placeholders the service fills from its own settings rather than from a credential."""


class CatalogError(ValueError):
    """A catalog file is invalid; the message names the file and the field."""


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def placeholders(template: Any) -> set[str]:
    """Every ``{name}`` in a template string, or in the strings of a JSON value."""
    if isinstance(template, str):
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}
    if isinstance(template, Mapping):
        return set().union(*(placeholders(v) for v in template.values())) if template else set()
    if isinstance(template, list):
        return set().union(*(placeholders(v) for v in template)) if template else set()
    return set()


def field_path(path: Iterable[Any]) -> str:
    """A JSON Schema error's location as people write it: ``workflows[0].blocks[1].url``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def load_app(path: Path, icons_dir: Path) -> App:
    label = f"catalog/apps/{path.name}"
    try:
        raw = yaml.load(path.read_text(), Loader=YAML_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{label}: not valid YAML: {exc}") from None
    errors = sorted(_validator().iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        raise CatalogError(f"{label}: {field_path(error.absolute_path)}: {error.message}")
    app = _build(raw, icons_dir)
    problem = _semantic_problem(app, path)
    if problem:
        raise CatalogError(f"{label}: {problem}")
    return app


def _request(raw: Mapping[str, Any]) -> Request:
    return Request(
        method=raw["method"],
        path=raw["path"],
        query=dict(raw.get("query", {})),
        body=raw.get("body"),
        error_message_path=raw.get("error_message_path"),
    )


def _webhooks(raw: Mapping[str, Any]) -> Webhooks:
    return Webhooks(
        register=_request(raw["register"]) if "register" in raw else None,
        unregister=_request(raw["unregister"]) if "unregister" in raw else None,
        id_path=raw.get("id_path", "id"),
        secret_path=raw.get("secret_path"),
        delivery_id_header=raw.get("delivery_id_header"),
        event_header=raw.get("event_header"),
    )


def _fields(raw: Iterable[Mapping[str, Any]]) -> tuple[Field, ...]:
    return tuple(Field(**item) for item in raw)


def _scheme(raw: Mapping[str, Any]) -> AuthScheme:
    if raw["type"] != "oauth2":
        return AuthScheme(type=raw["type"], fields=_fields(raw["fields"]))
    return AuthScheme(
        type="oauth2",
        fields=_fields(raw.get("connection_fields", [])),
        authorize_url=raw["authorize_url"],
        token_url=raw["token_url"],
        issuer=raw.get("issuer"),
        scopes=tuple(raw["scopes"]),
        scope_separator=raw.get("scope_separator", " "),
        pkce=raw.get("pkce", True),
        authorize_params=dict(raw.get("authorize_params", {})),
        token_params=dict(raw.get("token_params", {})),
        token_fields=dict(raw.get("token_fields", {})),
    )


def _build(raw: Mapping[str, Any], icons_dir: Path) -> App:
    icon_path = icons_dir / raw["icon"]
    return App(
        key=raw["key"],
        name=raw["name"],
        description=raw["description"],
        categories=tuple(raw["categories"]),
        icon=raw["icon"],
        icon_svg=icon_path.read_text() if icon_path.is_file() else "",
        auth=tuple(_scheme(item) for item in raw["auth"]),
        api=Api(
            base_url=raw["api"]["base_url"],
            headers=dict(raw["api"].get("headers", {})),
            query=dict(raw["api"].get("query", {})),
            basic_auth=raw["api"].get("basic_auth"),
        ),
        verification=_request(raw["verification"]),
        triggers=tuple(
            Trigger(
                key=t["key"],
                name=t["name"],
                events=tuple(t["events"]),
                registration=t["registration"],
                description=t.get("description", ""),
                signature=t.get("signature"),
                webhook_url=t.get("webhook_url", "workflow"),
            )
            for t in raw["triggers"]
        ),
        actions=tuple(
            Action(
                key=a["key"],
                name=a["name"],
                request=_request(a),
                input_schema=a["input_schema"],
                description=a.get("description", ""),
                input_options=dict(a.get("input_options", {})),
            )
            for a in raw["actions"]
        ),
        option_sources=tuple(
            OptionSource(
                key=o["key"],
                request=_request(o),
                value=o["value"],
                label=o["label"],
                items_path=o.get("items_path", ""),
            )
            for o in raw.get("option_sources", [])
        ),
        docs_url=raw.get("docs_url"),
        webhooks=_webhooks(raw.get("webhooks", {})),
    )


def _semantic_problem(app: App, path: Path) -> str | None:
    if app.key != path.stem:
        return f"key: {app.key!r} must equal the file name {path.stem!r}"
    if not app.icon_svg.lstrip().startswith("<svg"):
        return f"icon: catalog/icons/{app.icon} is missing or not an SVG file"
    for index, scheme in enumerate(app.auth):
        for f_index, field in enumerate(scheme.fields):
            if field.pattern is not None:
                try:
                    re.compile(field.pattern)
                except re.error as exc:
                    return f"auth[{index}].fields[{f_index}].pattern: does not compile: {exc}"
            elif not field.secret and scheme.type == "oauth2":
                return f"auth[{index}].connection_fields[{f_index}]: needs a strict pattern"
        connection = scheme.provides | SERVICE_VARIABLES
        for name, template in (
            ("api", (app.api.base_url, app.api.headers, app.api.query, app.api.basic_auth or {})),
            ("verification", (app.verification.path, app.verification.query)),
        ):
            missing = placeholders(list(template)) - connection
            if missing:
                return f"{name}: auth[{index}] ({scheme.type}) cannot fill {sorted(missing)}"
        url_names = placeholders(
            [
                scheme.authorize_url or "",
                scheme.token_url or "",
                scheme.issuer or "",
                scheme.authorize_params,
            ]
        )
        missing = url_names - {f.name for f in scheme.fields} - SERVICE_VARIABLES
        if missing:
            return f"auth[{index}]: authorize/token URLs use undeclared fields {sorted(missing)}"
    keys = [t.key for t in app.triggers]
    if len(keys) != len(set(keys)):
        return "triggers: keys must be unique"
    sources = {o.key for o in app.option_sources}
    for index, action in enumerate(app.actions):
        inputs = set(action.input_schema.get("properties", {}))
        used = placeholders([action.request.path, action.request.query, action.request.body])
        missing = used - inputs - SERVICE_VARIABLES
        if missing:
            return (
                f"actions[{index}] ({action.key}): placeholders {sorted(missing)} "
                "not in input_schema"
            )
        for input_name, source in action.input_options.items():
            if input_name not in inputs or source not in sources:
                return f"actions[{index}].input_options.{input_name}: unknown input or source"
    if len({a.key for a in app.actions}) != len(app.actions):
        return "actions: keys must be unique"
    return None


@cache
def load_catalog(
    apps_dir: Path = CATALOG_DIR / "apps", icons_dir: Path = CATALOG_DIR / "icons"
) -> Mapping[str, App]:
    """Every app, by key, in name order. Raises :class:`CatalogError` on the first bad file.

    The files ship inside the package and never change while it runs, so each process reads
    them once; the mapping is read-only."""
    apps = [load_app(path, icons_dir) for path in sorted(apps_dir.glob("*.yaml"))]
    return MappingProxyType({app.key: app for app in sorted(apps, key=lambda a: a.name.lower())})
