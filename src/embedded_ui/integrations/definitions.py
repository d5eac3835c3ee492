"""Integration files (YAML, written by the ISV) → validated specs ready to apply.

Errors name the file and the field, like the catalog's. Checks beyond the JSON Schema: the
app, its triggers, actions and option sources exist; every action input is known and every
required one is given; block and workflow keys are unique; event schemas are valid and
reference nothing outside themselves; every
``{{ mapping }}`` template and filter condition compiles (engine/mapping.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from embedded_ui.catalog import App
from embedded_ui.catalog.loader import YAML_LOADER, field_path
from embedded_ui.engine.mapping import check_condition, check_template

SCHEMA_PATH = Path(__file__).parent / "integration.schema.json"


class DefinitionError(ValueError):
    """An integration file is invalid; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    key: str
    name: str
    active: bool
    definition: dict[str, Any]
    fields: list[dict[str, Any]]

    @property
    def content_hash(self) -> str:
        canonical = json.dumps([self.name, self.definition], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IntegrationSpec:
    key: str
    app: str
    name: str
    workflows: tuple[WorkflowSpec, ...]
    source: str


@dataclass(frozen=True, slots=True)
class DefinitionSet:
    integrations: tuple[IntegrationSpec, ...]
    events: tuple[EventSpec, ...]


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def parse_documents(documents: Iterable[tuple[str, str]], apps: Mapping[str, App]) -> DefinitionSet:
    """Parse ``(source name, YAML text)`` pairs into one validated set."""
    integrations: list[IntegrationSpec] = []
    events: dict[str, EventSpec] = {}
    workflow_keys: dict[str, str] = {}
    for source, text in documents:
        try:
            raw = yaml.load(text, Loader=YAML_LOADER)  # noqa: S506 (a safe loader)
        except yaml.YAMLError as exc:
            raise DefinitionError(f"{source}: not valid YAML: {exc}") from None
        # best_match descends into oneOf/anyOf, so the message names the innermost field.
        error = best_match(_validator().iter_errors(raw))
        if error is not None:
            raise DefinitionError(f"{source}: {field_path(error.absolute_path)}: {error.message}")
        for index, event in enumerate(raw.get("events", [])):
            spec = _event(source, index, event)
            if spec.name in events and events[spec.name] != spec:
                raise DefinitionError(f"{source}: events[{index}]: {spec.name!r} declared twice")
            events[spec.name] = spec
        if "integration" in raw:
            integration = _integration(source, raw, apps)
            for workflow in integration.workflows:
                if workflow.key in workflow_keys:
                    raise DefinitionError(
                        f"{source}: workflow key {workflow.key!r} is also used in "
                        f"{workflow_keys[workflow.key]}"
                    )
                workflow_keys[workflow.key] = source
            if any(i.key == integration.key for i in integrations):
                raise DefinitionError(f"{source}: integration key {integration.key!r} repeated")
            integrations.append(integration)
    return DefinitionSet(tuple(integrations), tuple(events.values()))


def load_paths(paths: Iterable[Path], apps: Mapping[str, App]) -> DefinitionSet:
    """Every ``*.yaml``/``*.yml`` file given, or inside the directories given."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        elif path.is_file():
            files.append(path)
        else:
            raise DefinitionError(f"{path}: no such file or directory")
    return parse_documents(((str(p), p.read_text()) for p in files), apps)


def _event(source: str, index: int, raw: Mapping[str, Any]) -> EventSpec:
    try:
        Draft202012Validator.check_schema(raw["schema"])
    except SchemaError as exc:
        raise DefinitionError(
            f"{source}: events[{index}].schema: not a valid JSON Schema: {exc.message}"
        ) from None
    for where, reference in _outside_references(raw["schema"], "schema"):
        raise DefinitionError(
            f"{source}: events[{index}].{where}: {reference!r} is not inside the schema; "
            'only references inside the schema ("#/$defs/...") are allowed'
        )
    return EventSpec(name=raw["name"], schema=raw["schema"])


_REFERENCES = ("$ref", "$dynamicRef")
_DATA_KEYWORDS = ("const", "enum", "default", "examples")
"""Keywords whose values are data, not schemas: a "$ref" inside them is not a reference."""


def _outside_references(schema: Any, where: str) -> Iterable[tuple[str, str]]:
    """``(path, reference)`` for each ``$ref`` that is not a fragment of the schema itself.
    The engine's validator resolves nothing else (engine/triggers.py): refusing them here
    says so when the file is applied rather than when an event is run."""
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from _outside_references(item, f"{where}[{index}]")
    elif isinstance(schema, Mapping):
        for key, value in schema.items():
            if key in _REFERENCES and isinstance(value, str) and not value.startswith("#"):
                yield f"{where}.{key}", value
            elif key not in _DATA_KEYWORDS:
                yield from _outside_references(value, f"{where}.{key}")


def _integration(source: str, raw: Mapping[str, Any], apps: Mapping[str, App]) -> IntegrationSpec:
    header = raw["integration"]
    app = apps.get(header["app"])
    if app is None:
        raise DefinitionError(f"{source}: integration.app: no catalog app {header['app']!r}")
    workflows = tuple(
        _workflow(f"{source}: workflows[{index}]", item, app)
        for index, item in enumerate(raw["workflows"])
    )
    return IntegrationSpec(
        key=header["key"],
        app=app.key,
        name=header.get("name", app.name),
        workflows=workflows,
        source=source,
    )


def _workflow(where: str, raw: Mapping[str, Any], app: App) -> WorkflowSpec:
    trigger = dict(raw["trigger"])
    if trigger["type"] == "app_event":
        app_trigger = app.trigger(trigger["event"])
        if app_trigger is None:
            known = ", ".join(t.key for t in app.triggers)
            raise DefinitionError(
                f"{where}.trigger.event: {app.name} has no trigger {trigger['event']!r} "
                f"(it has: {known})"
            )
        trigger.setdefault("name", app_trigger.name)
    else:
        trigger.setdefault("name", trigger["event"])
    blocks: list[dict[str, Any]] = []
    fields: list[dict[str, Any]] = []
    for index, block in enumerate(raw["blocks"]):
        block_where = f"{where}.blocks[{index}]"
        if any(b["id"] == block["id"] for b in blocks):
            raise DefinitionError(f"{block_where}.id: {block['id']!r} is used twice")
        blocks.append(_block(block_where, dict(block), app))
        problems = _template_problems(block_where, blocks[-1])
        if problems:
            raise DefinitionError(f"{problems[0]} (workflow {raw['key']!r}, block {block['id']!r})")
        fields.extend(_fields_of(block_where, blocks[-1], app))
    return WorkflowSpec(
        key=raw["key"],
        name=raw["name"],
        active=raw.get("active", True),
        definition={"trigger": trigger, "blocks": blocks},
        fields=fields,
    )


_DEFAULT_NAMES = {
    "stream_data": "Stream Data",
    "transform": "Transform",
    "filter": "Filter",
    "database": "Database",
}


def _block(where: str, block: dict[str, Any], app: App) -> dict[str, Any]:
    if block["type"] == "database" and ("row" in block) == ("rows" in block):
        raise DefinitionError(f"{where}: a database block takes exactly one of row and rows")
    if block["type"] in _DEFAULT_NAMES:
        block.setdefault("name", _DEFAULT_NAMES[block["type"]])
        return block
    action = app.action(block["action"])
    if action is None:
        known = ", ".join(a.key for a in app.actions)
        raise DefinitionError(
            f"{where}.action: {app.name} has no action {block['action']!r} (it has: {known})"
        )
    properties = action.input_schema.get("properties", {})
    for name in block["inputs"]:
        if name not in properties:
            raise DefinitionError(
                f"{where}.inputs.{name}: not an input of {action.key} "
                f"(inputs: {', '.join(properties)})"
            )
    missing = [n for n in action.input_schema.get("required", []) if n not in block["inputs"]]
    if missing:
        raise DefinitionError(f"{where}.inputs: required inputs missing: {', '.join(missing)}")
    block.setdefault("name", action.name)
    return block


def _template_problems(where: str, block: Mapping[str, Any]) -> list[str]:
    """Syntax problems of the block's templates; configurable values are not templates."""
    if block["type"] == "filter":
        return [f"{where}.condition: {p}" for p in check_condition(block["condition"])]
    if block["type"] == "app_action":
        values, prefix = block["inputs"], f"{where}.inputs"
    else:
        fields = {"stream_data": ("url", "data"), "transform": ("output",)}
        names = fields.get(block["type"], ("row", "rows"))
        values, prefix = {n: block[n] for n in names if n in block}, where
    problems: list[str] = []
    for name, value in values.items():
        if not (isinstance(value, Mapping) and "configurable" in value):
            problems.extend(check_template(value, where=f"{prefix}.{name}"))
    return problems


def _fields_of(where: str, block: Mapping[str, Any], app: App) -> list[dict[str, Any]]:
    values = block["inputs"] if block["type"] == "app_action" else block
    sources = {source.key for source in app.option_sources}
    fields = []
    for name, value in values.items():
        if not (isinstance(value, Mapping) and "configurable" in value):
            continue
        spec = value["configurable"]
        prefix = f"{where}.{'inputs.' if block['type'] == 'app_action' else ''}{name}"
        if spec["type"] == "select" and not (spec.get("options") or spec.get("options_from")):
            raise DefinitionError(f"{prefix}.configurable: a select needs options or options_from")
        if spec.get("options_from") and spec["options_from"] not in sources:
            raise DefinitionError(
                f"{prefix}.configurable.options_from: {app.name} has no option source "
                f"{spec['options_from']!r}"
            )
        fields.append(
            {
                "blockId": block["id"],
                "name": name,
                "displayName": spec["label"],
                "type": spec["type"],
                "required": spec.get("required", True),
                "default": spec.get("default"),
                "help": spec.get("help", ""),
                "options": spec.get("options", []),
                "optionsFrom": spec.get("options_from"),
            }
        )
    return fields
